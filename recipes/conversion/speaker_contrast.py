"""Gives a conversion decoder its default speaker contrast (``DecoderConfig.speaker_contrast``).

A decoder speaks a voice a little closer to the average voice than its reference is. The contrast
pushes a reference's speaker embedding away from the speaker encoder's centre (its average voice)
before it conditions the decoder: ``normalize(e + contrast (e - centre))``
(``voicefake.conversion.model.contrast_embedding``). This writes a copy of the decoder whose
default is ``--contrast``; its weights (and any narrowband offset) are not touched, and
``convert(contrast=...)`` still overrides it. It also reports how far the move takes voices from
the centre: the mean cosine to the centre of ``--measure`` utterances' embeddings (real
LibriSpeech train-clean-100 speech of the shared data, never a benchmark target), before and after.

The value is chosen by measurement (docs/benchmarks/cloning.md, session 43: 0.3 / 0.6 / 1 / 2 on the
cloning benchmark, chosen on its first five targets, confirmed on the last five).

Usage (the shipped conversion-ref-16k 0.2.0; seconds):
    export VOICEFAKE_DATA=../shared/data PYTHONPATH=.
    python recipes/conversion/speaker_contrast.py --init conversion-ref --contrast 1 \
        --out voicefake/models/conversion-ref-16k --version 0.2.0

``--contrast 0`` writes a control that converts exactly as the decoder with no contrast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.checkpoint import Checkpoint
from voicefake.config import run_recipe
from voicefake.conversion.model import contrast_embedding, with_speaker_contrast
from voicefake.data.manifests import data_root, read_manifest

SR = 16000


def centre_cosines(embeddings: np.ndarray, centre: torch.Tensor, contrast: float) -> tuple[float, float]:
    """(N, D) unit embeddings -> their mean cosine to the (unit-normalised) centre before and after
    the contrast."""
    e = torch.from_numpy(np.asarray(embeddings, np.float32))
    unit = torch.nn.functional.normalize(centre.float(), dim=-1)
    moved = contrast_embedding(e, centre.float(), contrast)
    return float((e @ unit).mean()), float((moved @ unit).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", default="conversion-ref", help="the decoder to give the contrast (name or folder)")
    parser.add_argument("--contrast", type=float, default=1.0, help="the default contrast (0 = none)")
    parser.add_argument("--speaker", default="speaker", help="the speaker encoder whose centre the contrast uses")
    parser.add_argument("--measure", type=int, default=20,
                        help="utterances to report the move on (0: report nothing, no data needed)")
    parser.add_argument("--version", default=None, help="version to write in the metadata")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.contrast >= 0:
        raise ValueError(f"--contrast must be >= 0 (0: none), got {args.contrast}")
    if args.measure < 0:
        raise ValueError(f"--measure must be >= 0, got {args.measure}")
    info: dict = {"speaker_contrast": {"contrast": args.contrast, "speaker": args.speaker}}
    out = with_speaker_contrast(Checkpoint.load(args.init), args.contrast, info)  # refuses a bad --init first
    note = ""
    if args.measure:
        root = data_root()
        rows = sorted((r for r in read_manifest(root / "manifest.csv")
                       if r.label == "real" and "/train-clean-100/" in r.path), key=lambda r: r.path)[: args.measure]
        if not rows:
            raise FileNotFoundError(f"{root / 'manifest.csv'}: no real train-clean-100 utterances to measure on; "
                                    "point VOICEFAKE_DATA at the shared data, or give --measure 0")
        embeddings = np.stack([api.embed_speaker([load_audio(root / r.path, SR)], args.speaker, centre=False)
                               for r in rows])
        before, after = centre_cosines(embeddings, api.speaker_centre(args.speaker), args.contrast)
        info["speaker_contrast"].update({"utterances": len(rows), "cosine_to_centre": round(before, 4),
                                         "cosine_to_centre_after": round(after, 4)})
        note = f"; cosine to the centre over {len(rows)} utterances {before:.4f} -> {after:.4f}"
    if args.version:
        info["version"] = args.version
    # stored as the input was (the bundled decoders are float16), so every weight stays bit for bit
    half = any(t.dtype == torch.float16 for t in out.state_dict.values())
    out.metadata.update(info)  # the measurement, taken after the early refusal of a bad --init
    out.save(args.out, half=half)
    print(f"{args.out}: speaker contrast {args.contrast}{note}")


if __name__ == "__main__":
    run_recipe(main)
