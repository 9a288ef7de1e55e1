"""Synthetic speech of varied text for the content encoder: espeak-ng and flite voices.

Content is content: a formant synthesiser's words are still words, and the teacher (Whisper
tiny.en) describes them like any other speech. This adds lexical and phonetic variety to the
hour of shared audio at no cost but CPU, and the text-to-speech path feeds espeak-ng speech to
the content encoder anyway. Text: English prose found on the machine (the vim user manual and
the licence texts under /usr/share), cut into ~20-28 s passages; nothing from the cloning
benchmark.

Usage:
    python recipes/conversion/make_synthetic.py --out runs/data/conversion/synthetic --count 120
    python recipes/conversion/prepare_teacher.py --out runs/data/conversion \
        --extra runs/data/conversion/synthetic/manifest.csv

Writes OUT/<name>.wav (16 kHz) and OUT/manifest.csv (absolute paths, one speaker per voice).
"""

from __future__ import annotations

import argparse
import glob
import random
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from voicefake.audio.io import load_audio, write_audio
from voicefake.audio.ops import resample
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, write_manifest

SAMPLE_RATE = 16000
SOURCES = ["/usr/share/vim/vim*/doc/usr_*.txt", "/usr/share/common-licenses/*"]
ESPEAK = ["en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f2", "+f3", "+f4"]
FLITE = ["kal16", "awb", "rms", "slt"]


def passages(words_each: int, seed: int) -> list[str]:
    """Prose passages of about ``words_each`` words (lines of mostly letters only)."""
    words: list[str] = []
    for pattern in SOURCES:
        for path in sorted(glob.glob(pattern)):
            for line in Path(path).read_text(errors="ignore").splitlines():
                tokens = re.findall(r"[A-Za-z][A-Za-z']*[.,;:?!]?", line)
                if len(tokens) >= 6 and len(" ".join(tokens)) > 0.8 * len(line.strip()):
                    words.extend(tokens)
    chunks = [" ".join(words[i:i + words_each]) for i in range(0, len(words) - words_each, words_each)]
    random.Random(seed).shuffle(chunks)
    return chunks


def flite(text: str, voice: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True)
        return load_audio(out, SAMPLE_RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from voicefake.synthesis.espeak import speak

    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, text in enumerate(passages(60, args.seed)[:args.count]):
        if index % 5 == 4:
            voice = rng.choice(FLITE)
            wav, speaker = flite(text, voice), f"flite-{voice}"
        else:
            voice = rng.choice(ESPEAK) + rng.choice(VARIANTS)
            rate, pitch = rng.randint(130, 185), rng.choice([25, 40, 55, 70])
            wav, rate_hz = speak(text, voice, rate, pitch)
            wav, speaker = resample(wav, rate_hz, SAMPLE_RATE), f"espeak-{voice}-p{pitch}"
        wav = wav[:28 * SAMPLE_RATE].astype(np.float32)
        path = (args.out / f"synth_{index:04d}.wav").resolve()
        write_audio(path, wav, SAMPLE_RATE, force=True)
        rows.append(ManifestRow(path=str(path), speaker=speaker, label="synthetic", system=speaker.split("-")[0],
                                transcript=text, media="audio", sample_rate=SAMPLE_RATE, channels=1,
                                duration_s=round(len(wav) / SAMPLE_RATE, 3), folder="conversion_synthetic",
                                license="generated", notes="recipes/conversion/make_synthetic.py"))
    write_manifest(rows, args.out / "manifest.csv")
    print(f"{len(rows)} files, {sum(r.duration_s for r in rows) / 60:.1f} min -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
