"""Packs the content encoder's training data: clean + phone-line log-mels and teacher features.

For every file of OUT/train.csv (written by prepare_teacher.py): the 16 kHz log-mel (MEL_16K_80,
the vocoder's mel) of the clean audio and of one simulated phone call (voicefake.channel),
plus the teacher features. Dev files give fixed 2 s crops (clean) for the evaluation.

If DATA/phones.json exists (prepare_phones.py), its transcribed utterances of up to
``CTC_MAX_S`` seconds are packed too, whole, for the CTC loss: train ones as clean + phone-line
mels with their phone ids (``ctc``), dev ones clean (``dev_ctc``), and the inventory
(``phone_vocab``; id = 1 + index, 0 is the blank).

Usage:
    python recipes/conversion/build_cache.py --data runs/data/conversion
Writes DATA/cache.pt.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from prepare_teacher import SAMPLE_RATE, teacher_path  # type: ignore[import-not-found]

from voicefake.audio.features import MEL_16K_80, MelSpectrogram
from voicefake.audio.io import load_audio
from voicefake.channel import phone_call
from voicefake.config import run_recipe
from voicefake.data.manifests import data_root, read_manifest

DEV_FRAMES = 200
CTC_MAX_S = 16.0


def phone_data(data: Path, mel: MelSpectrogram, known: dict[str, torch.Tensor]) -> dict:
    """The CTC part of the cache from DATA/phones.json; ``known``: path -> (2, M, F) mels already made."""
    spec = json.loads((data / "phones.json").read_text())
    index = {p: i + 1 for i, p in enumerate(spec["vocab"])}
    out: dict = {"phone_vocab": spec["vocab"], "ctc": {"mels": [], "phones": []}, "dev_ctc": {"mels": [], "phones": []}}
    for number, item in enumerate(spec["items"]):
        split = "ctc" if item["split"] == "train" else "dev_ctc"
        phones = torch.tensor([index[p] for p in item["phones"] if p in index], dtype=torch.int16)
        if item["path"] in known and split == "ctc":
            mels = known[item["path"]]
        else:
            wav = load_audio(item["path"], SAMPLE_RATE)
            if len(wav) > CTC_MAX_S * SAMPLE_RATE:
                continue
            clean = mel(torch.from_numpy(wav))
            mels = (clean if split == "dev_ctc" else torch.stack(
                [clean, mel(torch.from_numpy(phone_call(wav, SAMPLE_RATE, seed=number)[0]))])).half()
        if len(phones) == 0 or mels.shape[-1] > CTC_MAX_S * 100 or mels.shape[-1] < 2 * len(phones):
            continue
        out[split]["mels"].append(mels)
        out[split]["phones"].append(phones)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    mel = MelSpectrogram(MEL_16K_80)
    cache: dict[str, dict[str, list]] = {"train": {"mels": [], "teacher": []}, "dev": {"mels": [], "teacher": []}}
    known: dict[str, torch.Tensor] = {}
    for split in ("train", "dev"):
        for index, row in enumerate(read_manifest(args.data / f"{split}.csv")):
            wav = load_audio(root / row.path, SAMPLE_RATE)
            teacher = torch.from_numpy(np.load(teacher_path(args.data, row)))
            clean = mel(torch.from_numpy(wav))
            if split == "dev":
                if clean.shape[-1] >= DEV_FRAMES and len(teacher) >= DEV_FRAMES // 2:
                    cache[split]["mels"].append(clean[:, :DEV_FRAMES])
                    cache[split]["teacher"].append(teacher[:DEV_FRAMES // 2])
                continue
            phone = mel(torch.from_numpy(phone_call(wav, SAMPLE_RATE, seed=index)[0]))
            cache[split]["mels"].append(torch.stack([clean, phone]).half())
            known[str((root / row.path).resolve())] = cache[split]["mels"][-1]
            cache[split]["teacher"].append(teacher)
    dev = {"mel": torch.stack(cache["dev"]["mels"]), "teacher": torch.stack(cache["dev"]["teacher"]).float()}
    extra = phone_data(args.data, mel, known) if (args.data / "phones.json").exists() else {}
    torch.save({"train": cache["train"], "dev": dev, **extra}, args.data / "cache.pt")
    print(f"train: {len(cache['train']['mels'])} utterances; dev: {len(dev['mel'])} crops"
          + (f"; CTC: {len(extra['ctc']['mels'])} train / {len(extra['dev_ctc']['mels'])} dev utterances, "
             f"{len(extra['phone_vocab'])} phones" if extra else "") + f" -> {args.data / 'cache.pt'}")


if __name__ == "__main__":
    run_recipe(main)
