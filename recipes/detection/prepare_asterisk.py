"""Real telephone voices from Debian's Asterisk prompt packages: ~3 h of 8 kHz studio speech.

    python recipes/detection/prepare_asterisk.py --out runs/data/asterisk

Downloads the packages with ``apt-get download`` (no root needed; cached in ``--cache``),
unpacks them with ``dpkg-deb -x`` and writes every prompt as 8 kHz FLAC under
``OUT/audio/<speaker>/`` plus ``OUT/manifest.csv`` (our manifest format, paths relative to
OUT). The five core voices (Allison Smith in English and Spanish, June Wallack, Carlo Flora,
the Russian voice) are the speakers of the shared data's ``asterisk_prompts/``; the prompts
that folder already holds are marked ``in_shared=1`` in ``notes`` so that no recording is
used twice. Three voices are in no other data here (``new_voice=1``): July Jimenez (Colombian
Spanish, GSM-coded), Armelle Desjardins (French, GSM-coded) and the Menardi Italian voice;
the detector keeps them for its unseen-voice false-alarm check, other recipes may train on
them. Transcripts come with the core voices (``core-sounds-<lang>.txt``).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
from pathlib import Path

import soundfile as sf

from voicefake.audio.decode import AudioError
from voicefake.audio.io import load_audio, write_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest

SAMPLE_RATE = 8000
MIN_SECONDS = 0.5
# package -> (folder under usr/share/asterisk/sounds, speaker, language, shared folder, licence, new voice)
VOICES = {
    "asterisk-core-sounds-en-wav": ("en_US_f_Allison", "asterisk-allison_smith", "en", "en", "CC-BY-SA-3.0", False),
    "asterisk-core-sounds-es-wav": ("es_MX_f_Allison", "asterisk-allison_smith", "es", "es", "CC-BY-SA-3.0", False),
    "asterisk-core-sounds-fr-wav": ("fr_CA_f_June", "asterisk-fr-june_wallack", "fr", "fr", "CC-BY-SA-3.0", False),
    "asterisk-core-sounds-it-wav": ("it_IT_m_Carlo", "asterisk-it-carlo_flora", "it", "it", "CC-BY-3.0", False),
    "asterisk-core-sounds-ru-wav": ("ru_RU_f_IvrvoiceRU", "asterisk-ru-ivrvoice", "ru", "ru", "CC-BY-3.0", False),
    "asterisk-prompt-es-co": ("es", "asterisk-es-co-july_jimenez", "es", "", "GPL-2", True),
    "asterisk-prompt-fr-armelle": ("fr", "asterisk-fr-armelle_desjardins", "fr", "", "GPL-2+", True),
    "asterisk-prompt-it-menardi-wav": ("it_IT_f_Menardi", "asterisk-it-menardi", "it", "", "CC-BY-SA-3.0", True),
}
TRANSCRIPTS = {"en": "asterisk-core-sounds-en", "es": "asterisk-core-sounds-es", "fr": "asterisk-core-sounds-fr",
               "it": "asterisk-core-sounds-it", "ru": "asterisk-core-sounds-ru"}
SKIP_FOLDERS = {"silence"}


def fetch(packages: list[str], cache: Path) -> dict[str, Path]:
    """Downloads (once) and unpacks each package into its own folder; package -> unpacked root."""
    debs, roots = cache / "debs", {}
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        if shutil.which("apt-get") is None:
            raise SystemExit(f"apt-get not found: cannot download {missing}; put the .deb files in {debs}")
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for package in packages:
        root = cache / "unpacked" / package
        if not root.exists():
            deb, partial = sorted(debs.glob(f"{package}_*.deb"))[-1], root.with_name(root.name + ".partial")
            partial.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
            partial.rename(root)
        roots[package] = root
    return roots


def transcripts(roots: dict[str, Path], language: str) -> dict[str, str]:
    """prompt key (e.g. ``digits/1``) -> text, from the language's core-sounds list."""
    package = TRANSCRIPTS[language]
    path = roots[package] / "usr/share/doc" / package / f"core-sounds-{language}.txt.gz"
    out = {}
    for line in gzip.open(path, "rt", encoding="utf-8", errors="replace"):
        key, sep, text = line.partition(":")
        if sep and not line.startswith(";") and not text.strip().startswith("["):
            out[key.strip()] = text.strip()
    return out


