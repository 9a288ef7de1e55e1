"""Sets a trained speaker encoder's scoring statistics from its training crops: the embedding
centre and the AS-norm cohort.

Distilled embeddings share a common direction (the teacher's, a ReLU output, is shared by every
voice) that carries no speaker information. Subtracting the mean embedding of the training crops
(every cached version: clean, phone-line, noisy) and renormalising spreads voices apart; it is
the mean normalisation usual in speaker verification. Only training data is used, never dev.

The cohort (``--cohort-top K``, 0 for none) is one mean centred embedding per real training
speaker (pseudo-speakers, named ``...@+2st``, left out); verification then scores trials with
adaptive symmetric score normalisation against each side's K closest cohort speakers
(``SpeakerEncoder.score``).

The output is the same checkpoint with ``model.center_embeddings = true``, the ``center`` buffer
set and, with a cohort, ``model.cohort_size`` / ``model.cohort_top`` and the ``cohort`` buffer;
calibrate it afterwards (``benchmarks/speaker.py --calibrate``), since the scores move.

    python recipes/speaker/center.py --checkpoint runs/speaker-bundled/best/encoder \
        --cache runs/data/speaker/cache_warp.pt --out runs/speaker-bundled/centred [--cohort-top 100]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from voicefake.checkpoint import Checkpoint
from voicefake.config import run_recipe
from voicefake.speaker.model import SpeakerEncoder


def crop_embeddings(encoder: SpeakerEncoder, mels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Unit window embeddings (uncentred) of (N, V, M, F) cached log-mels -> (N, V, D)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(mels), batch):
            chunk = mels[start : start + batch]
            emb = encoder.raw_embed(chunk.flatten(0, 1).float())
            out.append(emb.view(len(chunk), mels.shape[1], -1))
    if not out:
        raise ValueError("the cache has no crops to take the mean embedding of")
    return torch.cat(out)


def centre_checkpoint(ckpt: Checkpoint, mels: torch.Tensor, speaker: torch.Tensor | None = None,
                      names: list[str] | None = None, cohort_top: int = 0) -> Checkpoint:
    """A copy of ``ckpt`` whose encoder subtracts the mean embedding of ``mels``; with
    ``cohort_top`` > 0 also a cohort of the real speakers' mean centred embeddings
    (``speaker``: (N,) index into ``names`` per crop)."""
    encoder = ckpt.build().eval()
    assert isinstance(encoder, SpeakerEncoder)
    emb = crop_embeddings(encoder, mels)
    centre = emb.double().mean(dim=(0, 1)).float()
    centred = torch.nn.functional.normalize(emb - centre, dim=-1).mean(dim=1)  # (N, D), versions pooled
    state = encoder.state_dict()
    state["center"] = centre
    config = replace(encoder.config, center_embeddings=True)
    metadata = dict(ckpt.metadata)
    metadata.pop("calibration", None)  # scores move: calibrate again
    metadata["embedding_center"] = {"crops": int(mels.shape[0]), "versions": int(mels.shape[1]),
                                    "norm": round(float(centre.norm()), 4)}
    if cohort_top:
        if speaker is None or names is None:
            raise ValueError("a cohort needs the crops' speaker indices and the speaker names")
        real = [i for i, name in enumerate(names) if "@" not in name and bool((speaker == i).any())]
        cohort = torch.stack([torch.nn.functional.normalize(centred[speaker == i].mean(dim=0), dim=0) for i in real])
        state["cohort"] = cohort
        config = replace(config, cohort_size=len(real), cohort_top=cohort_top)
        metadata["score_cohort"] = {"speakers": len(real), "top": cohort_top,
                                    "what": "mean centred embedding of each real training speaker"}
    out = SpeakerEncoder(config, encoder.mel).eval()
    out.load_state_dict(state, strict=True)
    return Checkpoint.from_module(out, "speaker", encoder.mel, metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="trained speaker checkpoint directory")
    parser.add_argument("--cache", type=Path, required=True, help="the build_cache.py cache it was trained on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cohort-top", type=int, default=100,
                        help="AS-norm over each side's K closest real training speakers (0: plain cosine)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = torch.load(args.cache, weights_only=True)
    out = centre_checkpoint(Checkpoint.load(args.checkpoint), cache["mels"], cache["speaker"], cache["speakers"],
                            args.cohort_top)
    out.save(args.out)
    cohort = out.metadata.get("score_cohort", {}).get("speakers", 0)
    print(f"centre norm {out.metadata['embedding_center']['norm']} from {len(cache['mels'])} crops, "
          f"cohort of {cohort} speakers -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
