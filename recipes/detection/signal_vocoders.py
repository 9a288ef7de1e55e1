"""Classic signal-model vocoders and voice changers, as extra fake families for the detector's training data.

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
- :func:`harmonic_noise_vocoder`: a sinusoidal model (harmonic plus noise). Sinusoids at
  the multiples of the tracked F0, up to a maximum voiced frequency, each at the level of the
  spectral peak next to it, plus noise shaped by a cepstrally smoothed envelope above that
  frequency and in unvoiced frames.
- :func:`psola_shift`: a time-domain voice changer, TD-PSOLA. Two-period grains around
  pitch marks are overlap-added at a new spacing (a pitch shift of a few semitones).
- :func:`formant_warp`: a "gender changer". The spectral envelope is stretched or squeezed
  along frequency while the harmonics and the phase stay where they were.

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


def _envelope(magnitude: np.ndarray, lifter: int) -> np.ndarray:
    """The cepstrally smoothed spectral envelope (same shape as ``magnitude``: bins x frames)."""
    cepstrum = np.fft.irfft(np.log(magnitude + 1e-7), axis=0)
    cepstrum[lifter + 1 : cepstrum.shape[0] - lifter] = 0.0
    return np.exp(np.fft.rfft(cepstrum, axis=0).real[: magnitude.shape[0]])


def _match_frame_energy(out: np.ndarray, reference: np.ndarray, hop: int = HOP) -> np.ndarray:
    """Rescales ``out`` so that its energy per hop follows ``reference``'s (smoothed gains)."""
    def energy(x: np.ndarray) -> np.ndarray:
        return librosa.feature.rms(y=x, frame_length=4 * hop, hop_length=hop)[0] ** 2

    gain = np.sqrt(energy(reference) / np.maximum(energy(out), 1e-10))
    gain = np.minimum(signal.medfilt(gain, 5), 10.0)
    return out * np.interp(np.arange(out.size) / hop, np.arange(gain.size), gain)


