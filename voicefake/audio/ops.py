"""Signal operations on waveforms: resampling, mono mixdown, loudness, speech regions, trimming.

Re-exported by :mod:`voicefake.audio.io`, where callers usually import them from.
"""

from __future__ import annotations

import logging

import numpy as np

from voicefake.audio.decode import _RATE_RANGE, _valid_rate

logger = logging.getLogger("voicefake.audio.io")

# ----------------------------------------------------------------------------- signal


def resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample with the SoX high-quality polyphase filter (deterministic).

    Args:
        wav: (T,) float waveform.
        orig_rate: its sample rate in Hz.
        target_rate: the wanted sample rate in Hz.

    Returns:
        (T * target_rate / orig_rate,) float32 waveform, clipped to [-1, 1].

    Raises:
        ValueError: a rate is outside 4000-384000 Hz or not an integer.
    """
    for rate in (orig_rate, target_rate):
        if not _valid_rate(rate):
            raise ValueError(f"sample rate {rate!r} is not an integer in {_RATE_RANGE}")
    wav = np.asarray(wav, dtype=np.float32)
    if orig_rate == target_rate:
        return wav.copy()
    # soxr is the resampler behind librosa's "soxr_hq" (a librosa dependency); calling it
    # directly avoids librosa's import time (seconds) for the same result.
    import soxr

    out = soxr.resample(wav, orig_rate, target_rate, quality="HQ")
    # The anti-aliasing filter rings, so a full-scale input can overshoot slightly.
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Downmix to mono by averaging the channels.

    Convention: a 1-D array is already mono. A 2-D array's channel axis is its shorter
    axis, so both (channels, T) (PyTorch, PyAV) and (T, channels) (soundfile) work; a
    square array is read as (channels, T).

    Args:
        wav: (T,), (channels, T) or (T, channels) waveform.

    Returns:
        (T,) float32 waveform.

    Raises:
        ValueError: the array has more than 2 dimensions.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav
    if wav.ndim != 2:
        raise ValueError(f"wav must be (T,), (channels, T) or (T, channels), got {wav.shape}")
    channel_axis = 0 if wav.shape[0] <= wav.shape[1] else 1
    return wav.mean(axis=channel_axis)


def _frame_power_db(wav: np.ndarray, sample_rate: int, frame_ms: float) -> np.ndarray:
    """(F,) mean power per non-overlapping frame, in dBFS (full-scale square wave = 0)."""
    frame_length = max(1, round(sample_rate * frame_ms / 1000))
    if len(wav) == 0:
        return np.zeros(0)
    num_frames = -(-len(wav) // frame_length)  # ceil: the last partial frame counts
    padded = np.zeros(num_frames * frame_length, dtype=np.float64)
    padded[: len(wav)] = wav
    frames = padded.reshape(num_frames, frame_length)
    # Count only real samples in the last frame, so its power is not diluted by padding.
    counts = np.full(num_frames, frame_length, dtype=np.float64)
    counts[-1] = len(wav) - (num_frames - 1) * frame_length
    power = (frames**2).sum(axis=1) / counts
    return 10 * np.log10(np.maximum(power, 1e-20))  # floor: log of exact silence


def _active_frames(power_db: np.ndarray, threshold_db: float) -> np.ndarray:
    """(F,) bool: frames within ``threshold_db`` of the loudest frame, above -100 dBFS."""
    if power_db.size == 0:
        return np.zeros(0, dtype=bool)
    return (power_db > power_db.max() + threshold_db) & (power_db > -100.0)


def loudness_normalize(wav: np.ndarray, sample_rate: int, target_db: float = -23.0) -> np.ndarray:
    """Scale a waveform so that its speech has a given loudness, without clipping.

    Loudness is the RMS level of the active frames only (30 ms frames within 40 dB of
    the loudest one), in dBFS where a full-scale square wave is 0 dB (a full-scale sine
    is -3 dB). Pauses therefore do not change the result. If the gain would push the
    peak above -1 dBFS, the gain is lowered so the peak sits at -1 dBFS, and the result
    is quieter than ``target_db``.

    Args:
        wav: (T,) float waveform.
        sample_rate: its sample rate in Hz.
        target_db: wanted speech RMS level in dBFS.

    Returns:
        (T,) float32 waveform. Silence (no active frames) is returned unchanged.

    Raises:
        ValueError: the waveform contains NaN or infinite values.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if not np.isfinite(wav).all():
        raise ValueError("loudness_normalize: wav contains NaN or infinite values")
    power_db = _frame_power_db(wav, sample_rate, 30.0)
    active = _active_frames(power_db, -40.0)
    if not active.any():
        logger.debug("loudness_normalize: no active frames, returning input unchanged")
        return wav.copy()
    loudness_db = 10 * np.log10(np.mean(10 ** (power_db[active] / 10)))
    gain = 10 ** ((target_db - loudness_db) / 20)
    peak_limit = 10 ** (-1.0 / 20)  # -1 dBFS headroom for inter-sample peaks and codecs
    peak = float(np.max(np.abs(wav)))
    gain = min(gain, peak_limit / peak)
    return (wav * gain).astype(np.float32)


def speech_regions(
    wav: np.ndarray,
    sample_rate: int,
    *,
    frame_ms: float = 30.0,
    threshold_db: float = -40.0,
    min_speech_s: float = 0.1,
    min_silence_s: float = 0.2,
) -> list[tuple[float, float]]:
    """Find where someone is speaking, from frame energy.

    A frame is active when its power is within ``threshold_db`` of the loudest frame.
    Pauses shorter than ``min_silence_s`` are bridged, then active stretches shorter than
    ``min_speech_s`` are dropped. Times are accurate to one frame.

    Args:
        wav: (T,) float waveform.
        sample_rate: its sample rate in Hz.
        frame_ms: frame length in milliseconds (frames do not overlap).
        threshold_db: activity threshold in dB relative to the loudest frame (negative).
        min_speech_s: shortest kept speech region, in seconds.
        min_silence_s: shortest pause that splits two regions, in seconds.

    Returns:
        ``[(start_s, end_s), ...]`` in seconds, sorted; empty when nothing is active.
    """
    wav = np.asarray(wav, dtype=np.float32)
    frame_s = max(1, round(sample_rate * frame_ms / 1000)) / sample_rate
    active = _active_frames(_frame_power_db(wav, sample_rate, frame_ms), threshold_db)
    runs = _runs(active)
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and (start - merged[-1][1]) * frame_s < min_silence_s:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    duration = len(wav) / sample_rate
    return [
        (start * frame_s, min(end * frame_s, duration))
        for start, end in merged
        if (end - start) * frame_s >= min_speech_s
    ]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` frame index ranges (end exclusive) where mask is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(start), int(end)) for start, end in zip(starts, ends, strict=True)]


def trim_silence(wav: np.ndarray, sample_rate: int, *, pad_s: float = 0.1) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``pad_s`` seconds around the speech.

    Args:
        wav: (T,) float waveform.
        sample_rate: its sample rate in Hz.
        pad_s: silence kept before the first and after the last speech region, seconds.

    Returns:
        (T',) float32 waveform; empty when :func:`speech_regions` finds no speech.
    """
    wav = np.asarray(wav, dtype=np.float32)
    regions = speech_regions(wav, sample_rate)
    if not regions:
        return wav[:0].copy()
    start = max(0, int((regions[0][0] - pad_s) * sample_rate))
    end = min(len(wav), int(np.ceil((regions[-1][1] + pad_s) * sample_rate)))
    return wav[start:end].copy()


