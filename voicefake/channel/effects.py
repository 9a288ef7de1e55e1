"""Filters and acoustic effects: band-pass, narrowband, equaliser, level, noise, reverberation, speed, pitch."""

from __future__ import annotations

from fractions import Fraction

import librosa
import numpy as np
from scipy import signal

from voicefake.channel.base import (
    NOISE_KINDS,
    TELEPHONE_RATE,
    NoiseKind,
    _check,
    _check_range,
    _fit,
    _resample,
    _resample_ratio,
    _rng,
)


def bandpass(
    wav: np.ndarray,
    sample_rate: int,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    order: int = 4,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (a handset's response).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        low_hz: lower -3 dB edge in Hz (each pass; run forward and backward).
        high_hz: upper edge in Hz, below ``sample_rate / 2``.
        order: Butterworth order of one pass; the zero-phase response is its square.

    Returns:
        ``(T,)`` float32 band-passed waveform.

    Raises:
        ValueError: on bad input or edges outside ``0 < low_hz < high_hz < sample_rate / 2``.
    """
    wav = _check(wav, sample_rate)
    if not 0.0 < low_hz < high_hz < sample_rate / 2:
        raise ValueError(
            f"need 0 < low_hz < high_hz < {sample_rate / 2} Hz, got {low_hz}, {high_hz}"
        )
    sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, wav).astype(np.float32)


def narrowband(wav: np.ndarray, sample_rate: int, rate: int = TELEPHONE_RATE) -> np.ndarray:
    """Resample down to ``rate`` and back, removing everything above ``rate / 2``.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        rate: intermediate rate in Hz; if ``rate >= sample_rate`` the input is returned
            (as a copy), since it has no content above ``rate / 2``.

    Returns:
        ``(T,)`` float32 waveform band-limited to 0.9 * ``rate / 2`` (80 dB stop band).
    """
    wav = _check(wav, sample_rate)
    _check_range("rate", rate, 1000, 192000)
    if rate >= sample_rate:
        return wav.copy()
    return _fit(_resample(_resample(wav, sample_rate, rate), rate, sample_rate), len(wav))



def _pink(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` pink (1/f power) noise by spectral shaping of white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, num_samples)


def _talker(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` speech-like noise: band-passed pink noise under a 3-6 Hz syllable envelope."""
    low, high = rng.uniform(150.0, 400.0), min(rng.uniform(2500.0, 4500.0), 0.45 * sample_rate)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    voice = signal.sosfilt(sos, _pink(num_samples, rng))
    time_s = np.arange(num_samples) / sample_rate
    syllables = np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * time_s + rng.uniform(0, 2 * np.pi))
    return voice * np.clip(syllables, 0.0, None) ** 2


def _babble(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` babble: six speech-like talkers, randomly shifted (circularly) and weighted."""
    talkers = [_talker(num_samples, sample_rate, rng) for _ in range(6)]
    shifted = [np.roll(t, rng.integers(num_samples)) * rng.uniform(0.5, 1.0) for t in talkers]
    return np.sum(shifted, axis=0)


def _hum(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` 50 or 60 Hz mains hum with harmonics up to the 7th (1/k amplitudes)."""
    time_s, mains = np.arange(num_samples) / sample_rate, rng.choice([50.0, 60.0])
    harmonics = [k for k in range(1, 8) if k * mains < sample_rate / 2]
    phases = rng.uniform(0, 2 * np.pi, len(harmonics))
    tones = [np.sin(2 * np.pi * k * mains * time_s + phases[k - 1]) / k for k in harmonics]
    return np.sum(tones, axis=0)


def _noise(kind: str, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` noise of one of :data:`NOISE_KINDS`."""
    if kind == "white":
        return rng.standard_normal(num_samples)
    if kind == "pink":
        return _pink(num_samples, rng)
    if kind == "babble":
        return _babble(num_samples, sample_rate, rng)
    assert kind == "hum", kind  # add_noise has validated kind
    return _hum(num_samples, sample_rate, rng)


def add_noise(
    wav: np.ndarray,
    sample_rate: int,
    snr_db: float,
    kind: NoiseKind = "white",
    seed: int | np.random.Generator = 0,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Add noise at a given SNR, measured as total energies over the whole signal.

    Args:
        wav: ``(T,)`` waveform. A silent ``wav`` is returned unchanged (its SNR target
            asks for zero noise energy).
        sample_rate: Hz.
        snr_db: signal-to-noise ratio in dB.
        kind: generated noise: ``white``, ``pink``, ``babble`` (6 shifted speech-like
            talkers) or ``hum`` (50 or 60 Hz mains and harmonics). Ignored if ``noise``.
        seed: int seed or Generator.
        noise: ``(N,)`` noise recording to use instead; read from a seeded random offset
            and looped if shorter than ``wav``.

    Returns:
        ``(T,)`` float32 noisy waveform (not clipped).
    """
    wav = _check(wav, sample_rate)
    _check_range("snr_db", snr_db, -50.0, 100.0)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    rng = _rng(seed)
    if noise is None:
        noise = _noise(kind, len(wav), sample_rate, rng)
    else:
        noise = _check(noise, sample_rate, name="noise")
        noise = np.resize(np.roll(noise, -int(rng.integers(len(noise)))), len(wav))
    noise_energy = float(np.sum(np.square(noise, dtype=np.float64)))
    if noise_energy == 0.0:
        raise ValueError("noise is silent; cannot scale it to an SNR")
    signal_energy = float(np.sum(np.square(wav, dtype=np.float64)))
    gain = np.sqrt(signal_energy / noise_energy / 10.0 ** (snr_db / 10.0))
    return (wav + gain * noise).astype(np.float32)


def reverb(
    wav: np.ndarray,
    sample_rate: int,
    rt60: float = 0.4,
    seed: int | np.random.Generator = 0,
    drr_db: float = 3.0,
) -> np.ndarray:
    """Convolve with a synthetic room impulse response (exponentially decaying noise).

    The response is a unit direct path at sample 0 (so the output stays aligned) plus
    a noise tail from 2 ms on that decays 60 dB in ``rt60`` seconds, scaled to a
    direct-to-reverberant energy ratio of ``drr_db``. The output is rescaled to the
    input's RMS level.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        rt60: reverberation time in seconds, 0.05 ... 3.
        seed: int seed or Generator.
        drr_db: direct-to-reverberant energy ratio in dB.

    Returns:
        ``(T,)`` float32 reverberant waveform (the tail past ``T`` is cut).
    """
    wav = _check(wav, sample_rate)
    _check_range("rt60", rt60, 0.05, 3.0)
    time_s = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = _rng(seed).standard_normal(len(time_s)) * 10.0 ** (-3.0 * time_s / rt60)
    tail[: int(0.002 * sample_rate) + 1] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    tail[0] = 1.0
    out = signal.fftconvolve(wav, tail)[: len(wav)]
    out_rms = np.sqrt(np.mean(out**2))
    # A silent input gives a silent output; avoid dividing by its zero RMS.
    gain = np.sqrt(np.mean(np.square(wav, dtype=np.float64))) / out_rms if out_rms > 0 else 0.0
    return (out * gain).astype(np.float32)


def equalize(
    wav: np.ndarray,
    sample_rate: int,
    freqs_hz: list[float],
    gains_db: list[float],
    highpass_hz: float = 0.0,
) -> np.ndarray:
    """A smooth, zero-phase frequency response (a microphone's or a preamp's colour).

    The gain in dB is interpolated linearly in log frequency between the control points
    (held flat below the first and above the last); ``highpass_hz`` adds a second-order
    high-pass magnitude ``1 / sqrt(1 + (highpass_hz / f) ** 4)``. Applied to the whole
    signal in the frequency domain.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        freqs_hz: increasing control frequencies in Hz, in ``(0, sample_rate / 2]``.
        gains_db: one gain per control frequency, each in [-40, 40] dB.
        highpass_hz: high-pass corner in Hz, 0 (none) ... 1000.

    Returns:
        ``(T,)`` float32 waveform.
    """
    wav = _check(wav, sample_rate)
    freqs, gains = np.asarray(freqs_hz, np.float64), np.asarray(gains_db, np.float64)
    if freqs.ndim != 1 or freqs.size == 0 or freqs.shape != gains.shape:
        raise ValueError(f"need as many gains as control frequencies (at least one), got {freqs.size} and {gains.size}")
    if not (np.all(freqs > 0) and np.all(freqs <= sample_rate / 2) and np.all(np.diff(freqs) > 0)):
        raise ValueError(f"control frequencies must increase within (0, {sample_rate / 2}] Hz, got {list(freqs_hz)}")
    if np.any(np.abs(gains) > 40):
        raise ValueError(f"gains must be within +-40 dB, got {list(gains_db)}")
    _check_range("highpass_hz", highpass_hz, 0.0, 1000.0)
    grid = np.fft.rfftfreq(wav.size, 1.0 / sample_rate)
    safe = np.maximum(grid, 1.0)
    response = 10.0 ** (np.interp(np.log(safe), np.log(freqs), gains) / 20.0)
    if highpass_hz > 0:
        response = response / np.sqrt(1.0 + (highpass_hz / safe) ** 4)
    return np.fft.irfft(np.fft.rfft(wav) * response, wav.size).astype(np.float32)


def level(wav: np.ndarray, sample_rate: int, peak_db: float = -1.0, drive: float = 0.0) -> np.ndarray:
    """Recording level: scale to a peak of ``peak_db`` dBFS, then (``drive > 0``) a soft
    limiter ``tanh(drive * x) / tanh(drive)`` (an overdriven preamp).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        peak_db: peak level in dBFS, -60 ... 0.
        drive: soft-clipping drive, 0 (none) ... 10.

    Returns:
        ``(T,)`` float32 waveform (silence stays silent).
    """
    wav = _check(wav, sample_rate)
    _check_range("peak_db", peak_db, -60.0, 0.0)
    _check_range("drive", drive, 0.0, 10.0)
    peak = float(np.abs(wav).max(initial=0.0))
    if peak == 0.0:
        return wav.copy()
    out = wav / peak * 10.0 ** (peak_db / 20.0)
    if drive > 0:
        out = np.tanh(drive * out) / np.tanh(drive)
    return out.astype(np.float32)


def speed(wav: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Play faster (``factor > 1``) or slower by resampling; pitch moves with speed.

    Unlike every other channel, the output length changes: about ``T / factor``.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        factor: speed factor in [0.25, 4], approximated by a fraction with denominator
            at most 100.

    Returns:
        ``(ceil(T / factor),)`` float32 waveform, to be played at ``sample_rate``.
    """
    wav = _check(wav, sample_rate)
    _check_range("factor", factor, 0.25, 4.0)
    ratio = Fraction(factor).limit_denominator(100)
    return _resample_ratio(wav, ratio.denominator, ratio.numerator)


def pitch_shift(wav: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping duration (librosa phase vocoder + resampling).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        semitones: shift in semitones, -24 ... 24.

    Returns:
        ``(T,)`` float32 waveform.
    """
    wav = _check(wav, sample_rate)
    _check_range("semitones", semitones, -24.0, 24.0)
    shifted = librosa.effects.pitch_shift(wav, sr=sample_rate, n_steps=float(semitones))
    return _fit(shifted, len(wav))

