"""Speaker inference helpers: speech-only input, embedding of waveforms, calibrated scores."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from voicefake.audio.features import MelSpectrogram
from voicefake.audio.io import speech_regions
from voicefake.speaker.model import SpeakerEncoder

MIN_SECONDS = 0.5
"""Shortest input accepted, seconds of audio; below 1.5 s of speech embeddings are less reliable."""


def speech_only(wav: np.ndarray, sample_rate: int, pad_s: float = 0.1) -> np.ndarray:
    """Joins the speech regions (padded by ``pad_s``) of (T,) ``wav``; returns the input when
    that leaves less than :data:`MIN_SECONDS` (the encoder then pools whatever is there)."""
    parts = [
        wav[max(0, int((start - pad_s) * sample_rate)) : int((end + pad_s) * sample_rate)]
        for start, end in speech_regions(wav, sample_rate)
    ]
    joined = np.concatenate(parts) if parts else wav[:0]
    return joined if len(joined) >= MIN_SECONDS * sample_rate else wav


def embed_wave(encoder: SpeakerEncoder, features: MelSpectrogram, wav: np.ndarray,
               device: torch.device, centre: bool = True) -> np.ndarray:
    """(T,) float32 waveform at the encoder's sample rate -> (D,) unit-norm embedding
    (``centre=False``: without the model's embedding centre, see :meth:`SpeakerEncoder.embed_long`).

    Raises:
        ValueError: input shorter than :data:`MIN_SECONDS`.
    """
    sample_rate = features.config.sample_rate
    if len(wav) < MIN_SECONDS * sample_rate:
        raise ValueError(
            f"audio too short for a speaker embedding: {len(wav) / sample_rate:.2f} s; "
            f"need at least {MIN_SECONDS} s (1.5 s or more of speech recommended)"
        )
    wav = speech_only(wav, sample_rate)
    with torch.inference_mode():
        mel = features(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(device))
        emb = encoder.embed_long(mel[None], centre)[0]
    return emb.float().cpu().numpy()


def mean_embedding(embs: list[np.ndarray]) -> np.ndarray:
    """Enrollment: the renormalised mean of (D,) unit-norm embeddings -> (D,)."""
    if not embs:
        raise ValueError("need at least one embedding to enroll")
    mean = np.mean(np.stack(embs), axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """Verification score (cosine or AS-norm) -> same-speaker probability, and the threshold.

    ``p_same = sigmoid(scale * score + offset)`` (logistic regression on dev trials, classes
    weighted equally: the probability under a 50/50 prior); ``same = score >= threshold``,
    the threshold giving ``far`` false accepts on the dev trials.
    """

    scale: float
    offset: float
    threshold: float
    far: float

    def p_same(self, cosine: float) -> float:
        """Same-speaker probability in [0, 1]."""
        z = self.scale * cosine + self.offset
        return 1 / (1 + math.exp(-z)) if z > -700 else 0.0

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Calibration:
        """Reads ``metadata["calibration"]`` of a speaker checkpoint.

        Raises:
            ValueError: the checkpoint carries no calibration (see benchmarks/speaker.py --calibrate).
        """
        cal = metadata.get("calibration")
        if not isinstance(cal, dict):
            raise ValueError("this speaker checkpoint has no calibration; run benchmarks/speaker.py --calibrate on it")
        return cls(float(cal["scale"]), float(cal["offset"]), float(cal["threshold"]), float(cal["far"]))


def fit_calibration(scores: np.ndarray, labels: np.ndarray, far: float = 0.01) -> Calibration:
    """Logistic regression (equal class weights) of labels on cosine scores + threshold at ``far``."""
    from voicefake.metrics import threshold_at_far

    x = torch.as_tensor(scores, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.float64)
    weight = torch.where(y > 0, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], y, weight)
        loss.backward()
        return loss

    optimizer.step(closure)
    scale, offset = params.detach().tolist()
    return Calibration(scale, offset, threshold_at_far(scores, labels, far), far)
