"""Keyed, telephone-robust audio watermark for everything voicefake generates.

``embed(wav, payload)`` adds an imperceptible keyed mark (pure DSP, no learned weights, so
no checkpoint kind); ``detect(wav)`` reports presence, the payload bits with confidence and
the marked time segments. How it works: :mod:`voicefake.watermark.core` (embedding) and
:mod:`voicefake.watermark.detector` (search and decoding).

The default key is public (an open toolkit: anyone can check a clip). Anyone holding the
public key can also try to estimate and remove the mark; pass a private ``key`` to both
calls for a mark only its holder can detect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from voicefake.audio.io import resample
from voicefake.watermark.core import (
    DEFAULT_CONFIG,
    DEFAULT_KEY,
    HOP_LENGTH,
    SAMPLE_RATE,
    WatermarkConfig,
    embed_16k,
)
from voicefake.watermark.detector import align, decode_payload, payload_z
from voicefake.watermark.payload import MODEL_IDS, Payload

__all__ = ["DEFAULT_KEY", "MODEL_IDS", "Payload", "WatermarkConfig", "WatermarkReport", "detect",
           "embed"]


@dataclass
class WatermarkReport:
    """What :func:`detect` found.

    Attributes:
        watermarked: the clip statistic reached the threshold.
        p: presence probability in [0, 1] (0.5 at the threshold; logistic in the statistic).
        statistic: clip statistic, ~N(0, 1)-distributed maxima on unmarked audio.
        payload: decoded payload, or None when the CRC does not match.
        bits: the 32 decoded bits (24 data + 8 CRC) as a "0"/"1" string.
        bit_confidence: (32,) posterior of each decoded bit, in [0.5, 1].
        segments: marked (start_s, end_s, z) windows of the input's time axis.
        time_scale, freq_scale: the speed and frequency factors the mark was found at.
    """

    watermarked: bool
    p: float
    statistic: float
    payload: Payload | None
    bits: str
    bit_confidence: list[float]
    segments: list[tuple[float, float, float]] = field(default_factory=list)
    time_scale: float = 1.0
    freq_scale: float = 1.0

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict (payload as hex plus its fields)."""
        payload = None
        if self.payload is not None:
            payload = {"hex": self.payload.hex(), "toolkit_id": self.payload.toolkit_id,
                       "model_id": self.payload.model_id, "date": self.payload.date.isoformat()}
        return {"watermarked": self.watermarked, "p": round(self.p, 4),
                "statistic": round(self.statistic, 3), "payload": payload, "bits": self.bits,
                "bit_confidence": [round(c, 3) for c in self.bit_confidence],
                "segments": [[round(a, 3), round(b, 3), round(z, 2)] for a, b, z in self.segments]}


def embed(wav: np.ndarray, payload: Payload | bytes | None = None, sample_rate: int = SAMPLE_RATE,
          key: str = DEFAULT_KEY, config: WatermarkConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Adds the watermark to a waveform.

    Args:
        wav: (T,) float waveform in [-1, 1].
        payload: a :class:`Payload`, its 4 coded bytes, or None for ``Payload.today()``.
        sample_rate: Hz of ``wav``; the mark lives in 300-3400 Hz and is made at 16 kHz.
        key: the secret (or the public default) that draws the patterns.

    Returns:
        (T,) float32 marked waveform at ``sample_rate``, clipped to [-1, 1].

    Example:
        >>> marked = embed(wav, Payload.today("vocoder"), 16000)
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0 or not np.all(np.isfinite(wav)):
        raise ValueError(f"embed: expected a non-empty finite 1-D waveform, got shape {wav.shape}")
    coded = (payload or Payload.today()).to_bytes() if not isinstance(payload, bytes) else payload
    at_16k = wav if sample_rate == SAMPLE_RATE else resample(wav, sample_rate, SAMPLE_RATE)
    mark = embed_16k(at_16k, coded, key, config)
    if sample_rate != SAMPLE_RATE:
        mark = _fit(resample(mark, SAMPLE_RATE, sample_rate), len(wav))
    return np.clip(wav + mark, -1.0, 1.0).astype(np.float32)


def detect(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, key: str = DEFAULT_KEY,
           config: WatermarkConfig = DEFAULT_CONFIG) -> WatermarkReport:
    """Looks for the watermark in a waveform.

    Args:
        wav: (T,) float waveform.
        sample_rate: Hz of ``wav`` (resampled to 16 kHz; 8 kHz telephone audio works).
        key: the key the mark was made with.

    Returns:
        A :class:`WatermarkReport`: presence, probability, payload bits with confidence and
        the marked segments (windows of ``config.block_seconds`` = 0.512 s).

    Example:
        >>> report = detect(marked, 16000)
        >>> report.watermarked, report.payload
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0 or not np.all(np.isfinite(wav)):
        raise ValueError(f"detect: expected a non-empty finite 1-D waveform, got shape {wav.shape}")
    at_16k = wav if sample_rate == SAMPLE_RATE else resample(wav, sample_rate, SAMPLE_RATE)
    found = align(at_16k, key, config)
    coded, confidence = decode_payload(payload_z(found, key, config)[0])
    watermarked = found.statistic >= config.threshold
    # logistic in the statistic: 0.5 at the threshold, ~0.999 two units above it
    p = 1.0 / (1.0 + math.exp(-3.5 * (found.statistic - config.threshold)))
    frames = config.block_frames
    seconds = HOP_LENGTH / SAMPLE_RATE * found.time_scale
    duration = len(wav) / sample_rate
    segments = [(w * frames * seconds, min((w + 1) * frames * seconds, duration), float(z))
                for w, z in enumerate(found.window_z) if watermarked and z >= config.window_threshold]
    return WatermarkReport(
        watermarked=watermarked, p=p, statistic=found.statistic,
        payload=Payload.from_bytes(coded) if watermarked else None,
        bits="".join(f"{b:08b}" for b in coded), bit_confidence=[float(c) for c in confidence],
        segments=[(max(0.0, a), b, z) for a, b, z in segments if a < duration],
        time_scale=found.time_scale, freq_scale=found.freq_scale)


def _fit(wav: np.ndarray, num_samples: int) -> np.ndarray:
    out = np.zeros(num_samples, dtype=np.float32)
    out[: min(num_samples, len(wav))] = wav[:num_samples]
    return out
