"""Benford's-law statistics of spectral magnitudes: the detector's interpretable branch.

The first significant digit ``d`` of quantities spread over many orders of magnitude follows
Benford's law, ``P(d) = log10(1 + 1/d)``. STFT magnitudes of natural speech (and its noise
floor in pauses) follow it closely; vocoders, Griffin-Lim phase reconstruction, noise-free
TTS pauses and codec quantisation bend the distribution. We report the Jensen-Shannon
divergence between the observed first-digit histogram and Benford's, over all frames and
over the quietest frames (pauses), where synthetic audio tends to break the law most.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from voicefake.audio.features import stft

BENFORD = np.log10(1.0 + 1.0 / np.arange(1, 10))
"""P(d) for first digits d = 1..9."""


@dataclass(frozen=True)
class BenfordStats:
    """First-digit statistics of one waveform.

    Attributes:
        histogram: observed P(d), d = 1..9, over all STFT magnitudes.
        divergence: Jensen-Shannon divergence (bits, in [0, 1]) of ``histogram`` from Benford.
        pause_divergence: the same over the quietest 20 % of frames.
    """

    histogram: tuple[float, ...]
    divergence: float
    pause_divergence: float

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dict (floats rounded to 5 digits)."""
        out = asdict(self)
        out["histogram"] = [round(v, 5) for v in self.histogram]
        out["divergence"] = round(self.divergence, 5)
        out["pause_divergence"] = round(self.pause_divergence, 5)
        return out


_DIGIT_EDGES = np.log10(np.arange(2, 10)).astype(np.float32)


def first_digits(values: np.ndarray) -> np.ndarray:
    """First significant digit (1..9) of each positive value; values <= 0 are dropped.

    The digit is read off the fractional part of log10 (one transcendental per value):
    d = 1 + #{k in 2..9 : frac >= log10 k}.
    """
    values = np.asarray(values)
    logs = np.log10(values[values > 0].astype(np.float32))
    fraction = logs - np.floor(logs)
    return 1 + np.searchsorted(_DIGIT_EDGES, fraction, side="right")


def digit_histogram(values: np.ndarray) -> np.ndarray:
    """(9,) first-digit frequencies of ``values`` (uniform-free: zeros if nothing is positive)."""
    digits = first_digits(np.asarray(values).ravel())
    counts = np.bincount(digits, minlength=10)[1:].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def js_divergence(p: np.ndarray, q: np.ndarray = BENFORD) -> float:
    """Jensen-Shannon divergence in bits between two distributions over the same support."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def benford_stats(
    wav: np.ndarray, n_fft: int = 512, hop_length: int = 160, pause_fraction: float = 0.2,
    max_frames: int = 6000,
) -> BenfordStats:
    """First-digit statistics of the STFT magnitudes of ``wav``.

    Args:
        wav: (T,) float waveform, loudness-normalised (the digits of a magnitude depend on
            its scale only through the normalisation, which the detector fixes).
        n_fft / hop_length: STFT size and hop, samples.
        pause_fraction: share of lowest-energy frames treated as pauses.
        max_frames: at most this many frames (evenly spaced) are counted (60 s at 10 ms).

    Returns:
        :class:`BenfordStats`.
    """
    wav_t = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if wav_t.numel() <= n_fft // 2:
        wav_t = torch.nn.functional.pad(wav_t, (0, n_fft // 2 + 1 - wav_t.numel()))
    frames = 1 + wav_t.numel() // hop_length
    if frames > max_frames:  # long calls: evenly spaced frames keep the cost bounded
        # the frames :func:`stft` would give at those positions, without the STFT of the whole call
        picked = torch.from_numpy(np.linspace(0, frames - 1, max_frames).astype(np.int64))
        padded = torch.nn.functional.pad(wav_t[None, None], (n_fft // 2, n_fft // 2), mode="reflect")[0, 0]
        window = torch.hann_window(n_fft, dtype=wav_t.dtype)
        mag = torch.fft.rfft(padded.unfold(0, n_fft, hop_length)[picked] * window).abs().T.numpy()
    else:
        mag = stft(wav_t, n_fft, hop_length, n_fft).abs().numpy()  # (n_fft//2+1, F)
    hist = digit_histogram(mag)
    energy = mag.sum(axis=0)
    count = max(1, int(round(pause_fraction * energy.size)))
    quiet = mag[:, np.argsort(energy)[:count]]
    pause_hist = digit_histogram(quiet)
    pause_div = js_divergence(pause_hist) if pause_hist.sum() > 0 else 1.0
    return BenfordStats(tuple(float(v) for v in hist), js_divergence(hist) if hist.sum() > 0 else 1.0, pause_div)


def benford_features(stats: BenfordStats) -> np.ndarray:
    """(2,) fusion inputs: log of the two divergences (log spreads the small values)."""
    # floor: a perfect match would give log(0)
    return np.log(np.maximum([stats.divergence, stats.pause_divergence], 1e-6))
