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


def test_klettres_stage_trains_on_its_ten_voices_only(tmp_path, monkeypatch) -> None:
    """Stage klettres: recordings of the KLETTRES_TRAIN voices (>= 1 s), half as reals and half as
    copy-synthesis sources, all in train; the other voices never enter the data."""
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest

    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    folder, rows = tmp_path / "klettres", []
    tone = (0.2 * np.sin(np.arange(24000) / 5.0)).astype(np.float32)
    for speaker in ("klettres-de", "klettres-it"):  # de trains, it stays unseen
        for index in range(4):
            path = f"audio/{speaker}/alpha/{index}.flac"
            write_audio(folder / path, tone if index else tone[:8000], 16000)
            rows.append(ManifestRow(path=path, speaker=speaker, label="real", system="human",
                                    duration_s=1.5 if index else 0.5, sample_rate=16000))
    write_manifest(rows, folder / "manifest.csv")
    sources: list = []
    body = mod["add_klettres"]
    monkeypatch.setitem(body.__globals__, "add_copy_varied",
                        lambda writer, clips, counts, vocoder, prefix: sources.extend(clips))
    writer = mod["Writer"](tmp_path / "out")
    body(writer, folder, "vocoder")
    reals = {row.path.split("/", 2)[2] for row in writer.rows}
    assert all("klettres-de" in path for path in reals | {r.path for _, r, _ in sources})
    assert len(reals) + len(sources) == 3  # the three 1.5 s recordings of the training voice
    assert all("split=train" in row.notes for row in writer.rows)
    assert {split for _, _, split in sources} == {"train"}
