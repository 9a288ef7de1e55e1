"""Two more unseen voices: the Mandarin syllables of Debian's ``gcin-voice`` (the gcin input
method's pronunciations), every syllable read once by each of two speakers, 44.1 kHz Ogg Vorbis.

    python recipes/detection/prepare_gcin.py --out runs/data/gcin

Downloads ``gcin-voice`` with ``apt-get download`` (no root needed; cached in ``--cache``) and
unpacks it with ``dpkg-deb -x``. A syllable lasts 0.1-0.6 s, too short to judge alone, so each
voice's syllables are shuffled (seed 0) and joined :data:`PER_RECORDING` at a time, 0.25 s apart,
into recordings of about 4-5 s (16 kHz FLAC under ``OUT/audio/<speaker>/`` plus
``OUT/manifest.csv``; a leftover group shorter than that is dropped). The transcript names the
syllables in Zhuyin. Neither voice is in any other data here (``new_voice=1``); they are for the
unseen-voice check only (``benchmarks/detection.py --unseen runs/data/gcin``), never for training
or calibration.

Voices and licences (the package's copyright file): ``gcin-liu`` (``*/3.ogg``, Edward Der-Hua
Liu, GPL-3 or LGPL-3) and ``gcin-lo`` (``*/5.ogg``, Chu Lo for the ChionMeilin project, CC-BY-3.0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from voicefake.audio.decode import AudioError
from voicefake.audio.io import load_audio, write_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_asterisk import debian_voices_main  # noqa: E402  (the same download cache and command line)

PACKAGE = "gcin-voice"
SAMPLE_RATE = 16000
PER_RECORDING = 8
GAP_S = 0.25
VOICES = {"3": ("gcin-liu", "GPL-3 or LGPL-3"), "5": ("gcin-lo", "CC-BY-3.0")}


def collect(root: Path, out_dir: Path) -> tuple[list[ManifestRow], list[str]]:
    """Joins each voice's syllables under ``root``'s ``usr/share/gcin-voice/ogg/<syllable>/``
    into recordings under ``out_dir``; returns the manifest rows and one line per unreadable
    file (skipped)."""
    rows: list[ManifestRow] = []
    unreadable: list[str] = []
    base = root / "usr/share/gcin-voice/ogg"
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    for stem, (speaker, licence) in VOICES.items():
        paths = sorted(base.glob(f"*/{stem}.ogg"))
        order = np.random.default_rng(0).permutation(len(paths))
        for group, start in enumerate(range(0, len(order) - PER_RECORDING + 1, PER_RECORDING)):
            waves, names = [], []
            for index in order[start : start + PER_RECORDING]:
                try:
                    waves.append(load_audio(paths[index], SAMPLE_RATE, allow_silence=True))
                except AudioError as err:
                    unreadable.append(str(err))
                    continue
                names.append(paths[index].parent.name)
            if len(waves) < PER_RECORDING // 2:
                continue
            wav = np.concatenate([x for w in waves for x in (w, gap)][:-1])
            out = out_dir / "audio" / speaker / f"{group:04d}.flac"
            out.parent.mkdir(parents=True, exist_ok=True)
            write_audio(out, wav, SAMPLE_RATE)
            rows.append(ManifestRow(
                path=out.relative_to(out_dir).as_posix(), speaker=speaker, label="real", system="human",
                transcript=" ".join(names), sample_rate=SAMPLE_RATE, channels=1,
                duration_s=round(wav.size / SAMPLE_RATE, 3), folder="gcin_debian", license=licence,
                notes=f"package={PACKAGE};language=zh;syllables={len(waves)};new_voice=1"))
    return rows, unreadable


def main() -> None:
    debian_voices_main(__doc__, [PACKAGE], "gcin", lambda roots, out: collect(roots[PACKAGE], out), "recordings")


if __name__ == "__main__":
    run_recipe(main)
