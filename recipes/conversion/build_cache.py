"""Packs the content encoder's training data: clean + phone-line log-mels and teacher features.

For every file of OUT/train.csv (written by prepare_teacher.py): the 16 kHz log-mel (MEL_16K_80,
the vocoder's mel) of the clean audio and of one simulated phone call (voicefake.channel),
plus the teacher features. Dev files give fixed 2 s crops (clean) for the evaluation.

Usage:
    python recipes/conversion/build_cache.py --data runs/data/conversion
Writes DATA/cache.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from prepare_teacher import SAMPLE_RATE, teacher_path  # type: ignore[import-not-found]

from voicefake.audio.features import MEL_16K_80, MelSpectrogram
from voicefake.audio.io import load_audio
from voicefake.channel import phone_call
from voicefake.data.manifests import data_root, read_manifest

DEV_FRAMES = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    mel = MelSpectrogram(MEL_16K_80)
    cache: dict[str, dict[str, list]] = {"train": {"mels": [], "teacher": []}, "dev": {"mels": [], "teacher": []}}
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
            cache[split]["teacher"].append(teacher)
    dev = {"mel": torch.stack(cache["dev"]["mels"]), "teacher": torch.stack(cache["dev"]["teacher"]).float()}
    torch.save({"train": cache["train"], "dev": dev}, args.data / "cache.pt")
    print(f"train: {len(cache['train']['mels'])} utterances; dev: {len(dev['mel'])} crops -> {args.data / 'cache.pt'}")


if __name__ == "__main__":
    main()
