"""Finds the mark of :mod:`voicefake.watermark.core`: sync search, localisation, payload.

Pipeline for a 16 kHz waveform (shapes: ``F`` frames, ``B`` bands, ``W`` windows):

1. Power STFT once; for each frequency scale, band powers (F, B); a moving sum over one
   chip; log (dB). For each time scale, resample that along time.
2. Whitening: subtract the local mean over 3 chips x 3 bands, so the speech envelope
   (the host signal) mostly drops out and the +-gain pattern stays.
3. Per window of one block, the circular correlation with the sync pattern at every
   offset, divided by its exact null standard deviation: ``z`` ~ N(0, 1) on unmarked audio.
4. Clip statistic: ``sum_w z_w / sqrt(W)`` at the best (time scale, frequency scale,
   offset). Windows of that alignment with ``z_w`` over ``window_threshold`` are the
   marked segments.
5. Payload: at the best alignment, per block and byte position, a fast Walsh-Hadamard
   transform of the descrambled payload cells; scores summed over repeats; the cyclic
   position assignment with the largest total wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter, uniform_filter1d

from voicefake.watermark.core import (
    DEFAULT_CONFIG,
    DEFAULT_KEY,
    N_POSITIONS,
    Pattern,
    WatermarkConfig,
    band_matrix,
    make_pattern,
    spectrum,
)


@dataclass(frozen=True)
class Alignment:
    """The best (time scale, frequency scale, offset) and its scores."""

    statistic: float
    time_scale: float
    freq_scale: float
    offset: int
    features: np.ndarray  # (F', B) whitened features at this alignment's scales
    window_z: np.ndarray  # (W,) z of each window at this offset


def log_band_features(power: np.ndarray, scale: float, config: WatermarkConfig) -> np.ndarray:
    """(F, K) power spectrum -> (F, B) log band energy (dB) summed over one chip ahead."""
    band = power @ band_matrix(scale, config).T
    # uniform_filter1d with origin shifts the window to [t, t + chip_frames)
    summed = uniform_filter1d(band, config.chip_frames, axis=0, mode="constant",
                              origin=-(config.chip_frames // 2))
    # relative floor: digital silence and dither become a constant, not random dB values
    floor = max(float(summed.max(initial=0.0)) * 1e-9, 1e-12)
    return 10.0 * np.log10(summed + floor)


def time_scaled(features: np.ndarray, time_scale: float) -> np.ndarray:
    """Linear interpolation along time: row u of the result is row ``u * time_scale``."""
    if time_scale == 1.0:
        return features
    positions = np.arange(0.0, len(features) - 1, time_scale)
    low = positions.astype(int)
    frac = (positions - low)[:, None]
    high = np.minimum(low + 1, len(features) - 1)
    return features[low] * (1.0 - frac) + features[high] * frac


def whiten(features: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """Subtracts the local mean over 3 chips x 3 bands (the speech envelope), then clips."""
    # the loudness envelope (syllables, onsets) is common to all bands: remove it first
    features = features - features.mean(axis=1, keepdims=True)
    local = uniform_filter(features, (3 * config.chip_frames, 3), mode="nearest")
    return np.clip(features - local, -config.clip_db, config.clip_db)


def _sparse_sync(pattern: Pattern, config: WatermarkConfig) -> np.ndarray:
    """(block_frames, B) sync signs placed at the first frame of each chip."""
    sparse = np.zeros((config.block_frames, config.n_bands))
    sparse[:: config.chip_frames] = pattern.sync
    return sparse


def window_scores(features: np.ndarray, pattern: Pattern, config: WatermarkConfig) -> np.ndarray:
    """(F, B) whitened features -> (W, block_frames) sync z per window and offset."""
    frames = config.block_frames
    windows = -(-len(features) // frames)
    padded = np.zeros((windows * frames, features.shape[1]))
    padded[: len(features)] = features
    blocks = padded.reshape(windows, frames, -1)
    sparse = _sparse_sync(pattern, config)
    sync, used = np.fft.rfft(sparse, axis=0), np.fft.rfft(np.abs(sparse), axis=0)
    # circular cross-correlation along time, summed over bands; its null variance is the
    # same correlation of the squared features with the |pattern|
    corr = np.fft.irfft((np.fft.rfft(blocks, axis=1) * np.conj(sync)[None]).sum(-1), frames, axis=1)
    var = np.fft.irfft((np.fft.rfft(blocks**2, axis=1) * np.conj(used)[None]).sum(-1), frames,
                       axis=1)
    # an all-silent window has zero variance: its z is 0, not a division by zero
    return np.where(var > 1e-9, corr / np.sqrt(np.maximum(var, 1e-9)), 0.0)


def align(wav: np.ndarray, key: str = DEFAULT_KEY, config: WatermarkConfig = DEFAULT_CONFIG
          ) -> Alignment:
    """Searches scales and offsets for the sync pattern in a (T,) 16 kHz waveform."""
    pattern = make_pattern(key, config)
    spec = spectrum(wav)
    power = (spec.real**2 + spec.imag**2).numpy().T.astype(np.float64)
    best: Alignment | None = None
    for freq_scale in config.freq_scales:
        base = log_band_features(power, freq_scale, config)
        for time_scale in config.time_scales:
            features = whiten(time_scaled(base, time_scale), config)
            z = window_scores(features, pattern, config)
            totals = z.sum(0) / np.sqrt(len(z))
            offset = int(np.argmax(totals))
            if best is None or totals[offset] > best.statistic:
                best = Alignment(float(totals[offset]), time_scale, freq_scale, offset,
                                 features, z[:, offset])
    assert best is not None
    return best


def fwht(values: np.ndarray) -> np.ndarray:
    """Fast Walsh-Hadamard transform along the last axis (Sylvester order, unnormalised)."""
    out = np.array(values, dtype=np.float64)
    size = out.shape[-1]
    step = 1
    while step < size:
        shaped = out.reshape(*out.shape[:-1], -1, 2, step)
        first, second = shaped[..., 0, :].copy(), shaped[..., 1, :].copy()
        shaped[..., 0, :], shaped[..., 1, :] = first + second, first - second
        out = shaped.reshape(out.shape)
        step *= 2
    return out


def block_cells(found: Alignment, config: WatermarkConfig) -> np.ndarray:
    """(K, block_chips, B) chip features of every whole block at the found alignment."""
    starts = np.arange(found.offset, len(found.features) - config.chip_frames + 1,
                       config.chip_frames)
    chips = found.features[starts]
    blocks = len(chips) // config.block_chips
    if blocks == 0:  # shorter than one block: no whole block to read a payload from
        return np.zeros((0, config.block_chips, config.n_bands))
    return chips[: blocks * config.block_chips].reshape(blocks, config.block_chips, -1)


def payload_scores(found: Alignment, key: str, config: WatermarkConfig
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Soft payload evidence at the found alignment.

    Returns:
        ``(scores, block_z, blocks_used)``: (N_POSITIONS, 2 * n_payload_cells) z-scores of
        every byte value per position; (K,) sync z of each block; number of blocks used.
    """
    pattern = make_pattern(key, config)
    cells = block_cells(found, config)
    size = config.n_payload_cells
    if len(cells) == 0:
        return np.zeros((N_POSITIONS, 2 * size)), np.zeros(0), 0
    sync_num = (cells * pattern.sync[None]).sum((1, 2))
    sync_den = np.sqrt((cells**2 * np.abs(pattern.sync)[None]).sum((1, 2)))
    block_z = np.where(sync_den > 1e-9, sync_num / np.maximum(sync_den, 1e-9), 0.0)
    values = cells[:, pattern.payload_index[:, 0], pattern.payload_index[:, 1]]  # (K, size)
    use = block_z > 1.0
    if not use.any():
        use = block_z >= block_z.max()
    # (K, positions, size): every block read under every byte position's scrambling
    spectra = fwht(values[:, None, :] * pattern.scramble[None])
    noise = np.sqrt((values**2).sum(1))  # null std of each block's Hadamard coefficients
    best_total, best = -np.inf, np.zeros((N_POSITIONS, size))
    for shift in range(N_POSITIONS):
        acc = np.zeros((N_POSITIONS, size))
        var = np.zeros(N_POSITIONS)
        for block in np.flatnonzero(use):
            position = (block + shift) % N_POSITIONS
            acc[position] += spectra[block, position]
            var[position] += noise[block] ** 2
        z = acc / np.sqrt(np.maximum(var, 1e-9))[:, None]
        total = float(np.abs(z).max(1).sum())
        if total > best_total:
            best_total, best = total, z
    return np.concatenate([best, -best], axis=1), block_z, int(use.sum())


def decode_bits(scores: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Byte values and per-bit confidence in [0.5, 1] from (positions, 256) z-scores.

    The confidence is a bit's posterior under a soft-max over byte values, with the
    observed peak z as the signal level (max-log style).
    """
    values = np.arange(scores.shape[1])
    decoded = bytes(int(np.argmax(row)) for row in scores)
    confidences = []
    for row in scores:
        logits = row * max(float(row.max()), 0.0)
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        for bit in range(7, -1, -1):
            ones = float(weights[(values >> bit) & 1 == 1].sum())
            confidences.append(max(ones, 1.0 - ones))
    return decoded, np.array(confidences)
