"""The conversion recipes' tiny configs train, export and resume on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from voicefake.checkpoint import Checkpoint

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "conversion"


def _train(script: str, config: str, run: Path, *overrides: str) -> None:
    cmd = [sys.executable, str(RECIPE / script), "--config", str(RECIPE / "configs" / config), "--run", str(run), *overrides]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": f"{ROOT}:{RECIPE}", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_content_then_decoder_tiny_recipes(tmp_path: Path) -> None:
    _train("train.py", "tiny.yaml", tmp_path / "content")
    encoder = Checkpoint.load(tmp_path / "content" / "best" / "encoder")
    assert encoder.kind == "content" and encoder.metadata["name"] == "content"
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "decoder",
           f"data.content={tmp_path / 'content' / 'best' / 'encoder'}")
    decoder = Checkpoint.load(tmp_path / "decoder" / "best" / "decoder")
    assert decoder.kind == "conversion" and decoder.mel == encoder.mel
    # re-running the finished command resumes at the last step and does nothing more
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "decoder",
           f"data.content={tmp_path / 'content' / 'best' / 'encoder'}")
    assert sorted(p.name for p in (tmp_path / "decoder").glob("step_*")) == ["step_00000002", "step_00000004"]