def shared_keys() -> set[tuple[str, str]]:
    """(language folder, prompt name) of the prompts already in the shared data."""
    root = data_root(required=False)
    if root is None:
        return set()
    return {(Path(r.path).parent.name, Path(r.path).stem) for r in read_manifest(root / "manifest.csv")
            if r.folder == "asterisk_prompts"}


def convert(path: Path, out: Path, rate: int, unreadable: list[str]) -> float | None:
    """Writes ``path`` as a ``rate`` Hz FLAC at ``out`` (once; re-runs reuse it) and returns its
    duration, or None after noting an undecodable file in ``unreadable``."""
    if not out.exists():
        try:
            wav = load_audio(path, rate, allow_silence=True)
        except AudioError as err:
            unreadable.append(str(err))
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        write_audio(out, wav, rate)
    return float(sf.info(str(out)).duration)


def collect(roots: dict[str, Path], out_dir: Path, in_shared: set[tuple[str, str]],
            voices: dict | None = None) -> tuple[list[ManifestRow], list[str]]:
    """Writes every prompt of ``voices`` (default :data:`VOICES`) as FLAC under ``out_dir`` and
    returns its manifest rows, plus one line per file that could not be decoded (skipped)."""
    rows: list[ManifestRow] = []
    unreadable: list[str] = []
    for package, (folder, speaker, language, shared_lang, licence, new) in (voices or VOICES).items():
        texts = transcripts(roots, language) if not new else {}
        base = roots[package] / "usr/share/asterisk/sounds" / folder
        for path in sorted(p for p in base.rglob("*") if p.suffix in (".wav", ".gsm") and p.is_file()):
            key = path.relative_to(base).with_suffix("").as_posix()
            if key.split("/")[0] in SKIP_FOLDERS:
                continue
            out = out_dir / "audio" / speaker / language / f"{key}.flac"
            duration = convert(path, out, SAMPLE_RATE, unreadable)
            if duration is None or duration < MIN_SECONDS:
                continue
            shared = int(bool(shared_lang) and "/" not in key and (shared_lang, key) in in_shared)
            rows.append(ManifestRow(
                path=out.relative_to(out_dir).as_posix(), speaker=speaker, label="real", system="human",
                transcript=texts.get(key, ""), sample_rate=SAMPLE_RATE, channels=1, duration_s=round(duration, 3),
                folder="asterisk_debian", license=licence,
                notes=f"package={package};language={language};in_shared={shared};new_voice={int(new)}"))
    return rows, unreadable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/data/asterisk"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/voicefake/asterisk")
    args = parser.parse_args()
    roots = fetch([*VOICES, *TRANSCRIPTS.values()], args.cache)
    finish(*collect(roots, args.out, shared_keys()), args.out, "prompts")


def debian_voices_main(doc: str, packages: list[str], name: str, collect, noun: str) -> None:
    """The command line of a recipe that turns Debian packages' recordings into a manifest
    (prepare_klettres / prepare_fillets / prepare_ktuberling): ``--out`` (default
    ``runs/data/<name>``) and ``--cache``; ``collect(roots, out)`` gets package -> unpacked root."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/data") / name)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/voicefake" / name)
    args = parser.parse_args()
    finish(*collect(fetch(packages, args.cache), args.out), args.out, noun)


def finish(rows: list[ManifestRow], unreadable: list[str], out: Path, noun: str) -> None:
    """Writes ``out/manifest.csv`` and prints what was skipped and what was written."""
    write_manifest(rows, out / "manifest.csv")
    for line in unreadable:
        print(f"skipped (unreadable): {line}")
    minutes = sum(r.duration_s for r in rows) / 60
    print(f"{len(rows)} {noun}, {minutes:.1f} min, {len({r.speaker for r in rows})} speakers -> {out / 'manifest.csv'}")


if __name__ == "__main__":
    run_recipe(main)