def harmonic_noise_vocoder(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """A harmonic-plus-noise model: a drawn maximum voiced frequency (3, 4 or 5 kHz) and
    envelope smoothing for the noise (20, 30 or 40 cepstral coefficients). Each harmonic's
    amplitude is the spectral peak next to it; the phases run freely from random starts."""
    rng = np.random.default_rng(seed)
    max_voiced = float(rng.choice([3000.0, 4000.0, 5000.0]))
    lifter = int(rng.choice([20, 30, 40]))
    x = np.asarray(wav, dtype=np.float32)
    n_fft = 1024
    f0, voicing = _f0_voicing(x)
    stft = librosa.stft(x, n_fft=n_fft, hop_length=HOP)
    envelope = _envelope(np.abs(stft), lifter)
    frames = min(envelope.shape[1], f0.size)
    f0, voicing, envelope = f0[:frames], voicing[:frames], envelope[:, :frames]
    freqs = np.arange(envelope.shape[0]) * SAMPLE_RATE / n_fft
    t = np.arange(x.size) / HOP
    f0_s = np.interp(t, np.arange(frames), f0)
    phase = 2 * np.pi * np.cumsum(f0_s / SAMPLE_RATE)
    scale = 2.0 / np.hanning(n_fft).sum()  # STFT peak of a unit sinusoid -> its amplitude
    harmonic = np.zeros(x.size)
    magnitude = np.abs(stft[:, :frames])
    for k in range(1, int(max_voiced // f0.min()) + 1):
        fk = k * f0
        centre = np.round(fk * n_fft / SAMPLE_RATE).astype(int)
        # the harmonic's level: the spectral peak within two bins of k x F0 (peak picking)
        level = np.max([magnitude[np.clip(centre + o, 0, magnitude.shape[0] - 1), np.arange(frames)]
                        for o in range(-2, 3)], axis=0)
        amplitude = np.where(fk < max_voiced, level * scale * voicing, 0.0)
        if amplitude.max() <= 0.0:
            continue
        harmonic += np.interp(t, np.arange(frames), amplitude) * np.cos(k * phase + rng.uniform(0, 2 * np.pi))
    noise = librosa.stft(rng.standard_normal(x.size).astype(np.float32), n_fft=n_fft, hop_length=HOP)[:, :frames]
    noise /= np.sqrt((np.hanning(n_fft) ** 2).sum())  # unit-power noise -> unit STFT magnitude
    unvoiced = np.where(freqs[:, None] >= max_voiced, 1.0, 1.0 - voicing[None, :])
    aperiodic = librosa.istft(noise * envelope * np.sqrt(unvoiced), hop_length=HOP, n_fft=n_fft, length=x.size)
    out = _match_frame_energy(harmonic + aperiodic, x.astype(np.float64))
    return out.astype(np.float32), f"hnm-vocoder-mvf{max_voiced / 1000:g}k-c{lifter}"


def psola_shift(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """TD-PSOLA pitch shift by a drawn 1-4 semitones up or down, length kept. Pitch marks are
    one period apart in voiced frames, 10 ms apart elsewhere (unvoiced grains keep their spacing)."""
    rng = np.random.default_rng(seed)
    semitones = float(rng.choice([-1, 1]) * rng.choice([1.0, 2.0, 3.0, 4.0]))
    factor = 2 ** (semitones / 12)
    x = np.asarray(wav, dtype=np.float64)
    f0, voicing = _f0_voicing(x.astype(np.float32))

    def period(at: float) -> tuple[int, bool]:
        i = min(int(at) // HOP, f0.size - 1)
        voiced = bool(voicing[i] > 0.5)
        return (int(round(SAMPLE_RATE / f0[i])) if voiced else HOP), voiced

    marks, at = [], 0.0
    while at < x.size:
        marks.append(int(at))
        at += period(at)[0]
    marks_arr = np.asarray(marks)
    out, weight = np.zeros(x.size), np.zeros(x.size)
    at = 0.0
    while at < x.size:
        length, voiced = period(at)
        source = int(marks_arr[np.argmin(np.abs(marks_arr - at))])
        window = np.hanning(2 * length + 1)
        lo, hi = max(0, source - length), min(x.size, source + length + 1)
        grain = x[lo:hi] * window[lo - source + length : hi - source + length]
        start = int(at) - (source - lo)
        a, b = max(0, start), min(x.size, start + grain.size)
        if b > a:
            out[a:b] += grain[a - start : b - start]
            weight[a:b] += window[lo - source + length : hi - source + length][a - start : b - start]
        at += length / factor if voiced else length
    out /= np.maximum(weight, 0.5)
    return out.astype(np.float32), f"psola-{semitones:+g}st"


def formant_warp(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """The spectral envelope warped along frequency by a drawn factor (0.85-1.18), the fine
    structure and the phase kept: a formant shift without a pitch shift."""
    rng = np.random.default_rng(seed)
    alpha = float(rng.choice([0.85, 0.9, 0.94, 1.06, 1.12, 1.18]))
    lifter = int(rng.choice([24, 32]))
    x = np.asarray(wav, dtype=np.float32)
    n_fft = 1024
    stft = librosa.stft(x, n_fft=n_fft, hop_length=HOP)
    envelope = _envelope(np.abs(stft), lifter)
    bins = envelope.shape[0]
    source = np.clip(np.arange(bins) / alpha, 0, bins - 1)  # output bin i reads the envelope at i / alpha
    low = np.minimum(np.floor(source).astype(int), bins - 2)
    warp = np.zeros((bins, bins))
    warp[np.arange(bins), low] = 1 - (source - low)
    warp[np.arange(bins), low + 1] = source - low
    warped = warp @ envelope
    out = librosa.istft(stft * (warped / np.maximum(envelope, 1e-9)), hop_length=HOP, n_fft=n_fft, length=x.size)
    return _match_frame_energy(out.astype(np.float64), x.astype(np.float64)).astype(np.float32), \
        f"formant-warp-a{alpha:g}-c{lifter}"


SIGNAL_VOCODERS = {"lpc-vocoder": lpc_vocoder, "channel-vocoder": channel_vocoder,
                   "phase-vocoder": phase_vocoder_shift, "hnm-vocoder": harmonic_noise_vocoder,
                   "psola": psola_shift, "formant-warp": formant_warp}
