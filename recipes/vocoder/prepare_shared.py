"""Writes the vocoder's train/dev manifests from the shared data (and optionally packs audio).

Train: every real wideband (>= 16 kHz) recording in $VOICEFAKE_DATA except the held-out ones.
Dev (never trained on): all LibriSpeech test-other speakers (unseen speakers) and the last two
VCTK utterances of each speaker (unseen utterances). 8 kHz corpora (FSDD, Asterisk) are left
out: they hold nothing above 4 kHz for a 16 kHz vocoder to learn.

Usage:
    python recipes/vocoder/prepare_shared.py --out runs/data/vocoder [--pack]

With --pack, every selected file is resampled to 16 kHz FLAC under OUT/audio and the
manifests point there (a compact copy for a GPU machine without the shared data).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from voicefake.audio.io import load_audio, write_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest

SAMPLE_RATE = 16000


def is_dev(row: ManifestRow) -> bool:
    """Held out from training: unseen speakers and unseen VCTK utterances."""
    if "/test-other/" in row.path:
        return True
    return row.folder == "vctk_autovc" and Path(row.path).stem.split("_")[1] in {"023", "024"}


def split(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(train, dev) rows of real wideband speech."""
    usable = [r for r in rows if r.label == "real" and r.sample_rate >= SAMPLE_RATE]
    return [r for r in usable if not is_dev(r)], [r for r in usable if is_dev(r)]


def pack(rows: list[ManifestRow], root: Path, out: Path) -> list[ManifestRow]:
    """Resamples rows to 16 kHz FLAC under out/audio; returns rows pointing there."""
    packed = []
    for row in rows:
        target = out / "audio" / Path(row.path).with_suffix(".flac")
        if not target.exists():
            write_audio(target, load_audio(root / row.path, SAMPLE_RATE), SAMPLE_RATE)
        packed.append(dataclasses.replace(row, path=str(target.relative_to(out)), sample_rate=SAMPLE_RATE, media="audio"))
    return packed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for train.csv and dev.csv")
    parser.add_argument("--pack", action="store_true", help="also write 16 kHz FLAC copies under OUT/audio")
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    train, dev = split(read_manifest(root / "manifest.csv"))
    if args.pack:
        train, dev = pack(train, root, args.out), pack(dev, root, args.out)
    write_manifest(train, args.out / "train.csv")
    write_manifest(dev, args.out / "dev.csv")
    minutes = sum(r.duration_s for r in train) / 60
    print(f"train: {len(train)} files, {minutes:.1f} min; dev: {len(dev)} files -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
