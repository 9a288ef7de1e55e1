"""Real wideband voices from Debian's KLettres data: letters and syllables read by native
speakers of 20 languages, ~51 min at 44.1 kHz.

    python recipes/detection/prepare_klettres.py --out runs/data/klettres

Downloads ``klettres-data`` with ``apt-get download`` (no root needed; cached in ``--cache``),
unpacks it with ``dpkg-deb -x`` and writes every recording as 16 kHz FLAC under
``OUT/audio/<speaker>/`` plus ``OUT/manifest.csv`` (paths relative to OUT). One speaker per
language folder (``klettres-<language>``); the transcript is the letter or syllable (the
file name). None of these voices is in any other data here (``new_voice=1``): the detector
benchmark uses them as a second unseen-voice false-alarm check, wideband where the Asterisk
one is narrowband (``benchmarks/detection.py --unseen runs/data/asterisk runs/data/klettres``).
Licence: GPL-2+ (the KLettres package).
"""

from __future__ import annotations

import sys
from pathlib import Path

from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_asterisk import convert, debian_voices_main  # noqa: E402  (the same download cache and conversion)

PACKAGE = "klettres-data"
SAMPLE_RATE = 16000
MIN_SECONDS = 0.5
KINDS = ("alpha", "syllab")


def collect(root: Path, out_dir: Path) -> tuple[list[ManifestRow], list[str]]:
    """Writes every recording under ``root``'s ``usr/share/klettres/<language>/<kind>/`` as
    FLAC under ``out_dir``; returns the manifest rows and one line per unreadable file (skipped)."""
    rows: list[ManifestRow] = []
    unreadable: list[str] = []
    base = root / "usr/share/klettres"
    for path in sorted(p for p in base.glob("*/*/*") if p.suffix in (".ogg", ".wav") and p.is_file()):
        language, kind = path.parent.parent.name, path.parent.name
        if kind not in KINDS:
            continue
        speaker = f"klettres-{language}"
        out = out_dir / "audio" / speaker / kind / f"{path.stem}.flac"
        duration = convert(path, out, SAMPLE_RATE, unreadable)
        if duration is None or duration < MIN_SECONDS:
            continue
        rows.append(ManifestRow(
            path=out.relative_to(out_dir).as_posix(), speaker=speaker, label="real", system="human",
            transcript=path.stem, sample_rate=SAMPLE_RATE, channels=1, duration_s=round(duration, 3),
            folder="klettres_debian", license="GPL-2+",
            notes=f"package={PACKAGE};language={language};kind={kind};new_voice=1"))
    return rows, unreadable


def main() -> None:
    debian_voices_main(__doc__, [PACKAGE], "klettres", lambda roots, out: collect(roots[PACKAGE], out), "recordings")


if __name__ == "__main__":
    run_recipe(main)
