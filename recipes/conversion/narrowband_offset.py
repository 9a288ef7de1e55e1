"""Gives a conversion decoder its narrowband offset (``DecoderConfig.narrowband_offset``).

The speaker encoder hears a voice through a phone line a little off its clean embedding, and a
decoder learns its voices from clean embeddings. This estimates the mean clean-minus-phone-line
embedding difference over speakers that are never benchmark targets (the LibriSpeech
train-clean-100 utterances of the shared data: 100 speakers, one utterance each; the targets are
test-other's), each utterance through ``--seeds`` seeded calls of
:func:`voicefake.channel.phone_call`, scales it by ``--scale`` and writes a copy of the decoder that
adds it to every narrowband reference's embedding (``ConversionDecoder.voice_embedding``). The
decoder's weights are not touched.

Usage (the shipped conversion-call-16k 0.2.0; about 2 min on one thread):
    export VOICEFAKE_DATA=../shared/data PYTHONPATH=.
    python recipes/conversion/narrowband_offset.py --init conversion-call --scale 2 \
        --out voicefake/models/conversion-call-16k --version 0.2.0

``--scale 0`` writes the decoder with a zero offset (a control that converts exactly as the input).
A decoder trained further from such a checkpoint (``train_decoder.py --init``) leaves the offset
behind, since it fits the weights it was estimated for: run this again on the new weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.channel import phone_call
from voicefake.checkpoint import Checkpoint
from voicefake.config import run_recipe
from voicefake.conversion.model import with_narrowband_offset
from voicefake.data.manifests import data_root, read_manifest

SR = 16000


def offset_speakers(root: Path) -> list[Path]:
    """The utterances the offset is estimated on: real LibriSpeech train-clean-100 speech (never
    a benchmark target; one clear error when the data has none)."""
    rows = [r for r in read_manifest(root / "manifest.csv") if r.label == "real" and "/train-clean-100/" in r.path]
    if not rows:
        raise FileNotFoundError(f"{root / 'manifest.csv'}: no real train-clean-100 utterances to estimate the offset "
                                "on; point VOICEFAKE_DATA at the shared data")
    return [root / r.path for r in sorted(rows, key=lambda r: r.path)]


def paired_embeddings(wavs: list[np.ndarray], seeds: int, speaker: str = "speaker") -> tuple[np.ndarray, np.ndarray]:
    """Each clip's clean embedding (repeated ``seeds`` times) and its embeddings through ``seeds``
    seeded phone calls, as a voice profile embeds a reference (uncentred): two (N * seeds, D) arrays."""
    clean, narrow = [], []
    for i, wav in enumerate(wavs):
        own = api.embed_speaker([wav], speaker, centre=False)
        for j in range(seeds):
            clean.append(own)
            narrow.append(api.embed_speaker([phone_call(wav, SR, seed=1000 * j + i)[0]], speaker, centre=False))
    return np.asarray(clean, np.float32), np.asarray(narrow, np.float32)


def estimate_offset(clean: np.ndarray, narrow: np.ndarray) -> np.ndarray:
    """(N, D) clean and (N, D) narrowband embeddings of the same clips -> (D,) their mean difference."""
    if clean.shape != narrow.shape or clean.ndim != 2 or not len(clean):
        raise ValueError(f"need two (N, D) arrays of paired embeddings, got {clean.shape} and {narrow.shape}")
    return (clean - narrow).mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", default="conversion-call", help="the decoder to give the offset (name or folder)")
    parser.add_argument("--scale", type=float, default=2.0, help="multiple of the mean difference to add (0 = none)")
    parser.add_argument("--seeds", type=int, default=3, help="phone calls per utterance")
    parser.add_argument("--speaker", default="speaker", help="the speaker encoder that makes the profiles' embeddings")
    parser.add_argument("--version", default=None, help="version to write in the metadata")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    torch.set_num_threads(args.threads)
    source = Checkpoint.load(args.init)
    # refuse a checkpoint that cannot take an offset before the minute of embeddings
    with_narrowband_offset(source, torch.zeros(int(source.model.get("speaker_dim", 0))), {})
    files = offset_speakers(data_root())
    clean, narrow = paired_embeddings([load_audio(f, SR) for f in files], args.seeds, args.speaker)
    mean = estimate_offset(clean, narrow)
    shifted = narrow + args.scale * mean
    shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
    before, after = float((clean * narrow).sum(1).mean()), float((clean * shifted).sum(1).mean())
    info = {"narrowband_offset": {"utterances": len(files), "calls_each": args.seeds, "scale": args.scale,
                                  "mean_difference_norm": round(float(np.linalg.norm(mean)), 4),
                                  "cosine_clean_phone": round(before, 4), "cosine_clean_shifted": round(after, 4),
                                  "estimated_on": "LibriSpeech train-clean-100 (shared data), never a benchmark target"}}
    if args.version:
        info["version"] = args.version
    with_narrowband_offset(source, args.scale * mean, info).save(args.out, half=True)
    print(f"{args.out}: offset |{args.scale} x mean| = {args.scale * np.linalg.norm(mean):.3f} from {len(files)} "
          f"utterances x {args.seeds} calls; cosine to the clean embedding {before:.4f} -> {after:.4f}")


if __name__ == "__main__":
    run_recipe(main)
