"""Dataset classes over in-memory waveforms: random crops for training, fixed crops for eval."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from voicefake.data.manifests import ManifestRow


def load_waveforms(
    rows: Sequence[ManifestRow], root: str | os.PathLike[str], sample_rate: int
) -> list[np.ndarray]:
    """Decodes every row's file (relative to ``root``) as mono float32 at ``sample_rate``."""
    from voicefake.audio.io import load_audio

    return [load_audio(Path(root) / row.path, sample_rate) for row in rows]


class RandomCropDataset(Dataset):
    """Random fixed-length crops of a list of waveforms.

    Each epoch draws ``crops_per_item`` crops of each waveform, so small corpora still make
    long epochs. Waveforms shorter than the crop are zero-padded at the end.

    Args:
        waves: mono float32 waveforms (T,).
        segment_samples: crop length in samples.
        crops_per_item: crops of each waveform per epoch.
    """

    def __init__(self, waves: Sequence[np.ndarray], segment_samples: int, crops_per_item: int = 1) -> None:
        if not waves:
            raise ValueError("RandomCropDataset needs at least one waveform")
        self.waves = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in waves]
        self.segment_samples = segment_samples
        self.crops_per_item = crops_per_item

    def __len__(self) -> int:
        return len(self.waves) * self.crops_per_item

    def __getitem__(self, index: int) -> torch.Tensor:
        wav = self.waves[index % len(self.waves)]
        return crop(wav, self.segment_samples, random=True)


class FixedCropDataset(Dataset):
    """The first ``segment_samples`` of each waveform (deterministic; for evaluation)."""

    def __init__(self, waves: Sequence[np.ndarray], segment_samples: int) -> None:
        self.waves = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in waves]
        self.segment_samples = segment_samples

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, index: int) -> torch.Tensor:
        return crop(self.waves[index], self.segment_samples, random=False)


def crop(wav: torch.Tensor, length: int, random: bool) -> torch.Tensor:
    """A (length,) crop of ``wav`` (T,), random or from the start, zero-padded if short."""
    if wav.shape[0] <= length:
        return torch.nn.functional.pad(wav, (0, length - wav.shape[0]))
    start = int(torch.randint(0, wav.shape[0] - length + 1, ())) if random else 0
    return wav[start : start + length]


class OneItem(Dataset):
    """A dataset of one item: a whole dev set scored at once by an ``eval_step``.

    The loader adds a batch dimension of 1, so ``eval_step`` reads ``batch[key][0]``.
    """

    def __init__(self, item: dict[str, torch.Tensor]) -> None:
        self.item = item

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.item
