"""recipes/speaker/build_cache.py: WORLD pseudo-speakers change pitch and formants independently."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("pyworld", reason="pyworld (a dev dependency) makes the WORLD voices")


def _recipe() -> types.ModuleType:
    if "speaker_cache_recipe" not in sys.modules:
        spec = importlib.util.spec_from_file_location("speaker_cache_recipe", ROOT / "recipes/speaker/build_cache.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["speaker_cache_recipe"]


def _vowel(f0: float, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    """A glottal pulse train through two resonances (500 and 1500 Hz): a steady vowel."""
    from scipy.signal import lfilter

    t = np.arange(int(seconds * rate))
    pulses = (np.diff(np.floor(t * f0 / rate), prepend=-1) > 0).astype(np.float64)
    out = pulses
    for freq, bw in ((500, 80), (1500, 120)):
        r = np.exp(-np.pi * bw / rate)
        out = lfilter([1.0], [1, -2 * r * np.cos(2 * np.pi * freq / rate), r * r], out)
    return (0.1 * out / np.abs(out).max()).astype(np.float32)


def _f0(wav: np.ndarray) -> float:
    import pyworld

    f0, _ = pyworld.dio(wav.astype(np.float64), 16000, frame_period=5.0)
    return float(np.median(f0[f0 > 0]))


def _second_formant(wav: np.ndarray) -> float:
    """Peak of the spectrum smoothed over 400 Hz (wider than the harmonic spacing), 1-2.5 kHz."""
    spectrum = np.abs(np.fft.rfft(wav)) ** 2
    freqs = np.fft.rfftfreq(len(wav), 1 / 16000)
    width = int(400 / freqs[1])
    smooth = np.convolve(spectrum, np.ones(width) / width, mode="same")
    band = (freqs > 1000) & (freqs < 2500)
    return float(freqs[band][np.argmax(smooth[band])])


def test_world_voice_moves_pitch_and_formants_independently() -> None:
    recipe = _recipe()
    wav = _vowel(120.0)
    same = recipe.world_voice(wav, 1.0, 1.0)
    higher = recipe.world_voice(wav, 1.5, 1.0)
    brighter = recipe.world_voice(wav, 1.0, 1.15)
    for out in (same, higher, brighter):
        assert out.shape == wav.shape and out.dtype == np.float32
        assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(wav**2)), rel=1e-3)
    assert _f0(same) == pytest.approx(120, rel=0.05)
    assert _f0(higher) == pytest.approx(180, rel=0.05)
    assert _f0(brighter) == pytest.approx(120, rel=0.05)  # formants moved, pitch kept
    base = _second_formant(same)
    assert base == pytest.approx(_second_formant(wav), rel=0.05)
    assert _second_formant(higher) == pytest.approx(base, rel=0.05)  # pitch moved, envelope kept
    assert _second_formant(brighter) == pytest.approx(1.15 * base, rel=0.05)


def test_world_ratios_are_reproducible_and_away_from_the_real_voice() -> None:
    recipe = _recipe()
    draws = [recipe.world_ratios(spk, 3, (0.7, 1.45), (0.88, 1.14)) for spk in range(200)]
    assert draws == [recipe.world_ratios(spk, 3, (0.7, 1.45), (0.88, 1.14)) for spk in range(200)]
    assert draws != [recipe.world_ratios(spk, 4, (0.7, 1.45), (0.88, 1.14)) for spk in range(200)]
    f0, formant = np.array(draws).T
    assert f0.min() >= 0.7 and f0.max() <= 1.45 and formant.min() >= 0.88 and formant.max() <= 1.14
    assert np.all((np.abs(np.log(f0)) > 0.05) | (np.abs(np.log(formant)) > 0.05))
    assert abs(np.corrcoef(np.log(f0), np.log(formant))[0, 1]) < 0.2  # drawn independently


def test_bad_range_is_one_clear_error() -> None:
    recipe = _recipe()
    assert recipe._range("0.7,1.45", "--world-f0") == (0.7, 1.45)
    for text in ("0.7", "a,b", "1.2,0.8", "0,1"):
        with pytest.raises(SystemExit, match="--world-f0"):
            recipe._range(text, "--world-f0")
