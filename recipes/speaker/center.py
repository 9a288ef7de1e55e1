"""Sets a trained speaker encoder's embedding centre: the mean unit embedding of its training crops.

Distilled embeddings share a common direction (the teacher's, a ReLU output, is shared by every
voice) that carries no speaker information. Subtracting the mean embedding of the training crops
(every cached version: clean, phone-line, noisy) and renormalising spreads voices apart; it is
the mean normalisation usual in speaker verification. Only training data is used, never dev.

The output is the same checkpoint with ``model.center_embeddings = true`` and the ``center``
buffer set; calibrate it afterwards (``benchmarks/speaker.py --calibrate``), since cosines move.

    python recipes/speaker/center.py --checkpoint runs/speaker-bundled/best/encoder \
        --cache runs/data/speaker/cache_warp.pt --out runs/speaker-bundled/centred
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from voicefake.checkpoint import Checkpoint
from voicefake.speaker.model import SpeakerEncoder


def mean_embedding(encoder: SpeakerEncoder, mels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Mean unit (uncentred) window embedding of (N, V, M, F) cached log-mels -> (D,)."""
    total = torch.zeros(encoder.config.emb_dim, dtype=torch.float64)
    count = 0
    with torch.inference_mode():
        for start in range(0, len(mels), batch):
            chunk = mels[start : start + batch].flatten(0, 1).float()
            total += encoder.pool_frames(encoder.frames(chunk)).double().sum(dim=0)
            count += len(chunk)
    if count == 0:
        raise ValueError("the cache has no crops to take the mean embedding of")
    return (total / count).float()


def centre_checkpoint(ckpt: Checkpoint, mels: torch.Tensor) -> Checkpoint:
    """A copy of ``ckpt`` whose encoder subtracts the mean embedding of ``mels``."""
    encoder = ckpt.build().eval()
    assert isinstance(encoder, SpeakerEncoder)
    centre = mean_embedding(encoder, mels)
    config = replace(encoder.config, center_embeddings=True)
    out = SpeakerEncoder(config, encoder.mel).eval()
    state = encoder.state_dict()
    state["center"] = centre
    out.load_state_dict(state, strict=True)
    metadata = dict(ckpt.metadata)
    metadata.pop("calibration", None)  # cosines move: calibrate again
    metadata["embedding_center"] = {"crops": int(mels.shape[0]), "versions": int(mels.shape[1]),
                                    "norm": round(float(centre.norm()), 4)}
    return Checkpoint.from_module(out, "speaker", encoder.mel, metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="trained speaker checkpoint directory")
    parser.add_argument("--cache", type=Path, required=True, help="the build_cache.py cache it was trained on")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mels = torch.load(args.cache, weights_only=True)["mels"]
    out = centre_checkpoint(Checkpoint.load(args.checkpoint), mels)
    out.save(args.out)
    print(f"centre norm {out.metadata['embedding_center']['norm']} from {len(mels)} crops -> {args.out}")


if __name__ == "__main__":
    main()
