"""Real voices from many recording chains: the spoken words of Debian's KTuberling ("Potato
Guy"), 28 min in 22 languages, each language recorded by its own volunteers on their own
equipment (8-48 kHz, mono and stereo, WAV and Ogg Vorbis).

    python recipes/detection/prepare_ktuberling.py --out runs/data/ktuberling

Downloads ``ktuberling-data`` with ``apt-get download`` (no root needed; cached in ``--cache``),
unpacks it with ``dpkg-deb -x`` and writes every word as 16 kHz FLAC under
``OUT/audio/<speaker>/`` plus ``OUT/manifest.csv`` (paths relative to OUT). One speaker per
language folder (``ktuberling-<language>``; a language folder can hold more than one voice).
The Serbian script variants (``sr@latin``, ...) hold the same recordings as ``sr`` and are
skipped. None of these voices is in any other data here (``new_voice=1``). The detector's stage
``ktuberling`` trains on the languages of ``prepare_shared.KTUBERLING_TRAIN``; its benchmark keeps
the others unseen (``benchmarks/detection.py --unseen runs/data/ktuberling --trained-voices ...``).
Licence: GPL-2+ (the KTuberling package).
"""

from __future__ import annotations

import sys
from pathlib import Path

from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_asterisk import convert, debian_voices_main  # noqa: E402  (the same download cache and conversion)

PACKAGE = "ktuberling-data"
SAMPLE_RATE = 16000
MIN_SECONDS = 0.5


def collect(root: Path, out_dir: Path) -> tuple[list[ManifestRow], list[str]]:
    """Writes every word under ``root``'s ``usr/share/ktuberling/sounds/<language>/`` as FLAC
    under ``out_dir``; returns the manifest rows and one line per unreadable file (skipped)."""
    rows: list[ManifestRow] = []
    unreadable: list[str] = []
    base = root / "usr/share/ktuberling/sounds"
    for path in sorted(p for p in base.glob("*/*") if p.suffix in (".ogg", ".wav") and p.is_file()):
        language = path.parent.name
        if "@" in language:  # a script variant: the same recordings as the plain language
            continue
        speaker = f"ktuberling-{language}"
        out = out_dir / "audio" / speaker / f"{path.stem}.flac"
        duration = convert(path, out, SAMPLE_RATE, unreadable)
        if duration is None or duration < MIN_SECONDS:
            continue
        rows.append(ManifestRow(
            path=out.relative_to(out_dir).as_posix(), speaker=speaker, label="real", system="human",
            transcript=path.stem.replace("_", " "), sample_rate=SAMPLE_RATE, channels=1,
            duration_s=round(duration, 3), folder="ktuberling_debian", license="GPL-2+",
            notes=f"package={PACKAGE};language={language};new_voice=1"))
    return rows, unreadable


def main() -> None:
    debian_voices_main(__doc__, [PACKAGE], "ktuberling", lambda roots, out: collect(roots[PACKAGE], out), "words")


if __name__ == "__main__":
    run_recipe(main)
