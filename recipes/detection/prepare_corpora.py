"""The public anti-spoofing corpora as detection manifests, for ``configs/full.yaml`` (GPUs).

    python recipes/detection/prepare_corpora.py asvspoof2019-la --root DATA/LA \\
        --out runs/detection/corpora/asvspoof2019_la.csv
    python recipes/detection/prepare_corpora.py asvspoof2021-la --root DATA/ASVspoof2021_LA_eval \\
        --keys DATA/keys/LA/CM/trial_metadata.txt --out runs/detection/corpora/asvspoof2021_la.csv
    python recipes/detection/prepare_corpora.py asvspoof2021-df --root DATA/ASVspoof2021_DF_eval \\
        --keys DATA/keys/DF/CM/trial_metadata.txt --out runs/detection/corpora/asvspoof2021_df.csv
    python recipes/detection/prepare_corpora.py in-the-wild --root DATA/release_in_the_wild \\
        --out runs/detection/corpora/in_the_wild.csv
    python recipes/detection/prepare_corpora.py wavefake --root DATA/generated_audio \\
        --ljspeech DATA/LJSpeech-1.1 --jsut DATA/jsut_ver1.1 --out runs/detection/corpora/wavefake.csv
    python recipes/detection/prepare_corpora.py merge runs/detection/corpora/*.csv runs/detection/data/manifest.csv \\
        --out runs/detection/asvspoof_itw_wavefake/manifest.csv

None of these corpora can be downloaded here (no internet); get them from their publishers
(ASVspoof: datashare.ed.ac.uk and asvspoof.org; In-the-Wild: deepfake-total.com; WaveFake:
zenodo 5642694, with LJSpeech-1.1 and JSUT 1.1 for its reals) and point ``--root`` at them.
Nothing is copied or converted: each manifest lists the corpus's own files, by paths relative
to the manifest's folder, so train with ``data.lazy=true`` (``configs/full.yaml`` does), which
reads each file when it is drawn.

Every row follows the shared data's manifest (``voicefake.data.manifests``): ``label`` real /
fake, ``system`` the attack or generator (``human`` for reals), ``folder`` the generator family
that the leave-one-generator-out folds hold out (``data.exclude_family``; reals keep their
corpus's name), ``speaker`` prefixed with the corpus (``asvspoof2019-LA_0079``, so
``data.exclude_corpus`` holds a whole corpus out), and ``notes`` with ``split`` (train / dev /
eval: training reads train and dev, ``benchmarks/detection_by_system.py --split eval`` scores
eval), ``channel`` (``clean``, or the codec a corpus applied) and ``corpus``.

Splits: ASVspoof keeps its own protocols (2019 LA train / dev / eval; 2021's evaluation sets are
eval only); In-the-Wild is split by speaker (``--dev-fraction`` of the speakers to dev, by a
fixed hash of the name; ``--eval-only`` makes it all eval, its usual role); WaveFake has one
speaker per language, so it is split by utterance (a fixed hash of the LJSpeech / JSUT id: a
fake and the recording it was vocoded from always land together). Families: ASVspoof 2019's
attacks by their waveform generator (:data:`ASVSPOOF2019_FAMILIES`, the database paper's table),
2021 DF's by the vocoder class in its keys, WaveFake's by architecture
(:data:`WAVEFAKE_FAMILIES`), In-the-Wild's fakes as one family (their systems are not named).

A file the protocol lists but the disk lacks, or one that cannot be read, is skipped and
counted in the summary line (the first of each kind is named); a missing protocol file is an error.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import soundfile as sf

from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, read_manifest, write_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_shared import hashed_fraction  # noqa: E402  (the shared data's split hash)

AUDIO_SUFFIXES = (".flac", ".wav")

# ASVspoof 2019 LA attacks by waveform generator (Wang et al., "ASVspoof 2019: a large-scale public
# database of synthesized, converted and replayed speech", 2020, table of LA systems). Family names
# shared with recipes/detection/prepare_shared.py where the generator is the same kind (world, nsf,
# griffin-lim), so a merged manifest's folds hold both corpora's copies of it out together.
ASVSPOOF2019_FAMILIES = {
    "A01": "neural-autoregressive",   # TTS, WaveNet
    "A02": "world",                   # TTS, WORLD
    "A03": "world",                   # TTS, WORLD
    "A04": "waveform-concatenation",  # TTS, unit selection (MaryTTS)
    "A05": "world",                   # VC (VAE), WORLD
    "A06": "spectral-filtering",      # VC, spectral filtering + OLA
    "A07": "world",                   # TTS, WORLD + GAN post-filter
    "A08": "nsf",                     # TTS, neural source-filter
    "A09": "classic-vocoder",         # TTS, Vocaine
    "A10": "neural-autoregressive",   # TTS, WaveRNN
    "A11": "griffin-lim",             # TTS, Griffin-Lim
    "A12": "neural-autoregressive",   # TTS, WaveNet
    "A13": "waveform-concatenation",  # TTS + VC, waveform concatenation + waveform filtering
    "A14": "classic-vocoder",         # TTS + VC, STRAIGHT
    "A15": "neural-autoregressive",   # TTS + VC, WaveNet
    "A16": "waveform-concatenation",  # = A04
    "A17": "spectral-filtering",      # VC, waveform filtering
    "A18": "classic-vocoder",         # VC, MFCC vocoder
    "A19": "spectral-filtering",      # = A06
}

# WaveFake's generator folders by architecture (first matching key, in this order)
WAVEFAKE_FAMILIES = (("hifigan", "hifigan"), ("waveglow", "waveglow"), ("parallel_wavegan", "parallel-wavegan"),
                     ("pwg", "parallel-wavegan"), ("melgan", "melgan"))

LJSPEECH_ID = re.compile(r"LJ\d{3}-\d{4}")
JSUT_ID = re.compile(r"BASIC5000_\d{4}")


@dataclass
class Collected:
    """A corpus's rows, and what was skipped (reason -> paths)."""

    rows: list[ManifestRow] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(path)


