"""Real acted voices from Debian's Fish Fillets NG data: the two fish of the game's spoken
dialogs in Czech and in Dutch, four voices, 2.7 h of studio lines (22.05-44.1 kHz Ogg Vorbis).

    python recipes/detection/prepare_fillets.py --out runs/data/fillets

Downloads ``fillets-ng-data``, ``fillets-ng-data-cs`` and ``fillets-ng-data-nl`` with
``apt-get download`` (no root needed; cached in ``--cache``), unpacks them with ``dpkg-deb -x``
and writes each line of the two fish (character codes ``m`` and ``v`` in the file names:
``<level>-<character>-<word>.ogg`` or ``<character>-<word>.ogg``) as 16 kHz FLAC under
``OUT/audio/<speaker>/`` plus ``OUT/manifest.csv`` (paths relative to OUT). One speaker per
language and character (``fillets-cs-m``, ...). The other characters (robots, parrots, the
narrator of the intro) are left out: some are voiced through effects, and a real label must
not cover a processed voice. None of these voices is in any other data here (``new_voice=1``):
the detector's stage ``fillets`` trains on the Czech pair and its benchmark keeps the Dutch
pair unseen (``benchmarks/detection.py --unseen ... runs/data/fillets``). Licence: GPL-2+.
"""

from __future__ import annotations

import sys
from pathlib import Path

from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_asterisk import convert, debian_voices_main  # noqa: E402  (the same download cache and conversion)

PACKAGES = ("fillets-ng-data", "fillets-ng-data-cs", "fillets-ng-data-nl")
SAMPLE_RATE = 16000
MIN_SECONDS = 0.5
LANGUAGES = ("cs", "nl")
CHARACTERS = ("m", "v")  # the small fish and the big fish, who speak almost every line


def character(stem: str) -> str:
    """The speaking character's code in a dialog file name: ``vit-m-hlava`` -> ``m``,
    ``m-obdivovat`` -> ``m``, ``sp-shout_small_00`` -> ``sp``; ``""`` for a name without one."""
    parts = stem.split("-")
    if len(parts) < 2:
        return ""
    return parts[-2] if len(parts) >= 3 else parts[0]


def collect(roots: dict[str, Path], out_dir: Path) -> tuple[list[ManifestRow], list[str]]:
    """Writes each fish line under the unpacked packages' ``usr/share/games/fillets-ng/sound``
    as FLAC under ``out_dir``; returns the manifest rows and one line per unreadable file (skipped)."""
    rows: list[ManifestRow] = []
    unreadable: list[str] = []
    files = sorted({p.relative_to(root / "usr/share/games/fillets-ng/sound"): p for root in roots.values()
                    for p in (root / "usr/share/games/fillets-ng/sound").glob("**/*.ogg")}.items())
    for rel, path in files:
        language, who = path.parent.name, character(path.stem)
        if language not in LANGUAGES or who not in CHARACTERS:
            continue
        level = "__".join(rel.parts[:-2])  # e.g. "city", "share__borejokes"
        speaker = f"fillets-{language}-{who}"
        out = out_dir / "audio" / speaker / f"{level}__{path.stem}.flac"
        duration = convert(path, out, SAMPLE_RATE, unreadable)
        if duration is None or duration < MIN_SECONDS:
            continue
        rows.append(ManifestRow(
            path=out.relative_to(out_dir).as_posix(), speaker=speaker, label="real", system="human",
            transcript="", sample_rate=SAMPLE_RATE, channels=1, duration_s=round(duration, 3),
            folder="fillets_debian", license="GPL-2+",
            notes=f"package=fillets-ng-data-{language};language={language};character={who};level={level};new_voice=1"))
    return rows, unreadable


def main() -> None:
    debian_voices_main(__doc__, list(PACKAGES), "fillets", collect, "lines")


if __name__ == "__main__":
    run_recipe(main)
