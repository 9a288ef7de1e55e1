"""Speed-perturbed copies of the content encoder's training audio (Ko et al., 2015).

The content encoder learns from one hour of real speech. Playing each training file 0.9x and
1.1x as fast changes its tempo, pitch and formants together, as a different speaker at a
different rate would say the same words; the teacher (Whisper tiny.en) describes the new audio
afresh, so each factor adds new distillation targets, not a relabelled copy.

Usage (after prepare_teacher.py has written DATA/train.csv):
    python recipes/conversion/make_speed.py --data runs/data/conversion --out runs/data/conversion-speed/audio
    python recipes/conversion/prepare_teacher.py --out runs/data/conversion-speed \
        --extra runs/data/conversion-speed/audio/manifest.csv
    python recipes/conversion/build_cache.py --data runs/data/conversion-speed

Writes OUT/<sha1>_<factor>.wav (16 kHz) and OUT/manifest.csv (absolute paths; speaker
"<speaker>-speed<factor>"). Dev files are never perturbed (they are not in train.csv).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from voicefake.audio.io import load_audio, write_audio
from voicefake.channel import effects
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest

SAMPLE_RATE = 16000


def speed_perturb(wav: np.ndarray, factor: float) -> np.ndarray:
    """``wav`` played ``factor`` times as fast (tempo and pitch), still at SAMPLE_RATE."""
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"speed factor {factor} is outside 0.5-2.0")
    return effects.speed(wav, SAMPLE_RATE, factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train.csv (prepare_teacher.py)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.1])
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    train = [r for r in read_manifest(args.data / "train.csv") if r.folder != "conversion_speed"]
    for row in train:
        wav = load_audio(root / row.path, SAMPLE_RATE)
        stem = hashlib.sha1(row.path.encode()).hexdigest()[:16]
        for factor in args.factors:
            out = speed_perturb(wav, factor)
            path = (args.out / f"{stem}_{factor:g}.wav").resolve()
            if not path.exists():
                write_audio(path, out, SAMPLE_RATE, force=True)
            rows.append(ManifestRow(path=str(path), speaker=f"{row.speaker}-speed{factor:g}", label=row.label,
                                    system=row.system, transcript=row.transcript, media="audio",
                                    sample_rate=SAMPLE_RATE, channels=1,
                                    duration_s=round(len(out) / SAMPLE_RATE, 3), folder="conversion_speed",
                                    license=row.license, notes=f"speed x{factor:g} of {row.path}"))
    write_manifest(rows, args.out / "manifest.csv")
    print(f"{len(rows)} files, {sum(r.duration_s for r in rows) / 60:.1f} min -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
