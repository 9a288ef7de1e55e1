"""Writes phone transcriptions for the content encoder's CTC loss (``train.ctc_weight``).

Every file of DATA/train.csv and DATA/dev.csv (written by prepare_teacher.py), plus the real
recordings of ``--extra`` folders (prepare_asterisk.py outputs: telephone prompts in five
languages), gets a phone sequence:

* the text is the manifest's transcript; English files without one (LibriSpeech) are
  transcribed by Whisper tiny.en (the teacher's model, used only here, offline) and marked
  ``source: whisper`` (pseudo-labels: Whisper's own errors are in them);
* espeak-ng (the text front end's engine) turns the text into IPA phones of the file's
  language (``language=xx`` or ``(xx)`` in the notes; English otherwise); stress marks are
  dropped, length marks kept. Files whose language has no transcript are skipped.

Usage:
    python recipes/conversion/prepare_phones.py --data runs/data/conversion [--extra runs/data/asterisk]
Writes DATA/phones.json: {"vocab": [phone, ...], "items": [{split, path, language, text,
source, phones}, ...]}; ``path`` is absolute. Phone ids are 1 + the vocab index (0 is the CTC
blank).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
from prepare_teacher import whisper_model  # type: ignore[import-not-found]

from voicefake.audio.io import load_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest

SAMPLE_RATE = 16000
VOICES = {"en": "en-us", "es": "es", "fr": "fr", "it": "it", "ru": "ru"}  # names both espeak-ng and its library know
STRESS = str.maketrans("", "", "ˈˌ")


def language(row: ManifestRow) -> str:
    """The row's language code from its notes (``language=xx`` or ``(xx)``), English by default."""
    found = re.search(r"language=(\w+)", row.notes) or re.search(r"\((\w\w)\)", row.notes)
    return found.group(1) if found else "en"


def phonemize(text: str, lang: str) -> list[str]:
    """IPA phones of ``text`` by espeak-ng, stress removed; [] for a language it is not given."""
    if lang not in VOICES or not text.strip():
        return []
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep=_", "-v", VOICES[lang], text],
                         capture_output=True, text=True, check=True).stdout
    out = re.sub(r"\([a-z-]+\)", " ", out.translate(STRESS))  # language-switch markers such as (en)
    return [p for word in out.split() for p in word.split("_") if p]


class Transcriber:
    """Whisper tiny.en (the teacher's model), beam search of width 5, English."""

    def __init__(self, threads: int) -> None:
        self.model = whisper_model(threads)

    def __call__(self, wav: np.ndarray) -> str:
        segments, _ = self.model.transcribe(wav.astype(np.float32), beam_size=5, language="en")
        return " ".join(s.text.strip() for s in segments)


def extra_rows(folder: Path) -> list[ManifestRow]:
    """Real recordings of a prepare_asterisk.py folder that the shared data does not already
    hold (``in_shared=0``; the others are in DATA/train.csv), paths made absolute."""
    rows = read_manifest(folder / "manifest.csv")
    return [dataclasses.replace(r, path=str((folder / r.path).resolve()))
            for r in rows if r.label == "real" and "in_shared=0" in r.notes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="prepare_asterisk.py folders (train only)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    target = args.data / "phones.json"
    old = {i["path"]: i for i in json.loads(target.read_text())["items"]} if target.exists() else {}
    work: list[tuple[str, ManifestRow]] = []
    for split in ("train", "dev"):
        work += [(split, dataclasses.replace(r, path=str((root / r.path).resolve())))
                 for r in read_manifest(args.data / f"{split}.csv")]
    for folder in args.extra:
        work += [("train", r) for r in extra_rows(folder)]
    transcriber: Transcriber | None = None
    items, start = [], time.time()
    for split, row in work:
        lang, text, source = language(row), row.transcript, "manifest"
        if row.path in old:
            text, source = old[row.path]["text"], old[row.path]["source"]
        elif not text and lang == "en":
            transcriber = transcriber or Transcriber(args.threads)
            text, source = transcriber(load_audio(row.path, SAMPLE_RATE)), "whisper"
        phones = phonemize(text, lang)
        if phones:
            items.append({"split": split, "path": row.path, "language": lang, "text": text,
                          "source": source, "phones": phones})
    vocab = sorted({p for i in items if i["split"] == "train" for p in i["phones"]})
    known = set(vocab)
    for item in items:  # dev phones that training never sees cannot be predicted: dropped
        item["phones"] = [p for p in item["phones"] if p in known]
    target.write_text(json.dumps({"vocab": vocab, "items": items}, ensure_ascii=False, indent=0))
    count = {s: sum(i["split"] == s for i in items) for s in ("train", "dev")}
    print(f"{count['train']} train / {count['dev']} dev files with phones, {len(vocab)} phones, "
          f"{sum(i['source'] == 'whisper' for i in items)} transcribed by Whisper, "
          f"{time.time() - start:.0f} s -> {target}")


if __name__ == "__main__":
    run_recipe(main)
