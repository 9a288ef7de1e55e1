"""Classic signal-model vocoders, as extra fake families for the detector's training data.

None of them is one of the eight families that the leave-one-generator-out folds hold out
(``recipes/detection/logo.sh``). They add variety to copy-synthesis, so that a fold that
holds out Griffin-Lim, WORLD or voicefake's vocoder has seen other ways of rebuilding speech
from a parametric description:

- :func:`lpc_vocoder`: linear prediction (the LPC-10 idea). An all-pole filter per 10 ms,
  driven by a pulse train at the tracked F0 mixed with noise by a voicing degree.
- :func:`channel_vocoder`: the band-envelope vocoder (Dudley's idea). The mel-band envelope
  of the speech is imposed on a synthetic pulse-and-noise excitation in the STFT domain.
- :func:`phase_vocoder_shift`: a voice changer, the phase vocoder's pitch shift of a few
  semitones (time stretch, then resampling).

Each takes a 16 kHz waveform and a seed, and returns the fake and a system name that
records its drawn settings.
"""

from __future__ import annotations

import librosa
import numpy as np
from scipy import signal

SAMPLE_RATE = 16000
HOP = 160  # 10 ms


def _f0_voicing(wav: np.ndarray, hop: int = HOP) -> tuple[np.ndarray, np.ndarray]:
    """F0 per hop (YIN) and a voicing degree in [0, 1] from the normalised autocorrelation at
    the F0's lag."""
    frame = 1024
    f0 = librosa.yin(wav, fmin=60, fmax=400, sr=SAMPLE_RATE, frame_length=frame, hop_length=hop)
    frames = librosa.util.frame(np.pad(wav, frame // 2), frame_length=frame, hop_length=hop)[:, : f0.size]
    f0 = f0[: frames.shape[1]]
    lags = np.clip(np.round(SAMPLE_RATE / f0).astype(int), 1, frame // 2 - 1)
    half = frame // 2
    a = frames[:half]
    b = frames[np.arange(half)[:, None] + lags[None, :], np.arange(frames.shape[1])[None, :]]
    r = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-12)
    voicing = np.clip((r - 0.35) / 0.4, 0.0, 1.0)
    return f0, voicing


def _excitation(f0: np.ndarray, voicing: np.ndarray, length: int, rng: np.random.Generator,
                hop: int = HOP) -> np.ndarray:
    """A unit-power pulse train at the per-sample F0 mixed with white noise by the voicing."""
    t = np.arange(length) / hop
    f0_s = np.interp(t, np.arange(f0.size), f0)
    v_s = np.interp(t, np.arange(voicing.size), voicing)
    phase = np.cumsum(f0_s / SAMPLE_RATE)
    pulses = np.zeros(length)
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    pulses *= np.sqrt(SAMPLE_RATE / np.maximum(f0_s, 1.0))  # unit power whatever the F0
    noise = rng.standard_normal(length)
    return np.sqrt(v_s) * pulses + np.sqrt(1.0 - v_s) * noise


def lpc_vocoder(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Linear-prediction analysis-synthesis with a drawn order (16, 20 or 24)."""
    rng = np.random.default_rng(seed)
    order = int(rng.choice([16, 20, 24]))
    x = np.asarray(wav, dtype=np.float64)
    f0, voicing = _f0_voicing(x.astype(np.float32))
    emphasised = signal.lfilter([1.0, -0.9], [1.0], x)
    window = np.hanning(400)
    excitation = _excitation(f0, voicing, x.size, rng)
    out = np.zeros_like(x)
    state = np.zeros(order)
    for index in range(int(np.ceil(x.size / HOP))):
        start = index * HOP
        centre = start + HOP // 2
        seg = emphasised[max(0, centre - 200) : centre + 200]
        seg = np.pad(seg, (0, 400 - seg.size)) * window
        if np.abs(seg).max() < 1e-7:
            state[:] = 0.0
            continue
        a = librosa.lpc(seg + 1e-9 * rng.standard_normal(400), order=order)
        if not np.isfinite(a).all():
            continue
        residual = signal.lfilter(a, [1.0], seg)
        gain = np.sqrt((residual**2).sum() / (window**2).sum())
        block = excitation[start : start + HOP] * gain
        y, state = signal.lfilter([1.0], a, block, zi=state)
        out[start : start + block.size] = y
    out = signal.lfilter([1.0], [1.0, -0.9], out)  # de-emphasis
    return out.astype(np.float32), f"lpc-vocoder-o{order}"


def channel_vocoder(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """A mel-band envelope (16, 24 or 32 bands, drawn) imposed on a pulse-and-noise excitation."""
    rng = np.random.default_rng(seed)
    bands = int(rng.choice([16, 24, 32]))
    x = np.asarray(wav, dtype=np.float32)
    n_fft, hop = 512, HOP
    f0, voicing = _f0_voicing(x, hop)
    spec = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop)) ** 2
    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=bands, fmin=60, fmax=7800)
    envelope = basis.T @ (basis @ spec) / np.maximum(basis.T @ basis.sum(1, keepdims=True), 1e-9)
    excitation = librosa.stft(_excitation(f0, voicing, x.size, rng).astype(np.float32), n_fft=n_fft, hop_length=hop)
    exc_env = basis.T @ (basis @ np.abs(excitation) ** 2) / np.maximum(basis.T @ basis.sum(1, keepdims=True), 1e-9)
    frames = min(envelope.shape[1], excitation.shape[1])
    gain = np.sqrt(envelope[:, :frames] / np.maximum(exc_env[:, :frames], 1e-12))
    out = librosa.istft(excitation[:, :frames] * gain, hop_length=hop, n_fft=n_fft, length=x.size)
    return out.astype(np.float32), f"channel-vocoder-b{bands}"


def phase_vocoder_shift(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """The phase vocoder's pitch shift by a drawn 1-4 semitones up or down, length kept."""
    rng = np.random.default_rng(seed)
    semitones = float(rng.choice([-1, 1]) * rng.choice([1.0, 2.0, 3.0, 4.0]))
    n_fft = int(rng.choice([512, 1024, 2048]))
    x = np.asarray(wav, dtype=np.float32)
    out = librosa.effects.pitch_shift(x, sr=SAMPLE_RATE, n_steps=semitones, n_fft=n_fft)
    return librosa.util.fix_length(out, size=x.size).astype(np.float32), f"phase-vocoder-{semitones:+g}st-{n_fft}"


SIGNAL_VOCODERS = {"lpc-vocoder": lpc_vocoder, "channel-vocoder": channel_vocoder,
                   "phase-vocoder": phase_vocoder_shift}
