"""Vocoder losses: least-squares adversarial, feature matching, multi-resolution mel L1."""

from __future__ import annotations

import torch
from torch import nn

from voicefake.audio.features import MelConfig, MelSpectrogram


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN discriminator loss: real scores towards 1, fake towards 0, summed over discs."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real, fake, strict=True))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss: fake scores towards 1."""
    return sum(torch.mean((1 - f) ** 2) for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between discriminator feature maps of real and generated audio."""
    total = 0.0
    for real_maps, fake_maps in zip(real, fake, strict=True):
        for r, f in zip(real_maps, fake_maps, strict=True):
            total = total + torch.mean(torch.abs(r.detach() - f))
    return total


class MultiResolutionMelLoss(nn.Module):
    """Mean L1 distance between log-mels at several resolutions.

    Args:
        configs: one :class:`MelConfig` per resolution (explicit; no hidden defaults).
    """

    def __init__(self, configs: tuple[MelConfig, ...]) -> None:
        super().__init__()
        if not configs:
            raise ValueError("MultiResolutionMelLoss needs at least one MelConfig")
        self.mels = nn.ModuleList(MelSpectrogram(c) for c in configs)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """fake, real: (B, T) waveforms; returns the mean over resolutions."""
        losses = [torch.mean(torch.abs(m(fake) - m(real))) for m in self.mels]
        return sum(losses) / len(losses)
