"""The one definition of spectral features: mel spectrogram, STFT, linear and LFCC features.

Every model in voicefake (vocoder, synthesis, conversion, speaker, detector) computes its
inputs here, from a :class:`MelConfig`, and frame/sample arithmetic is written only in
:func:`num_frames` and :func:`num_samples`. Losses build their own :class:`MelSpectrogram`
from an explicit list of configs; nothing keeps a hidden filterbank cache.

Conventions: ``B`` batch, ``T`` samples, ``F`` frames, ``M`` mel bins. With ``center=True``
the signal is reflect-padded by ``n_fft // 2`` on both sides, so a signal of ``T`` samples
gives ``1 + T // hop_length`` frames and frame ``f`` is centred on sample ``f * hop_length``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    """How a waveform becomes a log-mel spectrogram.

    Attributes:
        sample_rate: Hz.
        n_fft: FFT size in samples.
        win_length: Hann window length in samples (<= n_fft).
        hop_length: samples between frames.
        n_mels: number of mel bands ``M``.
        f_min: lowest filter edge, Hz.
        f_max: highest filter edge, Hz (<= sample_rate / 2).
        center: reflect-pad by n_fft // 2 so frames are centred on multiples of hop_length.
        power: 1.0 for magnitude, 2.0 for power.
        log_floor: floor applied before the natural log (keeps log finite in silence).
        mel_scale: "slaney" (librosa default) or "htk".
        norm: "slaney" (area normalisation, librosa default) or "none".
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 640
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    center: bool = True
    power: float = 1.0
    log_floor: float = 1e-5
    mel_scale: Literal["slaney", "htk"] = "slaney"
    norm: Literal["slaney", "none"] = "slaney"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelConfig: sample_rate, hop_length, n_mels must be > 0: {self}")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"MelConfig: need 0 < win_length <= n_fft, got {self}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"MelConfig: need 0 <= f_min < f_max <= sample_rate/2, got {self}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"MelConfig.mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.norm not in ("slaney", "none"):
            raise ValueError(f"MelConfig.norm must be 'slaney' or 'none', got {self.norm!r}")
        if self.power not in (1.0, 2.0):
            raise ValueError(f"MelConfig.power must be 1.0 or 2.0, got {self.power}")

    def replace(self, **changes: object) -> MelConfig:
        """Returns a copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# Presets we ship. The bundled models are 16 kHz; the others serve research recipes.
MEL_16K_80 = MelConfig()
"""16 kHz, 10 ms hop, 40 ms window, 80 mels: vocoder, synthesis and conversion."""
MEL_16K_40 = MelConfig(n_fft=512, win_length=400, hop_length=160, n_mels=40, f_max=8000.0)
"""16 kHz, 10 ms hop, 25 ms window, 40 mels: the speaker encoder (as in GE2E)."""
MEL_22K_80 = MelConfig(
    sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80, f_max=8000.0
)
"""22.05 kHz HiFi-GAN / LJSpeech setting."""
MEL_24K_100 = MelConfig(
    sample_rate=24000, n_fft=1024, win_length=1024, hop_length=256, n_mels=100, f_max=12000.0
)
"""24 kHz Vocos / LibriTTS setting."""

PRESETS: dict[str, MelConfig] = {
    "mel_16k_80": MEL_16K_80,
    "mel_16k_40": MEL_16K_40,
    "mel_22k_80": MEL_22K_80,
    "mel_24k_100": MEL_24K_100,
}


def num_frames(num_samples: int, mel: MelConfig) -> int:
    """Number of frames the STFT of ``num_samples`` samples has under ``mel``."""
    if mel.center:
        return 1 + num_samples // mel.hop_length
    return max(0, 1 + (num_samples - mel.n_fft) // mel.hop_length)


def num_samples(num_frames: int, mel: MelConfig) -> int:
    """Number of samples a generator produces for ``num_frames`` frames (centred frames)."""
    return max(0, num_frames - 1) * mel.hop_length


def _hz_to_mel(hz: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above (matches librosa's default).
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    lin = hz / f_sp
    log = min_log_mel + torch.log(torch.clamp(hz, min=1e-10) / min_log_hz) / logstep
    return torch.where(hz >= min_log_hz, log, lin)


def _mel_to_hz(mels: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    lin = f_sp * mels
    log = min_log_hz * torch.exp(logstep * (mels - min_log_mel))
    return torch.where(mels >= min_log_mel, log, lin)


def band_edges_hz(mel: MelConfig) -> torch.Tensor:
    """(n_mels + 2,) float64 edges of the triangular mel bands in Hz: band i spans edges i..i+2."""
    lo = _hz_to_mel(torch.tensor(mel.f_min, dtype=torch.float64), mel.mel_scale)
    hi = _hz_to_mel(torch.tensor(mel.f_max, dtype=torch.float64), mel.mel_scale)
    return _mel_to_hz(torch.linspace(float(lo), float(hi), mel.n_mels + 2, dtype=torch.float64), mel.mel_scale)


def mel_filterbank(mel: MelConfig) -> torch.Tensor:
    """Triangular mel filters, shape ``(M, n_fft // 2 + 1)``, float64-accurate in float32."""
    n_freqs = mel.n_fft // 2 + 1
    fft_hz = torch.linspace(0, mel.sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = band_edges_hz(mel)
    widths = edges[1:] - edges[:-1]
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if mel.norm == "slaney":
        weights = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.to(torch.float32)


class MelReanalysis(nn.Module):
    """An approximate, differentiable change of mel configuration: ``source`` log-mel -> ``target`` log-mel.

    The source mel's magnitudes are spread back over the source STFT's bins by the
    pseudo-inverse of its filters (clamped at zero) and summed again by the target's filters on
    that grid. It is not the target's own analysis of the waveform: window length and FFT size
    differ, which moves each band by a roughly constant offset (measured on speech, 80 bands of
    ``MEL_16K_80`` to the 40 of ``MEL_16K_40``: 0.91 mean log difference, 0.16 after a
    per-band offset). Compare re-analysed mels with re-analysed mels, not with the target's
    analysis of the waveform.

    Example:
        >>> to_40 = MelReanalysis(MEL_16K_80, MEL_16K_40)
        >>> to_40(torch.zeros(1, 80, 7)).shape
        torch.Size([1, 40, 7])
    """

    ceiling = 30.0
    """Log-mel values are capped here before ``exp``: speech stays under about 10, and a diverging
    decoder's 250 would overflow to inf, and inf - inf in the pseudo-inverse to NaN (session 37:
    one training crop did that, and the NaN reached every weight through the speaker term)."""

    def __init__(self, source: MelConfig, target: MelConfig) -> None:
        super().__init__()
        if source.sample_rate != target.sample_rate or source.hop_length != target.hop_length:
            raise ValueError(f"cannot re-analyse a {source.sample_rate} Hz / hop {source.hop_length} mel as "
                             f"{target.sample_rate} Hz / hop {target.hop_length}: the frames would not line up")
        grid = dataclasses.replace(target, n_fft=source.n_fft, win_length=min(target.win_length, source.n_fft))
        self.register_buffer("spread", torch.linalg.pinv(mel_filterbank(source).double()).float(), persistent=False)
        self.register_buffer("gather", mel_filterbank(grid), persistent=False)
        self.floor = target.log_floor

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, M_source, F) -> (B, M_target, F)."""
        bins = torch.matmul(self.get_buffer("spread"), torch.exp(log_mel.clamp(max=self.ceiling))).clamp_min(0.0)
        return torch.log(torch.matmul(self.get_buffer("gather"), bins).clamp_min(self.floor))


def band_bins(mel: MelConfig, bandwidth_hz: float) -> int:
    """How many of the lowest mel bands lie wholly below ``bandwidth_hz``.

    Audio recorded at a lower rate (an 8 kHz telephone prompt resampled to 16 kHz) has nothing
    above its Nyquist frequency; a loss on its upper mel bands would teach a model that silence.
    """
    edges = band_edges_hz(mel)
    return int((edges[2:] <= bandwidth_hz + 1e-6).sum())


def band_top_hz(mel: MelConfig, bands: int) -> float:
    """The upper edge in Hz of the ``bands`` lowest mel bands (``f_max`` for all of them): the
    inverse of :func:`band_bins`."""
    if not 1 <= bands <= mel.n_mels:
        raise ValueError(f"bands must be in [1, {mel.n_mels}], got {bands}")
    edges = band_edges_hz(mel)
    return float(edges[bands + 1])


def stft(
    wav: torch.Tensor, n_fft: int, hop_length: int, win_length: int, center: bool = True
) -> torch.Tensor:
    """Complex STFT with a Hann window.

    Args:
        wav: (B, T) or (T,) waveform.
    Returns:
        (B, n_fft // 2 + 1, F) complex spectrum (no batch dim for 1-D input).
    """
    window = torch.hann_window(win_length, device=wav.device, dtype=wav.dtype)
    return torch.stft(
        wav, n_fft, hop_length, win_length, window, center=center, pad_mode="reflect",
        return_complex=True,
    )


def istft(
    spec: torch.Tensor, n_fft: int, hop_length: int, win_length: int, length: int,
    center: bool = True,
) -> torch.Tensor:
    """Inverse of :func:`stft` (Hann window, overlap-add), the watermark's resynthesis.

    Args:
        spec: (n_fft // 2 + 1, F) or (B, n_fft // 2 + 1, F) complex spectrum from :func:`stft`.
        length: number of output samples ``T``.
    Returns:
        (T,) or (B, T) real waveform.
    """
    window = torch.hann_window(win_length, device=spec.device, dtype=spec.real.dtype)
    if not center or n_fft % hop_length or win_length > n_fft:
        return torch.istft(spec, n_fft, hop_length, win_length, window, center=center, length=length)
    return _overlap_add(spec, n_fft, hop_length, window, length)


def _overlap_add(spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
                 length: int) -> torch.Tensor:
    """``torch.istft`` for centred frames when the hop divides ``n_fft``, 2-3x faster on a CPU.

    The frames are placed by :func:`overlap_add` instead of a scatter. The result is divided
    by the summed squared window, and the centring padding is cut away. A framing whose
    windows leave samples uncovered is an error, as in torch.
    Differentiable; equals ``torch.istft`` to float rounding.
    """
    squeeze = spec.dim() == 2
    batch = spec[None] if squeeze else spec
    pad = (n_fft - window.shape[0]) // 2  # a shorter window is centred in the frame, as in torch
    window = torch.nn.functional.pad(window, (pad, n_fft - window.shape[0] - pad))
    frames = torch.fft.irfft(batch.transpose(1, 2), n=n_fft) * window  # (B, F, n_fft)
    start = n_fft // 2
    out = overlap_add(frames, hop_length)[:, start : start + length]
    envelope = overlap_add((window * window).expand(1, batch.shape[-1], n_fft), hop_length)[0, start : start + length]
    if bool((envelope < 1e-11).any()):  # torch.istft refuses the same framing
        raise ValueError(f"inverse STFT: a {int(window.count_nonzero())}-sample window at hop {hop_length} leaves "
                         "samples that no frame covers (nonzero overlap-add fails); use a smaller hop")
    wav = out / envelope
    if wav.shape[-1] < length:  # torch.istft zero-pads past the last frame
        wav = torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))
    return wav[0] if squeeze else wav


def overlap_add(frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """(B, F, n) frames placed ``hop_length`` apart and summed: (B, (F - 1) * hop + n).

    ``n`` is a multiple of the hop: each frame is ``n // hop`` hop-long blocks, and block ``j``
    of frame ``f`` lands on output block ``f + j``, so the overlap-add is that many shifted
    slice additions. Differentiable.
    """
    batch, count, size = frames.shape
    blocks = size // hop_length
    if blocks * hop_length != size:
        raise ValueError(f"overlap_add: frame length {size} is not a multiple of the hop {hop_length}")
    parts = frames.reshape(batch, count, blocks, hop_length)
    out = frames.new_zeros(batch, count + blocks - 1, hop_length)
    for j in range(blocks):
        out[:, j : j + count] += parts[:, :, j]
    return out.reshape(batch, -1)


class MelSpectrogram(nn.Module):
    """Waveform to natural-log mel spectrogram under a :class:`MelConfig`.

    The filterbank and window are non-persistent buffers: they follow ``.to(device)`` and
    never enter a state dict.
    """

    filters: torch.Tensor
    window: torch.Tensor

    def __init__(self, mel: MelConfig) -> None:
        super().__init__()
        self.config = mel
        self.register_buffer("filters", mel_filterbank(mel), persistent=False)
        self.register_buffer("window", torch.hann_window(mel.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: (B, T) or (T,) in [-1, 1]; returns (B, M, F) log-mel (no batch dim for 1-D).

        Always computed in float32, also under autocast: reduced-precision log-mels would put
        a noise floor under every reconstruction loss.
        """
        with torch.autocast(device_type=wav.device.type, enabled=False):
            return self._log_mel(wav.float())

    def _log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        mel = self.config
        frames = num_frames(wav.shape[-1], mel)
        if mel.center and wav.shape[-1] <= mel.n_fft // 2:
            # reflect padding needs more samples than the pad width; zero-extend tiny inputs
            # and keep only the frames the true length has (see num_frames)
            wav = torch.nn.functional.pad(wav, (0, mel.n_fft // 2 + 1 - wav.shape[-1]))
        spec = torch.stft(
            wav, mel.n_fft, mel.hop_length, mel.win_length, self.window.to(wav.dtype),
            center=mel.center, pad_mode="reflect", return_complex=True,
        )[..., :frames]
        mag = spec.abs()
        if mel.power == 2.0:
            mag = mag**2
        mels = torch.matmul(self.filters.to(mag.dtype), mag)
        return torch.log(torch.clamp(mels, min=mel.log_floor))


class LinearSpectrogram(nn.Module):
    """Log power spectrogram, the detector's spectral input: (B, T) -> (B, n_fft//2+1, F)."""

    window: torch.Tensor

    def __init__(self, n_fft: int = 512, hop_length: int = 160, win_length: int = 400) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: (B, T) or (T,); returns (B, n_fft // 2 + 1, F) log power, F = 1 + T // hop."""
        frames = 1 + wav.shape[-1] // self.hop_length
        if wav.shape[-1] <= self.n_fft // 2:
            # reflect padding needs more samples than the pad width; zero-extend tiny inputs
            wav = torch.nn.functional.pad(wav, (0, self.n_fft // 2 + 1 - wav.shape[-1]))
        spec = torch.stft(
            wav, self.n_fft, self.hop_length, self.win_length, self.window.to(wav.dtype),
            center=True, pad_mode="reflect", return_complex=True,
        )[..., :frames]
        # floor keeps log finite on digital silence
        return torch.log(spec.real**2 + spec.imag**2 + 1e-9)


def linear_filterbank(n_filters: int, n_fft: int) -> torch.Tensor:
    """Triangular filters equally spaced in Hz: (n_filters, n_fft // 2 + 1)."""
    n_freqs = n_fft // 2 + 1
    bins = torch.linspace(0, n_freqs - 1, n_filters + 2)
    grid = torch.arange(n_freqs, dtype=torch.float32)
    lower = (grid[None] - bins[:-2, None]) / (bins[1:-1] - bins[:-2])[:, None]
    upper = (bins[2:, None] - grid[None]) / (bins[2:] - bins[1:-1])[:, None]
    return torch.clamp(torch.minimum(lower, upper), min=0.0)


def dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n_out, n_in)."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None]
    mat = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    mat[0] /= math.sqrt(2.0)
    return mat.to(torch.float32)


class LFCC(nn.Module):
    """Linear-frequency cepstral coefficients (the ASVspoof baseline front end).

    (B, T) -> (B, n_lfcc, F): log of linear-filterbank power, then an orthonormal DCT.
    """

    filters: torch.Tensor
    dct: torch.Tensor

    def __init__(
        self, n_fft: int = 512, hop_length: int = 160, win_length: int = 400,
        n_filters: int = 60, n_lfcc: int = 20,
    ) -> None:
        super().__init__()
        self.spec = LinearSpectrogram(n_fft, hop_length, win_length)
        self.register_buffer("filters", linear_filterbank(n_filters, n_fft), persistent=False)
        self.register_buffer("dct", dct_matrix(n_filters, n_lfcc), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        power = torch.exp(self.spec(wav))
        # floor keeps log finite on digital silence
        fbank = torch.log(torch.matmul(self.filters, power) + 1e-9)
        return torch.matmul(self.dct, fbank)


class LogLinearFilterbank(nn.Module):
    """Log energies of triangular filters equally spaced in Hz (LFCC before its DCT).

    The detector's front end: linear spacing keeps the high-frequency resolution where
    vocoder artefacts live (ASVspoof LFCC baselines).

    (B, T) -> (B, n_filters, F), F = 1 + T // hop_length (centred frames).
    """

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(
        self, n_fft: int = 512, hop_length: int = 160, win_length: int = 400, n_filters: int = 60
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer("filters", linear_filterbank(n_filters, n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.bands(self.stft(wav))

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) -> complex (B, n_fft/2+1, F) centred STFT (float32, autocast off)."""
        with torch.autocast(device_type=wav.device.type, enabled=False):
            wav = wav.float()
            if wav.shape[-1] <= self.n_fft // 2:
                # reflect padding needs more samples than the pad width; zero-extend tiny inputs
                wav = torch.nn.functional.pad(wav, (0, self.n_fft // 2 + 1 - wav.shape[-1]))
            return torch.stft(
                wav, self.n_fft, self.hop_length, self.win_length, self.window,
                center=True, pad_mode="reflect", return_complex=True,
            )

    def bands(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex STFT -> (B, n_filters, F) log band energies."""
        power = spec.real**2 + spec.imag**2
        # floor keeps log finite on digital silence
        return torch.log(torch.matmul(self.filters, power) + 1e-9)

    def phase_bands(self, wav: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) waveform -> (B, 3, n_filters, F) phase-derivative planes per band.

        Plane 0: instantaneous-frequency deviation of each bin from its centre frequency, in
        bins (from the phase advance over ONE sample, so it does not wrap as a hop-long advance
        would), clipped to +-4 and scaled to [-1, 1]. Planes 1-2: cos and sin of the group
        delay (phase difference to the next-lower bin), offset so that an impulse at the frame
        centre gives angle 0. Each is a magnitude-weighted mean over the band's filter.
        Speech harmonics give reassigned frequencies that are steady over time and impulses
        whose group delay follows the glottal pulses; phase rebuilt from magnitudes
        (Griffin-Lim) or from a source-filter model (WORLD) is steady or scattered in other
        places. ``spec``: the STFT of ``wav`` if already computed.
        """
        if spec is None:
            spec = self.stft(wav)
        later = self.stft(torch.nn.functional.pad(wav.float(), (0, 1))[..., 1:])
        n_bins = spec.shape[-2]
        k = torch.arange(n_bins, device=spec.device, dtype=torch.float32)
        unit = spec / spec.abs().clamp_min(1e-9)
        step = later * unit.conj() * torch.polar(torch.ones_like(k), -2 * math.pi * k / self.n_fft)[:, None]
        deviation = (torch.angle(step) * self.n_fft / (2 * math.pi)).clamp(-4.0, 4.0) / 4.0
        group = -unit[..., 1:, :] * unit[..., :-1, :].conj()
        group = torch.cat([group[..., :1, :], group], dim=-2)
        mag = spec.abs()
        norm = torch.matmul(self.filters, mag).clamp_min(1e-9)
        chans = [deviation, group.real, group.imag]
        return torch.stack([torch.matmul(self.filters, c * mag) / norm for c in chans], dim=1)
