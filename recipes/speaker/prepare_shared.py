"""Writes the speaker encoder's train/dev manifests from the shared data.

Train: every real recording in $VOICEFAKE_DATA except LibriSpeech test-other (LibriSpeech
train-clean-100, VCTK, LJSpeech, FSDD, Asterisk prompts, ALSA, the natural CMU ARCTIC /
VCC2018 / LibriTTS utterances and the GRID videos' audio). Speakers of the synthetic folders
are not used: a fake row's speaker is an imitated voice, not a recording of it.
Dev (speaker-disjoint, never trained on): the 10 LibriSpeech test-other speakers, 10 utterances
each; the benchmark and the calibration use their trials.

Usage:
    python recipes/speaker/prepare_shared.py --out runs/data/speaker
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest


def is_dev(row: ManifestRow) -> bool:
    """Held out: the LibriSpeech test-other speakers (unseen speakers)."""
    return "/test-other/" in row.path


def split(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, dev) rows of real speech with a speaker id; no speaker on both sides."""
    real = [r for r in rows if r.label == "real" and r.speaker]
    dev = [r for r in real if is_dev(r)]
    dev_speakers = {r.speaker for r in dev}
    train = [r for r in real if not is_dev(r) and r.speaker not in dev_speakers]
    return train, dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for train.csv and dev.csv")
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    train, dev = split(read_manifest(root / "manifest.csv"))
    write_manifest(train, args.out / "train.csv")
    write_manifest(dev, args.out / "dev.csv")
    speakers = len({r.speaker for r in train})
    minutes = sum(r.duration_s for r in train) / 60
    print(f"train: {len(train)} files, {speakers} speakers, {minutes:.1f} min; "
          f"dev: {len(dev)} files, {len({r.speaker for r in dev})} speakers -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