def in_dev(key: str, fraction: float) -> bool:
    """True for about ``fraction`` of keys, the same on every machine (prepare_shared's hash, not a random draw)."""
    return hashed_fraction(key) < fraction


def index_audio(root: Path) -> dict[str, Path]:
    """Audio files under ``root`` by stem (ASVspoof's names are unique across its folders)."""
    return {p.stem: p for p in sorted(root.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()}


def add_row(found: Collected, path: Path | None, out_dir: Path, listed_as: str, **columns: str) -> None:
    """Appends a row for ``path`` (sample rate, channels and duration read from its header), or
    notes it as missing or unreadable."""
    if path is None or not path.is_file():
        found.skip("listed but not on disk", str(path or listed_as))
        return
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        found.skip("unreadable", f"{path} ({' '.join(str(err).split())})")
        return
    found.rows.append(ManifestRow(path=os.path.relpath(path, out_dir), sample_rate=int(info.samplerate),
                                  channels=int(info.channels), duration_s=round(float(info.duration), 3),
                                  **columns))


def protocol_lines(path: Path, min_fields: int) -> Iterable[list[str]]:
    """The whitespace-separated fields of each non-empty line of a protocol file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: protocol file not found; point --root (or --keys) at the corpus as "
                                "unpacked (see this script's --help)")
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < min_fields:
            raise ValueError(f"{path}:{number}: expected at least {min_fields} fields, got {len(fields)}: {line!r}")
        yield fields


def label_of(key: str, where: str) -> str:
    if key not in ("bonafide", "spoof"):
        raise ValueError(f"{where}: key {key!r} is neither 'bonafide' nor 'spoof'")
    return "real" if key == "bonafide" else "fake"


def asvspoof2019_la(root: Path, out_dir: Path) -> Collected:
    """ASVspoof 2019 LA: ``root`` is the ``LA`` folder (protocols in
    ``ASVspoof2019_LA_cm_protocols``, audio in ``ASVspoof2019_LA_<part>/flac``)."""
    found = Collected()
    for part, suffix in (("train", "trn"), ("dev", "trl"), ("eval", "trl")):
        protocol = root / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{part}.{suffix}.txt"
        audio = index_audio(root / f"ASVspoof2019_LA_{part}")
        for speaker, utterance, _, attack, key in (f[:5] for f in protocol_lines(protocol, 5)):
            label = label_of(key, str(protocol))
            if label == "fake" and attack not in ASVSPOOF2019_FAMILIES:
                raise ValueError(f"{protocol}: unknown attack {attack!r} for {utterance} (expected A01-A19)")
            add_row(found, audio.get(utterance), out_dir, utterance, speaker=f"asvspoof2019-{speaker}", label=label,
                    system="human" if label == "real" else f"asvspoof2019-{attack}",
                    folder="asvspoof2019_la" if label == "real" else ASVSPOOF2019_FAMILIES[attack],
                    license="ODC-By-1.0",
                    notes=f"split={part};channel=clean;corpus=asvspoof2019-la" + (
                        f";attack={attack}" if label == "fake" else ""))
    return found


def asvspoof2021(root: Path, keys: Path, out_dir: Path, track: str) -> Collected:
    """ASVspoof 2021 LA or DF evaluation data (eval split only): ``root`` holds the flac files
    (any depth), ``keys`` is the track's ``keys/<LA|DF>/CM/trial_metadata.txt``. LA's channel is
    its codec and transmission; DF's its compression, and DF's family its vocoder class."""
    found = Collected()
    audio = index_audio(root)
    name = f"asvspoof2021-{track.lower()}"
    for fields in protocol_lines(keys, 8):
        speaker, utterance, codec, place, attack, key, _, subset = fields[:8]
        label = label_of(key, str(keys))
        channel = "clean" if codec in ("none", "nocodec", "-") else (f"{codec}-{place}" if track == "LA" else codec)
        if label == "real":
            family = name.replace("-", "_")
        elif track == "LA":
            family = ASVSPOOF2019_FAMILIES.get(attack, "unknown")
        else:  # DF: the vocoder class (traditional_vocoder, neural_vocoder_autoregressive, ...)
            family = fields[8].replace("_", "-") if len(fields) > 8 and fields[8] != "-" else "unknown"
        extra = f";source={place}" if track == "DF" else ""
        add_row(found, audio.get(utterance), out_dir, utterance, speaker=f"asvspoof2021-{speaker}", label=label,
                system="human" if label == "real" else f"asvspoof2021-{attack}", folder=family,
                license="ODC-By-1.0",
                notes=f"split=eval;channel={channel};corpus={name};subset={subset}{extra}"
                      + (f";attack={attack}" if label == "fake" else ""))
    return found


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def in_the_wild(root: Path, out_dir: Path, dev_fraction: float, eval_only: bool) -> Collected:
    """In-the-Wild (Müller et al., 2022): ``root`` holds ``meta.csv`` (file, speaker, label:
    ``bona-fide`` / ``spoof``) and the wav files. Split by speaker, or all eval."""
    found = Collected()
    meta = root / "meta.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: not found; point --root at release_in_the_wild (it holds meta.csv)")
    with meta.open(newline="") as f:
        reader = csv.DictReader(f)
        if not {"file", "speaker", "label"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{meta}: expected the columns file, speaker, label; got {reader.fieldnames}")
        for number, item in enumerate(reader, 2):
            if item["label"] not in ("bona-fide", "spoof"):
                raise ValueError(f"{meta}:{number}: label {item['label']!r} is neither 'bona-fide' nor 'spoof'")
            label = "real" if item["label"] == "bona-fide" else "fake"
            speaker = f"itw-{slug(item['speaker'])}"
            split = "eval" if eval_only else "dev" if in_dev(speaker, dev_fraction) else "train"
            add_row(found, root / item["file"], out_dir, item["file"], speaker=speaker, label=label,
                    system="human" if label == "real" else "in-the-wild",
                    folder="in_the_wild" if label == "real" else "in-the-wild", license="see the corpus",
                    notes=f"split={split};channel=clean;corpus=in-the-wild")
    return found


def wavefake_family(folder: str) -> str:
    low = folder.lower()
    return next((family for key, family in WAVEFAKE_FAMILIES if key in low), "unknown")


def wavefake(root: Path, ljspeech: Path | None, jsut: Path | None, out_dir: Path, dev_fraction: float) -> Collected:
    """WaveFake (Frank & Schönherr, 2021): ``root`` is ``generated_audio`` (one folder per
    generator); reals from LJSpeech-1.1 (``wavs/``) and JSUT (``basic5000/wav/``) where given.
    Split by utterance id."""
    found = Collected()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"{root}: no generator folders; point --root at WaveFake's generated_audio")
    for folder in folders:
        language = "jsut" if folder.name.lower().startswith("jsut") else "ljspeech"
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
            ids = (JSUT_ID if language == "jsut" else LJSPEECH_ID).findall(path.stem)
            key = ids[0] if ids else f"{folder.name}/{path.stem}"  # TTS prompts: no source recording
            add_row(found, path, out_dir, str(path), speaker=f"wavefake-{language}", label="fake",
                    system=f"wavefake-{folder.name}", folder=wavefake_family(folder.name), license="CC-BY-SA-4.0",
                    notes=f"split={'dev' if in_dev(key, dev_fraction) else 'train'};channel=clean;corpus=wavefake;"
                          f"utterance={key}")
    for language, reals, pattern, licence in (("ljspeech", ljspeech, "wavs", "public domain"),
                                              ("jsut", jsut, "basic5000/wav", "see the corpus")):
        if reals is None:
            continue
        base = reals / pattern
        if not base.is_dir():
            raise FileNotFoundError(f"{base}: not found; point --{language} at the corpus's root")
        for path in sorted(p for p in base.iterdir() if p.suffix.lower() == ".wav"):
            add_row(found, path, out_dir, str(path), speaker=f"wavefake-{language}", label="real", system="human",
                    folder=language, license=licence,
                    notes=f"split={'dev' if in_dev(path.stem, dev_fraction) else 'train'};channel=clean;"
                          f"corpus=wavefake;utterance={path.stem}")
    return found


def merge(manifests: list[Path], out: Path) -> Collected:
    """Several manifests as one, each path re-rooted at ``out``'s folder; a file listed twice
    is kept once."""
    found = Collected()
    seen: set[str] = set()
    for manifest in manifests:
        for row in read_manifest(manifest):
            path = os.path.relpath(manifest.parent / row.path, out.parent)
            key = os.path.normpath(os.path.join(out.parent, path))
            if key in seen:
                found.skip("listed twice", key)
                continue
            seen.add(key)
            found.rows.append(replace(row, path=path))
    return found


def summary(found: Collected, out: Path) -> str:
    """One line: rows by split and label, families, hours, what was skipped."""
    by = Counter((r.tags.get("split", "?"), r.label) for r in found.rows)
    splits = ", ".join(f"{s} {by[(s, 'real')]} real / {by[(s, 'fake')]} fake"
                       for s in sorted({s for s, _ in by}))
    hours = sum(r.duration_s for r in found.rows) / 3600
    families = sorted({r.folder for r in found.rows if r.is_fake})
    skipped = "; ".join(f"skipped {len(v)} {reason} (first: {v[0]})" for reason, v in found.skipped.items())
    return (f"{len(found.rows)} recordings ({splits}), {hours:.1f} h, fake families {families} -> {out}"
            + (f"; {skipped}" if skipped else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", choices=["asvspoof2019-la", "asvspoof2021-la", "asvspoof2021-df", "in-the-wild",
                                           "wavefake", "merge"])
    parser.add_argument("manifests", nargs="*", type=Path, help="merge: the manifests to join")
    parser.add_argument("--root", type=Path, help="the corpus as unpacked")
    parser.add_argument("--keys", type=Path, help="ASVspoof 2021: keys/<LA|DF>/CM/trial_metadata.txt")
    parser.add_argument("--ljspeech", type=Path, help="WaveFake: LJSpeech-1.1's root (its wavs/ are the reals)")
    parser.add_argument("--jsut", type=Path, help="WaveFake: JSUT's root (basic5000/wav/ are the reals)")
    parser.add_argument("--dev-fraction", type=float, default=0.2,
                        help="In-the-Wild: share of speakers, WaveFake: of utterances, in dev (default 0.2)")
    parser.add_argument("--eval-only", action="store_true", help="In-the-Wild: every recording in split eval")
    parser.add_argument("--out", type=Path, required=True, help="the manifest to write (CSV)")
    args = parser.parse_args()
    if not 0.0 <= args.dev_fraction < 1.0:
        raise ValueError(f"--dev-fraction must be in [0, 1), got {args.dev_fraction}")
    out_dir = args.out.resolve().parent
    if args.corpus == "merge":
        if not args.manifests:
            raise ValueError("merge needs the manifests to join, e.g. merge runs/detection/corpora/*.csv")
        found = merge(args.manifests, args.out.resolve())
    else:
        if args.root is None:
            raise ValueError(f"{args.corpus} needs --root, the corpus as unpacked")
        if args.manifests:
            raise ValueError(f"{args.corpus} takes no manifest arguments (only merge does): {args.manifests}")
        root = args.root.resolve()
        makers: dict[str, Callable[[], Collected]] = {
            "asvspoof2019-la": lambda: asvspoof2019_la(root, out_dir),
            "asvspoof2021-la": lambda: asvspoof2021(root, keys_for("LA"), out_dir, "LA"),
            "asvspoof2021-df": lambda: asvspoof2021(root, keys_for("DF"), out_dir, "DF"),
            "in-the-wild": lambda: in_the_wild(root, out_dir, args.dev_fraction, args.eval_only),
            "wavefake": lambda: wavefake(root, args.ljspeech and args.ljspeech.resolve(),
                                         args.jsut and args.jsut.resolve(), out_dir, args.dev_fraction),
        }

        def keys_for(track: str) -> Path:
            return (args.keys or root.parent / "keys" / track / "CM" / "trial_metadata.txt").resolve()

        found = makers[args.corpus]()
    if not found.rows:
        raise ValueError(f"{args.corpus}: no recordings found ({summary(found, args.out)}); nothing written")
    write_manifest(found.rows, args.out)
    print(summary(found, args.out))


if __name__ == "__main__":
    run_recipe(main)
