"""On-the-fly channel augmentation of detector training crops (``train.p_channel``)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake.detection.training import DetectionCropDataset, TrainConfig, augment

SR = 16000
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "detection"
QUIET = {"p_lowpass": 0.0, "p_dither": 0.0, "gain_db": 0.0}


def _speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 1200, 2500, 5500, 7000), start=1))
    return (0.2 * tone * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _share_above(wav: torch.Tensor, hz: float) -> float:
    power = torch.fft.rfft(wav.double()).abs() ** 2
    return float(power[int(hz / (SR / 2) * (power.shape[0] - 1)):].sum() / power.sum())


def test_a_phone_channel_takes_away_the_band_above_4_khz_and_keeps_the_length() -> None:
    wav = torch.from_numpy(_speech_like())
    assert _share_above(wav, 4100.0) > 0.01  # the test signal has energy up there
    torch.manual_seed(0)
    for _ in range(4):
        out = augment(wav, TrainConfig(p_channel=1.0, channel_kinds=("phone",), **QUIET), SR)
        assert out.shape == wav.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
        assert _share_above(out, 4100.0) < 1e-3


def test_channels_are_drawn_afresh_per_crop_and_replayed_from_torch_state() -> None:
    wav = torch.from_numpy(_speech_like())
    cfg = TrainConfig(p_channel=1.0, **QUIET)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    first, second = augment(wav, cfg, SR), augment(wav, cfg, SR)
    torch.set_rng_state(state)
    again = augment(wav, cfg, SR)
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_p_channel_zero_leaves_the_crop_alone_and_draws_nothing() -> None:
    """Off, it takes no draw from torch's generator: the default recipes' augmentation is as before
    (a low-pass draw, a dither draw and a gain draw)."""
    wav = torch.from_numpy(_speech_like())
    torch.manual_seed(0)
    assert torch.equal(augment(wav, TrainConfig(p_channel=0.0, **QUIET), SR), wav.clamp(-1, 1))
    after = torch.get_rng_state()
    torch.manual_seed(0)
    torch.rand(()), torch.rand(()), torch.empty(()).uniform_(0.0, 1.0)
    assert torch.equal(after, torch.get_rng_state())


@pytest.mark.parametrize("kind", ["phone", "recording"])
def test_digital_silence_goes_through_every_chain_kind(kind: str) -> None:
    torch.manual_seed(1)
    for _ in range(6):
        out = augment(torch.zeros(3 * SR), TrainConfig(p_channel=1.0, channel_kinds=(kind,), **QUIET), SR)
        assert out.shape == (3 * SR,) and torch.isfinite(out).all()


def test_a_pair_goes_through_one_and_the_same_channel() -> None:
    """A fake identical to its source comes out identical: the pair shares its chain, noise and codec."""
    source = _speech_like(1.0, seed=4)
    cfg = TrainConfig(p_pair=1.0, p_channel=1.0)
    data = DetectionCropDataset([source, source.copy()], [0, 1], 8000, cfg, SR, length=2, sources=[-1, 0])
    torch.manual_seed(0)
    crops = [data[0][0] for _ in range(3)]
    for wav in crops:
        assert torch.equal(wav[0], wav[1])
    assert not torch.equal(crops[0][0], crops[1][0])


@pytest.mark.parametrize("bad", [{"p_channel": 1.5}, {"p_channel": -0.1}, {"channel_kinds": ()},
                                 {"channel_kinds": ("phone", "radio")}])
def test_bad_channel_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="p_channel|channel_kinds"):
        TrainConfig(**bad)


def test_tiny_recipe_trains_with_channels_from_the_command_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPE / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run"), "train.p_channel=1.0",
                                      "train.channel_kinds=[recording]"])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert "p_channel: 1.0" in resolved and "recording" in resolved
