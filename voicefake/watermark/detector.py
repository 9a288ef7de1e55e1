"""Finds the mark of :mod:`voicefake.watermark.core`: sync search, localisation, payload.

Pipeline for a 16 kHz waveform (shapes: ``F`` frames, ``B`` bands, ``W`` windows):

1. Power STFT once; for each (time, frequency) scale pair, band powers (F, B) on scaled
   band edges; a moving sum over one chip; log (dB); resampled along time.
2. Whitening: subtract the local mean over 3 chips x 3 bands, so the speech envelope
   (the host signal) mostly drops out and the +-gain pattern stays; then weight each cell
   by the gain the embedder gave it (larger on quiet cells): a matched filter.
3. Per window of one block, the circular correlation with the sync pattern at every
   offset, divided by its exact null standard deviation: ``z`` ~ N(0, 1) on unmarked audio.
4. Clip statistic: the larger of ``sum_w z_w / sqrt(W)`` and the penalised best run of
   windows (:func:`segment_statistic`), at the best (scale pair, offset). Windows of that
   alignment with ``z_w`` over ``window_threshold`` are the marked segments.
5. Payload: at the best alignment, every block carries all 32 coded bits; each bit's
   descrambled cells are summed over the blocks, weighted by each block's sync evidence
   (maximum-ratio combining), giving a z-score per bit and its posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voicefake.watermark.core import (
    DEFAULT_CONFIG,
    DEFAULT_KEY,
    N_BITS,
    Pattern,
    WatermarkConfig,
    band_matrix,
    detector_features,
    log_band_features,
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


def time_scaled(features: np.ndarray, time_scale: float) -> np.ndarray:
    """Linear interpolation along time: row u of the result is row ``u * time_scale``."""
    if time_scale == 1.0:
        return features
    positions = np.arange(0.0, len(features) - 1, time_scale)
    low = positions.astype(int)
    frac = (positions - low)[:, None]
    high = np.minimum(low + 1, len(features) - 1)
    return features[low] * (1.0 - frac) + features[high] * frac


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


def segment_statistic(z: np.ndarray, min_windows: int) -> np.ndarray:
    """(W, O) window z per offset -> (O,) clip statistic per offset.

    The larger of the whole clip's ``sum(z) / sqrt(W)`` and, for dyadic runs of
    ``min_windows``, 2x, 4x... windows starting every half length, the best run's
    ``sum(z) / sqrt(length)`` less ``sqrt(2 ln(number of runs of that length))`` (the
    expected null maximum over those runs, a scan-statistic penalty). So a marked stretch
    inside unmarked audio (a splice, a concatenation) is not diluted by the unmarked
    windows around it, while the null maximum stays close to the whole-clip one.
    """
    windows = len(z)
    cumulative = np.concatenate([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
    best = cumulative[-1] / np.sqrt(windows)
    length = min_windows
    while length < windows:
        starts = np.unique(np.append(np.arange(0, windows - length + 1, length // 2),
                                     windows - length))
        sums = (cumulative[starts + length] - cumulative[starts]) / np.sqrt(length)
        best = np.maximum(best, sums.max(0) - np.sqrt(2.0 * np.log(len(starts))))
        length *= 2
    return best


def align(wav: np.ndarray, key: str = DEFAULT_KEY, config: WatermarkConfig = DEFAULT_CONFIG
          ) -> Alignment:
    """Searches scales and offsets for the sync pattern in a (T,) 16 kHz waveform."""
    pattern = make_pattern(key, config)
    spec = spectrum(wav)
    power = (spec.real**2 + spec.imag**2).numpy().T.astype(np.float64)
    best: Alignment | None = None
    for time_scale, freq_scale in config.scales:
        base = log_band_features(power @ band_matrix(freq_scale, config).T, config)
        features = detector_features(time_scaled(base, time_scale), config)
        z = window_scores(features, pattern, config)
        totals = segment_statistic(z, config.min_segment_windows)
        offset = int(np.argmax(totals))
        if best is None or totals[offset] > best.statistic:
            best = Alignment(float(totals[offset]), time_scale, freq_scale, offset, features,
                             z[:, offset])
    assert best is not None
    return best


def block_cells(found: Alignment, config: WatermarkConfig) -> np.ndarray:
    """(K, block_chips, B) chip features of every whole block at the found alignment."""
    starts = np.arange(found.offset, len(found.features) - config.chip_frames + 1,
                       config.chip_frames)
    chips = found.features[starts]
    blocks = len(chips) // config.block_chips
    if blocks == 0:  # shorter than one block: no whole block to read a payload from
        return np.zeros((0, config.block_chips, config.n_bands))
    return chips[: blocks * config.block_chips].reshape(blocks, config.block_chips, -1)


def payload_z(found: Alignment, key: str, config: WatermarkConfig) -> tuple[np.ndarray, int]:
    """Soft payload evidence at the found alignment.

    Every block carries all 32 bits. The blocks are combined by maximum-ratio combining:
    block ``b`` is weighted by its mark-to-noise estimate from the sync cells,
    ``max(sum(sync * cells), 0) / sum(|sync| * cells^2)``, so blocks without mark (silence,
    the unmarked part of a splice) drop out and strong blocks count more.

    Returns:
        ``(z, blocks_used)``: (32,) z-score of each coded bit (positive: a 1); number of
        blocks with a positive weight.
    """
    pattern = make_pattern(key, config)
    cells = block_cells(found, config)
    if len(cells) == 0:
        return np.zeros(N_BITS), 0
    sync_num = (cells * pattern.sync[None]).sum((1, 2))
    sync_var = (cells**2 * np.abs(pattern.sync)[None]).sum((1, 2))
    # a silent block has no variance: weight 0, not a division by zero
    weight = np.where(sync_var > 1e-9, np.maximum(sync_num, 0.0) / np.maximum(sync_var, 1e-9), 0.0)
    if not (weight > 0).any():
        weight = np.ones(len(cells))
    chips, bands = pattern.payload_index[:, 0], pattern.payload_index[:, 1]
    values = cells[:, chips, bands] * pattern.scramble * weight[:, None]  # (K, n_payload)
    num = np.bincount(pattern.payload_bit, values.sum(0), N_BITS)
    den = np.sqrt(np.bincount(pattern.payload_bit, (values**2).sum(0), N_BITS))
    return np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.0), int((weight > 0).sum())


def decode_payload(z: np.ndarray) -> tuple[bytes, np.ndarray]:
    """(32,) bit z-scores -> the 4 coded bytes and each bit's posterior in [0.5, 1].

    A bit's z is ~N(+-mu, 1); mu is estimated from the mean square over the 32 bits, and
    the posterior of the decided bit is the logistic of the log-likelihood ratio 2 mu |z|.
    """
    bits = (z > 0).astype(np.uint8)
    mu = float(np.sqrt(max(float(np.mean(z**2)) - 1.0, 0.0)))
    confidence = 1.0 / (1.0 + np.exp(-2.0 * mu * np.abs(z)))
    return np.packbits(bits).tobytes(), confidence
