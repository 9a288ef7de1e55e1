"""Run directories: trainer state (optimizers, schedulers, step, RNG) and step folders.

Layout of a run::

    runs/<name>/config.yaml                 resolved config, written before the first step
    runs/<name>/logs/scalars.jsonl          one JSON object per logged step
    runs/<name>/step_00001000/<module>/     a Checkpoint directory per exported module
    runs/<name>/step_00001000/trainer_state.pt
    runs/<name>/best/<module>/              the exported modules at the best eval metric

Step folders are written to a temporary sibling and renamed, so a killed run never leaves a
half-written step behind and resumes from the last complete one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from voicefake.checkpoint import Checkpoint, CheckpointError

STEP_RE = re.compile(r"^step_(\d{8})$")
TEMP_RE = re.compile(r"^\.step_\d{8}\.")  # save_step's temporary folders
STATE_FILE = "trainer_state.pt"


def step_dir(run_dir: Path, step: int) -> Path:
    """The folder of ``step`` inside ``run_dir``."""
    return run_dir / f"step_{step:08d}"


def last_step_checkpoint(run_dir: Path, module: str) -> Checkpoint:
    """The ``module`` checkpoint of a run's last completed step (not its ``best/``)."""
    steps = list_steps(run_dir)
    if not steps:
        raise CheckpointError(f"{run_dir}: no completed training step")
    return Checkpoint.load(step_dir(run_dir, steps[-1]) / module)


def list_steps(run_dir: Path) -> list[int]:
    """Completed steps saved in ``run_dir``, ascending."""
    if not run_dir.is_dir():
        return []
    steps = []
    for child in run_dir.iterdir():
        match = STEP_RE.match(child.name)
        if match and (child / STATE_FILE).is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def rng_state() -> dict[str, Any]:
    """Python and torch RNG states (numpy's global RNG is never used in training)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`rng_state` returned."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_step(
    run_dir: Path,
    step: int,
    checkpoints: dict[str, Checkpoint],
    trainer_state: dict[str, Any],
    keep_last: int = 3,
) -> Path:
    """Atomically writes a step folder, then prunes older ones beyond ``keep_last``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    final = step_dir(run_dir, step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=run_dir))
    try:
        for name, ckpt in checkpoints.items():
            ckpt.save(tmp / name)
        torch.save(trainer_state, tmp / STATE_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # temporaries of saves that were killed half-way (never listed by list_steps)
    for stale in run_dir.glob(".step_*"):
        if stale.is_dir() and TEMP_RE.match(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    for old in list_steps(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(step_dir(run_dir, old), ignore_errors=True)
    return final


def load_trainer_state(path: Path) -> dict[str, Any]:
    """Reads ``trainer_state.pt`` without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def export(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], *,
           step: int | None = None, module: str | None = None, half: bool = True,
           replace: bool = False) -> Path:
    """Copies one Checkpoint out of a run: the release artefact, without optimizer state.

    Args:
        run_dir: the run directory.
        out: destination directory (must not exist unless ``replace``).
        step: which step (default: ``best/`` if present, else the latest step).
        module: which exported module (default: the only one in the step folder).
        half: store weights as float16.
        replace: overwrite the checkpoint in ``out``, keeping the other files beside it (its
            MODEL_CARD.md).
    """
    run_dir, out = Path(run_dir), Path(out)
    if step is not None:
        source = step_dir(run_dir, step)
    elif (run_dir / "best").is_dir():
        source = run_dir / "best"
    else:
        steps = list_steps(run_dir)
        if not steps:
            raise CheckpointError(f"{run_dir}: no completed step folders to export")
        source = step_dir(run_dir, steps[-1])
    if not source.is_dir():
        raise CheckpointError(f"{source}: no such step folder in {run_dir}")
    modules = sorted(p.name for p in source.iterdir() if (p / "config.json").is_file())
    if module is None:
        if len(modules) != 1:
            raise CheckpointError(f"{source}: choose one of {modules} with --module")
        module = modules[0]
    if module not in modules:
        raise CheckpointError(f"{source}: no module {module!r}; found {modules}")
    if out.exists() and not replace:
        raise FileExistsError(f"{out} exists; remove it or choose another path")
    return Checkpoint.load(source / module).save(out, half=half)
