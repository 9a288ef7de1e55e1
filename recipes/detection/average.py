"""Averages the weights of several detector runs (a "model soup"), for calibrate.py.

    python recipes/detection/average.py --runs runs/detection/ft23s0 runs/detection/ft23s1 \
        --out runs/detection/soup23ck
    python recipes/detection/calibrate.py --checkpoint runs/detection/soup23ck ...

Each run's last completed step is read. The runs should share their initial weights
(fine-tunes of one checkpoint with different seeds): then their mean is a model of its own,
usually between them or better, and calibrated like any other (see
``voicefake.checkpoint.average_checkpoints``). Detector 0.3.2 is such a mean of two seeds.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from voicefake.checkpoint import Checkpoint, average_checkpoints
from voicefake.config import run_recipe
from voicefake.train import state as run_state

log = logging.getLogger("average")


def last_step(run: Path) -> Checkpoint:
    """The detector of a run's last completed step."""
    steps = run_state.list_steps(run)
    if not steps:
        raise FileNotFoundError(f"{run}: no completed training step")
    return Checkpoint.load(run_state.step_dir(run, steps[-1]) / "detector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    checkpoints = [last_step(run) for run in args.runs]
    averaged = average_checkpoints(checkpoints)
    averaged.save(args.out)
    log.info("averaged %d runs -> %s", len(checkpoints), args.out)


if __name__ == "__main__":
    run_recipe(main)
