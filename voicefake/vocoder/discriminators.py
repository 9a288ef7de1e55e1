"""Discriminators for vocoder training: multi-period (HiFi-GAN) and multi-resolution STFT.

Each discriminator returns, for a batch of waveforms (B, T), a list of score maps (one per
sub-discriminator) and a list of feature-map lists (for the feature-matching loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from voicefake.audio.features import stft

Scores = list[torch.Tensor]
Features = list[list[torch.Tensor]]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the discriminators.

    Attributes:
        periods: multi-period discriminator periods (HiFi-GAN uses 2, 3, 5, 7, 11).
        mpd_channels: channel widths of each period discriminator's 2-D conv stack.
        resolutions: (n_fft, hop_length, win_length) of each STFT discriminator.
        mrd_channels: channels of each STFT discriminator.
    """

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024)
    resolutions: tuple[tuple[int, int, int], ...] = ((1024, 256, 1024), (512, 128, 512), (256, 64, 256))
    mrd_channels: int = 32

    @classmethod
    def tiny(cls) -> DiscriminatorConfig:
        """Small discriminators for tests."""
        return cls(periods=(2, 3), mpd_channels=(4, 8), resolutions=((256, 64, 256),), mrd_channels=4)


def conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then a 1-channel output conv; returns (flat score, feature maps)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """Reshapes the waveform into (T / p, p) and applies strided 2-D convolutions."""

    def __init__(self, period: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.period = period
        widths = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, (5, 1), (3, 1), padding=(2, 0)))
            for cin, cout in zip(widths[:-1], widths[1:], strict=True)
        )
        self.convs.append(weight_norm(nn.Conv2d(widths[-1], widths[-1], (5, 1), padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = wav.shape
        pad = (self.period - length % self.period) % self.period
        x = F.pad(wav, (0, pad), mode="reflect").view(batch, 1, -1, self.period)
        return conv_stack(self.convs, self.post, x)


class ResolutionDiscriminator(nn.Module):
    """2-D convolutions over a log-magnitude STFT (UnivNet / Vocos style)."""

    def __init__(self, resolution: tuple[int, int, int], channels: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = resolution
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (7, 5), padding=(3, 2))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, 3, padding=1)),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = stft(wav, self.n_fft, self.hop_length, self.win_length).abs()
        # log compression with a floor; the floor keeps log finite in silence
        x = torch.log(spec.clamp(min=1e-5)).unsqueeze(1)
        return conv_stack(self.convs, self.post, x)


class MultiDiscriminator(nn.Module):
    """All period and resolution discriminators behind one call."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.discriminators = nn.ModuleList(
            [PeriodDiscriminator(p, config.mpd_channels) for p in config.periods]
            + [ResolutionDiscriminator(r, config.mrd_channels) for r in config.resolutions]
        )

    def forward(self, wav: torch.Tensor) -> tuple[Scores, Features]:
        """wav: (B, T); returns per-discriminator scores (B, *) and feature maps."""
        scores, feats = [], []
        for disc in self.discriminators:
            score, feat = disc(wav)
            scores.append(score)
            feats.append(feat)
        return scores, feats
