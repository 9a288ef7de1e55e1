"""RawBoost distortions for detector training (voicefake.detection.augment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicefake.detection.augment import (
    coloured_noise,
    convolutive,
    impulsive,
    notch_filter,
    rawboost,
)
from voicefake.detection.training import TrainConfig, augment

SR = 16000


def _speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 1200, 2500), start=1))
    return (0.2 * tone * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_a_notch_filter_cuts_one_band_and_passes_the_rest(seed: int) -> None:
    kernel = notch_filter(np.random.default_rng(seed), SR, max_bands=1, taps=(101, 101), bandwidth=(800.0, 800.0))
    gain = np.abs(np.fft.rfft(kernel, 4096))
    assert len(kernel) == 101 and gain.max() == pytest.approx(1.0, abs=1e-3)
    assert gain.min() < 0.5  # the notch
    assert np.mean(gain > 0.8) > 0.6  # one 800 Hz notch leaves most of the 8 kHz band alone


@pytest.mark.parametrize("seed", range(5))
def test_coloured_noise_lands_in_its_snr_range(seed: int) -> None:
    wav = _speech_like()
    noisy = coloured_noise(wav, np.random.default_rng(seed), SR, snr_db=(15.0, 20.0))
    snr = 10 * np.log10(np.mean(wav ** 2) / np.mean((noisy - wav) ** 2))
    assert 15.0 - 1e-3 <= snr <= 20.0 + 1e-3


def test_impulsive_errors_touch_a_few_samples_in_proportion_to_the_signal() -> None:
    wav = _speech_like()
    wav[:SR] = 0.0  # a silent first second stays silent: the error is signal-dependent
    out = impulsive(wav, np.random.default_rng(0), share=0.1, gain=2.0)
    changed = out != wav
    assert 0 < changed.mean() <= 0.1
    assert not changed[:SR].any()
    assert np.all(np.abs(out - wav) <= 2.0 * np.abs(wav) + 1e-7)


def test_convolutive_distortion_keeps_length_and_peak_and_changes_the_spectrum() -> None:
    wav = _speech_like()
    out = convolutive(wav, np.random.default_rng(3), SR)
    assert out.shape == wav.shape and out.dtype == np.float32
    assert np.abs(out).max() == pytest.approx(np.abs(wav).max(), rel=1e-5)
    assert np.mean((out - wav) ** 2) > 1e-4 * np.mean(wav ** 2)


def test_rawboost_is_reproducible_from_its_seed_and_stays_finite() -> None:
    wav = _speech_like()
    outs = [rawboost(wav, np.random.default_rng(seed), SR) for seed in (7, 7, 8)]
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    assert all(o.shape == wav.shape and np.isfinite(o).all() for o in outs)


def test_training_augmentation_applies_rawboost_only_when_asked() -> None:
    wav = torch.from_numpy(_speech_like())
    quiet = {"p_lowpass": 0.0, "p_dither": 0.0, "gain_db": 0.0}
    assert torch.equal(augment(wav, TrainConfig(**quiet), SR), wav.clamp(-1, 1))
    torch.manual_seed(0)
    boosted = augment(wav, TrainConfig(p_rawboost=1.0, **quiet), SR)
    assert boosted.shape == wav.shape and not torch.equal(boosted, wav)


def test_rawboost_draws_each_distortion_alone_and_all_three_in_series(monkeypatch: pytest.MonkeyPatch) -> None:
    import voicefake.detection.augment as augment_module

    calls: list[tuple[str, ...]] = []
    for name in ("convolutive", "impulsive", "coloured_noise"):
        def spy(wav, *args, _name=name, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            calls[-1] += (_name,)
            return wav
        monkeypatch.setattr(augment_module, name, spy)
    for seed in range(40):
        calls.append(())
        rawboost(_speech_like(0.1), np.random.default_rng(seed), SR)
    assert set(calls) == {("convolutive",), ("impulsive",), ("coloured_noise",),
                          ("convolutive", "impulsive", "coloured_noise")}
