"""recipes/detection/signal_vocoders.py: the signal-model fakes keep what they should (pitch,
envelope, length) and rebuild the rest; stage aux gives each its own family."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import librosa
import numpy as np
import pytest

RECIPE = Path(__file__).parents[2] / "recipes" / "detection"
RATE = 16000


@pytest.fixture(scope="module")
def mod() -> dict:
    return runpy.run_path(str(RECIPE / "signal_vocoders.py"))


def vowel(f0: float = 140.0, seconds: float = 1.5, formants: tuple[float, ...] = (700.0, 1200.0, 2600.0)) -> np.ndarray:
    """A glottal pulse train at ``f0`` through three formant resonators, with a slight vibrato."""
    from scipy import signal

    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    phase = 0.5 + np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)) / RATE)  # pulses off the vocoders' grid
    source = np.zeros(n)
    source[1:][np.diff(np.floor(phase)) > 0] = 1.0
    out = source
    for f in formants:
        r = np.exp(-np.pi * 90 / RATE)
        out = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / RATE), r * r], out)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def median_f0(wav: np.ndarray) -> float:
    f0 = librosa.yin(wav, fmin=60, fmax=500, sr=RATE, frame_length=1024)
    return float(np.median(f0[5:-5]))


def band_levels(wav: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=wav, sr=RATE, n_fft=1024, n_mels=24, fmax=7000)
    return np.log(mel.mean(1) + 1e-9)


@pytest.mark.parametrize("name", ["lpc_vocoder", "channel_vocoder", "harmonic_noise_vocoder"])
def test_vocoders_keep_pitch_and_envelope_and_rebuild_the_waveform(mod: dict, name: str) -> None:
    x = vowel()
    y, system = mod[name](x, 0)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert system.startswith(name.replace("_", "-").replace("harmonic-noise", "hnm"))
    assert abs(median_f0(y) / median_f0(x) - 1) < 0.05
    tilt = band_levels(y) - band_levels(x)
    assert np.sqrt(((tilt - tilt.mean()) ** 2).mean()) < 1.5  # band levels within ~13 dB r.m.s.
    assert np.linalg.norm(y - x) > 0.5 * np.linalg.norm(x)  # a new waveform, not the input passed through
    assert np.corrcoef(x, y)[0, 1] < 0.5  # nor the input mixed in


def test_harmonic_noise_vocoder_keeps_noise_noisy(mod: dict) -> None:
    """Unvoiced input is rebuilt by the noise part: white noise comes out about as flat and as loud
    as it went in."""
    noise = (0.05 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)

    def flatness(wav: np.ndarray) -> float:
        return float(librosa.feature.spectral_flatness(y=wav, n_fft=1024).mean())

    for seed in range(3):
        y, system = mod["harmonic_noise_vocoder"](noise, seed)
        assert flatness(y) > 0.8 * flatness(noise), system
        assert 0.5 < np.sqrt((y**2).mean() / (noise**2).mean()) < 2.0, system  # rebuilt at its level


def test_vocoders_follow_the_input_pitch(mod: dict) -> None:
    """Two inputs an octave apart come out an octave apart (the excitation is not fixed)."""
    for name in ("lpc_vocoder", "channel_vocoder", "harmonic_noise_vocoder"):
        low, high = (median_f0(mod[name](vowel(f0), 0)[0]) for f0 in (110.0, 220.0))
        assert 1.9 < high / low < 2.1, name


@pytest.mark.parametrize("name", ["phase_vocoder_shift", "psola_shift"])
def test_pitch_shifts_move_the_pitch_by_their_semitones(mod: dict, name: str) -> None:
    x = vowel()
    for seed in range(4):
        y, system = mod[name](x, seed)
        semitones = float(re.search(r"([+-]\d+)st", system).group(1))
        assert 1 <= abs(semitones) <= 4 and y.shape == x.shape
        assert median_f0(y) / median_f0(x) == pytest.approx(2 ** (semitones / 12), rel=0.04)


def test_formant_warp_moves_the_envelope_and_keeps_the_pitch(mod: dict) -> None:
    """The output's long-term envelope is the input's stretched by the drawn factor, far closer
    to that than to the input's own; the harmonics (the pitch) stay where they were."""
    def log_envelope(wav: np.ndarray) -> np.ndarray:
        magnitude = np.abs(librosa.stft(wav, n_fft=1024, hop_length=160)).mean(1, keepdims=True)
        return np.log(mod["_envelope"](magnitude, 24)[:, 0])

    x = vowel()
    before = log_envelope(x)
    bins = np.arange(before.size)
    for seed in range(4):
        y, system = mod["formant_warp"](x, seed)
        alpha = float(re.search(r"-a([\d.]+)-", system).group(1))
        assert 0.85 <= alpha <= 1.18 and alpha != 1.0 and y.shape == x.shape
        after = log_envelope(y)[10:400]
        to_warped = np.abs(after - np.interp(bins / alpha, bins, before)[10:400]).mean()
        assert to_warped < 0.4 * np.abs(after - before[10:400]).mean(), system
        assert median_f0(y) / median_f0(x) == pytest.approx(1.0, rel=0.02)


def test_same_seed_same_fake(mod: dict) -> None:
    x = vowel()
    for fn in mod["SIGNAL_VOCODERS"].values():
        a, b = fn(x, 5), fn(x, 5)
        assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_silence_stays_silent(mod: dict) -> None:
    x = np.zeros(RATE, np.float32)
    x[8000:] = vowel(seconds=0.5)
    for fn in mod["SIGNAL_VOCODERS"].values():
        y, _ = fn(x, 1)
        assert np.isfinite(y).all()
        assert np.sqrt((y[1000:6000] ** 2).mean()) < 0.05 * np.sqrt((y[9000:] ** 2).mean())


def test_aux_stage_gives_each_vocoder_its_family(tmp_path) -> None:
    """Stage aux: one family per signal vocoder, never one of the eight held-out families, the
    source's split kept, the drawn settings in the system name."""
    from voicefake.data.manifests import ManifestRow

    shared = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    reals = [(vowel(120.0 + 10 * i, 2.0), ManifestRow(path=f"s{i}/clip{i}", speaker=f"s{i}", label="real",
                                                        system="human"), "train" if i < 3 else "dev")
             for i in range(5)]
    writer = shared["Writer"](tmp_path)
    shared["add_signal_vocoders"](writer, reals, {"train": 2, "dev": 1})
    clean = [r for r in writer.rows if r.notes.endswith("channel=clean")]
    assert len(clean) == 18 and all(r.label == "fake" for r in clean)
    assert {r.folder for r in clean} == {"lpc-vocoder", "channel-vocoder", "phase-vocoder", "hnm-vocoder",
                                         "psola", "formant-warp"}
    assert all(r.system.startswith(r.folder) for r in clean)
    logo = (RECIPE / "logo.sh").read_text()
    assert not any(family in logo for family in {r.folder for r in clean})
    for row in clean:
        source = row.path.rsplit("/", 1)[1].split("_")[0]
        assert ("split=dev" in row.notes) == (source in ("clip3", "clip4")), row.path
