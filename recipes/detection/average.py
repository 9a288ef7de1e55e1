"""Averages the weights of several detector runs (a "model soup"), for calibrate.py.

    python recipes/detection/average.py --runs runs/detection/ft23s0 runs/detection/ft23s1 \
        --out runs/detection/soup23ck
    python recipes/detection/calibrate.py --checkpoint runs/detection/soup23ck ...

Each run's last completed step is read. The runs should share their initial weights
(fine-tunes of one checkpoint with different seeds): then their mean is a model of its own,
calibrated like any other (see ``voicefake.checkpoint.average_checkpoints``). Detector 0.3.2 is
such a mean of two seeds; it measured between them or better on most figures
(docs/benchmarks/detection.md, session 23).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from voicefake.checkpoint import average_checkpoints
from voicefake.config import run_recipe
from voicefake.train import state as run_state

log = logging.getLogger("average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    checkpoints = [run_state.last_step_checkpoint(run, "detector") for run in args.runs]
    averaged = average_checkpoints(checkpoints)
    averaged.save(args.out)
    log.info("averaged %d runs -> %s", len(checkpoints), args.out)


if __name__ == "__main__":
    run_recipe(main)
