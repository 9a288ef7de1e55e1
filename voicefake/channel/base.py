"""Shared helpers of the channel simulations: input checks, seeds, lengths, resampling."""

from __future__ import annotations

from collections.abc import Callable
from math import gcd
from typing import Literal

import numpy as np
from scipy import signal

NoiseKind = Literal["white", "pink", "babble", "hum"]
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "babble", "hum")
AMR_NB_BITRATES: tuple[int, ...] = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)
OPUS_RATES: tuple[int, ...] = (8000, 12000, 16000, 24000, 48000)
TELEPHONE_RATE = 8000


def _check(wav: np.ndarray, sample_rate: int, name: str = "wav") -> np.ndarray:
    """Validate a mono waveform ``name`` and its rate; return it as float32 ``(T,)``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise TypeError(f"sample_rate must be an int in Hz, got {sample_rate!r}")
    if sample_rate < 4000:
        raise ValueError(f"sample_rate must be >= 4000 Hz, got {sample_rate}")
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"{name} must be 1-D (mono), got shape {wav.shape}")
    if wav.size == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if not np.issubdtype(wav.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {wav.dtype}")
    if not np.all(np.isfinite(wav)):
        bad = int(np.flatnonzero(~np.isfinite(wav))[0])
        raise ValueError(f"{name} has a non-finite sample {wav[bad]} at index {bad}")
    return wav.astype(np.float32, copy=False)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ValueError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A Generator from an int seed, or the given Generator itself."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _fit(wav: np.ndarray, num_samples: int) -> np.ndarray:
    """Truncate or zero-pad ``wav`` at the end to ``num_samples``; float32."""
    out = np.zeros(num_samples, dtype=np.float32)
    out[: min(num_samples, len(wav))] = wav[:num_samples]
    return out


def _resample_ratio(wav: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase resampling by ``up / down`` with a zero-delay 80 dB Kaiser low-pass.

    The low-pass passes 90 % of the lower Nyquist frequency and stops from the lower
    Nyquist frequency on (e.g. 3.6 kHz pass / 4 kHz stop for 16 <-> 8 kHz), so
    aliases and images are at least 80 dB down.
    """
    if up == down:
        return wav.astype(np.float32)
    width = 0.1 / max(up, down)  # transition width, fraction of the high-rate Nyquist
    num_taps, beta = signal.kaiserord(80.0, width)
    taps = signal.firwin(num_taps | 1, 0.95 / max(up, down), window=("kaiser", beta))
    return signal.resample_poly(wav, up, down, window=taps).astype(np.float32)


def _resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``(T,)`` from ``orig_rate`` to ``target_rate`` Hz (time-aligned)."""
    common = gcd(orig_rate, target_rate)
    return _resample_ratio(wav, target_rate // common, orig_rate // common)


def _via_rate(
    wav: np.ndarray, sample_rate: int, rate: int, process: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """Resample to ``rate``, clip to [-1, 1], run ``process(wav, rate)``, resample back."""
    inner = np.clip(_resample(wav, sample_rate, rate), -1.0, 1.0)
    return _fit(_resample(process(inner, rate), rate, sample_rate), len(wav))

