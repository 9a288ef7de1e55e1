"""The tiny recipe trains end to end; every detection YAML loads into its dataclasses."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from voicefake.checkpoint import Checkpoint
from voicefake.config import from_dict, load_yaml
from voicefake.detection.model import DetectorConfig
from voicefake.detection.training import TrainConfig
from voicefake.train.loop import LoopConfig

RECIPE = Path(__file__).parents[2] / "recipes" / "detection"


@pytest.mark.parametrize("name", ["tiny", "bundled", "full"])
def test_configs_load(name: str) -> None:
    raw = load_yaml(RECIPE / "configs" / f"{name}.yaml")
    assert set(raw) <= {"model", "train", "loop", "data"}
    from_dict(DetectorConfig, raw.get("model", {}), "model")
    from_dict(TrainConfig, raw.get("train", {}), "train")
    from_dict(LoopConfig, raw.get("loop", {}), "loop")


def test_tiny_recipe_trains(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPE / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run")])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    ckpt = Checkpoint.load(tmp_path / "run" / "step_00000004" / "detector")
    assert ckpt.kind == "detection" and ckpt.metadata["step"] == 4
