"""Vocoder losses: least-squares adversarial, feature matching, multi-resolution mel L1, and
direct supervision of an inverse-STFT head's magnitude and phase.

The spectral terms follow APNet (Ai & Ling, 2023): log-magnitude distance, anti-wrapping
distances of the instantaneous phase, the group delay (phase difference across frequency) and
the instantaneous frequency (phase difference across time), and an STFT consistency term.
They give the phase a direct target, which GAN training alone reaches only after many steps
(the frame-rate buzz of an under-trained Vocos head is phase that is not coherent across
frames).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voicefake.audio.features import MelConfig, MelSpectrogram, stft


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN discriminator loss: real scores towards 1, fake towards 0, summed over discs."""
    return torch.stack([torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real, fake, strict=True)]).sum()


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss: fake scores towards 1."""
    return torch.stack([torch.mean((1 - f) ** 2) for f in fake]).sum()


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between discriminator feature maps of real and generated audio."""
    distances = [
        torch.mean(torch.abs(r.detach() - f))
        for real_maps, fake_maps in zip(real, fake, strict=True)
        for r, f in zip(real_maps, fake_maps, strict=True)
    ]
    return torch.stack(distances).sum()


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
        return torch.stack(losses).mean()


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x| after wrapping into [-pi, pi]: the distance between two angles whose difference is x."""
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


class SpectralLoss(nn.Module):
    """Magnitude, phase and consistency losses for a (log-magnitude, phase) STFT prediction.

    Args:
        n_fft / hop_length: the head's STFT (Hann window of n_fft, centred frames).
        floor: magnitude floor of the log target.

    ``forward`` returns a dict with ``mag`` (L1 of log-magnitudes), ``phase`` (the sum of the
    instantaneous phase ``ip``, group delay ``gd`` and instantaneous frequency ``iaf``
    anti-wrapping distances, also returned one by one, each weighted by the real magnitude so
    that silent bins, whose phase is noise, do not count) and
    ``consistency`` (L1 between the predicted spectrum and the STFT of the waveform made from
    it, relative to the mean real magnitude) and ``complex`` (L1 between the predicted and the
    real complex spectra, on the same scale: magnitude and phase at once, with a smooth
    gradient in the phase, for targets whose phase is a fixed function of the mel, as in
    distillation; against real speech it asks for an absolute phase the mel does not hold).
    """

    def __init__(self, n_fft: int, hop_length: int, floor: float = 1e-5) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.floor = n_fft, hop_length, floor

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) -> complex (B, n_fft/2+1, T/hop+1), the head's own framing."""
        return stft(wav.float(), self.n_fft, self.hop_length, self.n_fft)

    def forward(
        self, log_mag: torch.Tensor, phase: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        target = self.stft(real)
        frames = min(target.shape[-1], phase.shape[-1])
        target, log_mag, phase = target[..., :frames], log_mag[..., :frames], phase[..., :frames]
        mag = target.abs()
        scale = mag.mean(dim=(1, 2), keepdim=True).clamp_min(self.floor)
        weight = (mag / scale).detach()
        true_phase = torch.angle(target)

        def weighted(dist: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return torch.sum(dist * w) / torch.sum(w).clamp_min(self.floor)

        ip = weighted(anti_wrap(phase - true_phase), weight)
        gd = weighted(anti_wrap(torch.diff(phase, dim=1) - torch.diff(true_phase, dim=1)),
                      torch.minimum(weight[:, 1:], weight[:, :-1]))
        iaf = weighted(anti_wrap(torch.diff(phase, dim=2) - torch.diff(true_phase, dim=2)),
                       torch.minimum(weight[..., 1:], weight[..., :-1]))
        pred = torch.exp(log_mag).clamp(max=1e2)
        predicted = torch.complex(pred * torch.cos(phase), pred * torch.sin(phase))
        remade = self.stft(fake)[..., :frames]
        return {
            "mag": torch.mean(torch.abs(log_mag - torch.log(mag.clamp_min(self.floor)))),
            "phase": ip + gd + iaf,
            "ip": ip,
            "gd": gd,
            "iaf": iaf,
            "consistency": torch.mean(torch.abs(remade - predicted) / scale),
            "complex": torch.mean(torch.abs(predicted - target) / scale),
        }
