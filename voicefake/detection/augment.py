"""Raw-waveform boosting for detector training (the three RawBoost distortions, Tak et al., ICASSP 2022).

Each distortion imitates something a recording chain does to any speech, real or synthetic, so
the detector cannot lean on the exact spectral fine structure of the data it was trained on:

* :func:`convolutive`: a random multi-notch FIR filter applied to the signal and, with a smaller
  weight, to its powers (a linear plus a memoryless non-linear channel: loudspeakers, handsets);
* :func:`impulsive`: a small share of samples gets a signal-dependent error (clipping, bit errors);
* :func:`coloured_noise`: stationary noise through another random filter at 10-40 dB SNR.

Parameters follow the paper's ranges for 16 kHz speech. Every function takes a
``numpy.random.Generator`` so a crop's distortion is reproducible from one seed.
"""

from __future__ import annotations

import numpy as np


def notch_filter(rng: np.random.Generator, sample_rate: int, max_bands: int = 5, taps: tuple[int, int] = (11, 101),
                 bandwidth: tuple[float, float] = (100.0, 1000.0)) -> np.ndarray:
    """A random FIR filter (odd length in ``taps``) with 1 to ``max_bands`` notches, each of a
    random width in ``bandwidth`` Hz at a random centre: a linear-phase, windowed design."""
    grid = np.linspace(0.0, sample_rate / 2, 513)
    response = np.ones_like(grid)
    for _ in range(int(rng.integers(1, max_bands + 1))):
        centre, width = rng.uniform(20.0, sample_rate / 2), rng.uniform(*bandwidth)
        response[np.abs(grid - centre) < width / 2] = rng.uniform(0.0, 0.3)
    length = int(rng.integers(taps[0] // 2, taps[1] // 2 + 1)) * 2 + 1
    impulse = np.fft.irfft(response)  # zero-phase, centred at sample 0
    half = length // 2
    kernel = np.concatenate([impulse[-half:], impulse[: half + 1]]) * np.hanning(length + 2)[1:-1]
    return (kernel / max(np.abs(np.fft.rfft(kernel, 1024)).max(), 1e-6)).astype(np.float32)


def convolutive(wav: np.ndarray, rng: np.random.Generator, sample_rate: int, orders: int = 5) -> np.ndarray:
    """``sum_j w_j * h_j * (x ** j)`` for j = 1..J (J drawn up to ``orders``), each with its own
    notch filter ``h_j``; the non-linear terms are 5-20 dB below the linear one. Peak kept."""
    out = np.convolve(wav, notch_filter(rng, sample_rate), mode="same")
    for power in range(2, int(rng.integers(1, orders + 1)) + 1):
        term = np.convolve(wav ** power, notch_filter(rng, sample_rate), mode="same")
        out = out + 10 ** (-rng.uniform(5.0, 20.0) / 20) * term
    return _keep_peak(out, wav)


def impulsive(wav: np.ndarray, rng: np.random.Generator, share: float = 0.1, gain: float = 2.0) -> np.ndarray:
    """Up to ``share`` of the samples get ``x[n] * z`` added, ``z`` uniform in +-``gain``."""
    out = wav.copy()
    picked = rng.random(len(wav)) < rng.uniform(0.0, share)
    out[picked] += wav[picked] * rng.uniform(-gain, gain, int(picked.sum())).astype(np.float32)
    return out


def coloured_noise(wav: np.ndarray, rng: np.random.Generator, sample_rate: int,
                   snr_db: tuple[float, float] = (10.0, 40.0)) -> np.ndarray:
    """White noise shaped by a random notch filter, added at a random SNR in ``snr_db``."""
    noise = np.convolve(rng.standard_normal(len(wav)).astype(np.float32), notch_filter(rng, sample_rate), mode="same")
    signal, power = float(np.mean(wav ** 2)), float(np.mean(noise ** 2))
    if signal <= 0 or power <= 0:
        return wav
    scale = np.sqrt(signal / (power * 10 ** (rng.uniform(*snr_db) / 10)))
    return (wav + scale * noise).astype(np.float32)


def rawboost(wav: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One of the three distortions, or the paper's series of all three (each a quarter of
    the time). Returns float32 of the same length."""
    wav = np.asarray(wav, dtype=np.float32)
    choice = int(rng.integers(4))
    if choice in (0, 3):
        wav = convolutive(wav, rng, sample_rate)
    if choice in (1, 3):
        wav = impulsive(wav, rng)
    if choice in (2, 3):
        wav = coloured_noise(wav, rng, sample_rate)
    return wav.astype(np.float32)


def _keep_peak(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    peak, target = float(np.abs(out).max(initial=0.0)), float(np.abs(like).max(initial=0.0))
    return (out * (target / peak) if peak > 0 else out).astype(np.float32)
