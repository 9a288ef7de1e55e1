"""The tiny recipe trains end to end; every detection YAML loads into its dataclasses."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

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


def test_tiny_recipe_fine_tunes_from_a_checkpoint(tmp_path, monkeypatch) -> None:
    """``--init`` starts from a checkpoint's weights; weights of another size are a clear error."""
    tiny = str(RECIPE / "configs" / "tiny.yaml")
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / "a")])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    first = tmp_path / "a" / "step_00000004" / "detector"
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / "b"), "--init", str(first),
                                      "train.lr=0", "train.weight_decay=0"])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    before, after = Checkpoint.load(first), Checkpoint.load(tmp_path / "b" / "step_00000004" / "detector")
    assert after.metadata["init"] == str(first)
    weights = [k for k in before.state_dict if "running_" not in k and "num_batches" not in k]  # not batch-norm statistics
    assert weights and all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in weights)
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / "c"), "--init", "detection"])
    with pytest.raises(SystemExit, match="do not fit this config's model"):
        runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
