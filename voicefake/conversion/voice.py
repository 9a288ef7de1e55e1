"""Voice profiles and kNN conversion: a target voice as a bank of (content, mel) frames.

Conversion (kNN-VC, Baas et al. 2023, with the vocoder's own mel as the output space):
every frame of the source is replaced by the average log-mel of the ``k`` reference frames
whose content features are closest (cosine). The output therefore keeps the source's words
and timing, and is built only from the target's own spectra, so it carries the target's
timbre; the GAN vocoder turns it into a waveform. Optionally the source's pitch contour,
shifted into the target's range, also steers the match (``pitch_weight``), which keeps the
source's intonation and avoids averaging frames of very different pitch.

A :class:`VoiceProfile` is an ``nn.Module`` of buffers so it saves and loads as a normal
checkpoint of kind ``"voice"``; ``voicefake finetune`` builds one from minutes of audio
(a bigger bank gives better coverage of the target's sounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from voicefake.audio.features import MelConfig
from voicefake.conversion.model import ConversionDecoder, DecoderConfig


@dataclass(frozen=True)
class VoiceConfig:
    """Shape of a voice profile and how it is matched.

    Attributes:
        frames: frames in the bank (100 per second of reference audio).
        content_dim: content feature size (of the content encoder that made the bank).
        k: reference frames averaged per output frame.
        pitch_weight: weight of the log-F0 distance (per octave) next to the cosine distance;
            0 matches on content alone.
        embedding_dim: size of the stored speaker embedding (0 = none).
        decoder: a conversion decoder fine-tuned on this voice (``voicefake finetune``), used
            instead of the bundled one; None for zero-shot profiles.
    """

    frames: int = 0
    content_dim: int = 192
    k: int = 4
    pitch_weight: float = 0.0
    embedding_dim: int = 0
    decoder: DecoderConfig | None = None


class VoiceProfile(nn.Module):
    """A target voice: content features, log-mels and log-F0 of its reference frames."""

    takes_mel = True

    content: torch.Tensor
    mels: torch.Tensor
    log_f0: torch.Tensor
    embedding: torch.Tensor
    content_model: str | None = None
    """``name@version:sha`` of the content encoder that made ``content`` (saved in metadata)."""

    def __init__(self, config: VoiceConfig, mel: MelConfig) -> None:
        super().__init__()
        self.config, self.mel = config, mel
        self.register_buffer("content", torch.zeros(config.frames, config.content_dim))
        self.register_buffer("mels", torch.zeros(config.frames, mel.n_mels))
        self.register_buffer("log_f0", torch.zeros(config.frames))  # 0 where unvoiced
        self.register_buffer("embedding", torch.zeros(config.embedding_dim))
        self.decoder = ConversionDecoder(config.decoder, mel) if config.decoder is not None else None

    @property
    def seconds(self) -> float:
        return self.config.frames * self.mel.hop_length / self.mel.sample_rate

    def median_log_f0(self) -> float:
        voiced = self.log_f0[self.log_f0 > 0]
        return float(voiced.median()) if len(voiced) else 0.0

    def forward(self, content: torch.Tensor, log_f0: torch.Tensor | None = None,
                chunk: int = 2000) -> torch.Tensor:
        """(F, D) source content [+ (F,) source log-F0, 0 = unvoiced] -> (M, F) log-mel."""
        if self.config.frames == 0:
            raise ValueError("the voice profile is empty")
        k = min(self.config.k, self.config.frames)
        use_pitch = self.config.pitch_weight > 0 and log_f0 is not None
        if use_pitch:
            assert log_f0 is not None
            log_f0 = shift_pitch(log_f0, self.median_log_f0())
        out = []
        for start in range(0, len(content), chunk):
            distance = 1 - content[start:start + chunk] @ self.content.T  # (f, N)
            if use_pitch:
                assert log_f0 is not None
                src = log_f0[start:start + chunk, None]
                both = (src > 0) & (self.log_f0[None] > 0)
                octaves = (src - self.log_f0[None]).abs() / 0.6931
                distance = distance + self.config.pitch_weight * torch.where(both, octaves, torch.zeros_like(octaves))
            index = distance.topk(k, dim=1, largest=False).indices  # (f, k)
            out.append(self.mels[index].mean(dim=1))
        return torch.cat(out).T


def shift_pitch(log_f0: torch.Tensor, target_median: float) -> torch.Tensor:
    """Moves a log-F0 contour (0 = unvoiced) so its voiced median is ``target_median``."""
    voiced = log_f0 > 0
    if not voiced.any() or target_median <= 0:
        return log_f0
    shift = target_median - float(log_f0[voiced].median())
    return torch.where(voiced, log_f0 + shift, log_f0)


def estimate_log_f0(wav: torch.Tensor, mel: MelConfig, f0_min: float = 60.0, f0_max: float = 500.0,
                    threshold: float = 0.45) -> torch.Tensor:
    """Frame-wise log-F0 (natural log of Hz; 0 where unvoiced), one value per mel frame.

    Normalised autocorrelation of 40 ms Hann frames centred like the mel frames; a frame is
    voiced when its best lag's correlation exceeds ``threshold``; parabolic interpolation
    refines the lag.
    """
    sr, hop = mel.sample_rate, mel.hop_length
    size = int(0.04 * sr)
    frames = wav.shape[-1] // hop + 1
    padded = F.pad(wav[None, None], (size // 2, size // 2 + hop), mode="reflect" if wav.numel() > size else "constant")[0, 0]
    windows = padded.unfold(0, size, hop)[:frames] * torch.hann_window(size, dtype=wav.dtype)
    windows = windows - windows.mean(dim=1, keepdim=True)
    spec = torch.fft.rfft(windows, n=2 * size)
    acf = torch.fft.irfft(spec.abs() ** 2, n=2 * size)[:, :size]
    norm = torch.fft.irfft(torch.fft.rfft(torch.hann_window(size, dtype=wav.dtype), n=2 * size).abs() ** 2, n=2 * size)[:size]
    acf = acf / (acf[:, :1] + 1e-9) / (norm / norm[0]).clamp(min=0.25)
    lo, hi = int(sr / f0_max), min(size - 2, int(sr / f0_min))
    segment = acf[:, lo:hi]
    peak = segment.max(dim=1).values
    # the first local maximum within 10 % of the best one: a periodic signal correlates as
    # well at 2x, 3x its period, so the largest value alone makes octave errors
    local = (segment >= F.pad(segment, (1, 0), value=-1)[:, :-1]) & (segment >= F.pad(segment, (0, 1), value=-1)[:, 1:])
    near = local & (segment >= 0.9 * peak[:, None])
    lag = near.float().argmax(dim=1) + lo
    left, mid, right = (acf.gather(1, (lag + d)[:, None])[:, 0] for d in (-1, 0, 1))
    offset = 0.5 * (left - right) / (left - 2 * mid + right - 1e-9)
    f0 = sr / (lag.to(wav.dtype) + offset.clamp(-1, 1))
    energy = windows.pow(2).mean(dim=1)
    voiced = (peak > threshold) & (energy > 1e-3 * energy.max())
    return torch.where(voiced, torch.log(f0), torch.zeros_like(f0))
