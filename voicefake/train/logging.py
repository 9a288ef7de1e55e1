"""Scalar logging for training runs: a progress line on stderr and ``logs/scalars.jsonl``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


class ScalarLogger:
    """Writes one JSON line per logged step and a short progress line to stderr.

    Args:
        log_dir: folder for ``scalars.jsonl`` (created).
        enabled: False on non-zero ranks.
        total_steps: used for the progress percentage and ETA.
    """

    def __init__(self, log_dir: Path, enabled: bool = True, total_steps: int = 0,
                 start_step: int = 0) -> None:
        self.enabled = enabled
        self.total_steps = total_steps
        self.start = time.monotonic()
        self.first_step = start_step
        self.file = None
        if enabled:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.file = (log_dir / "scalars.jsonl").open("a")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Records ``scalars`` at ``step``."""
        if not self.enabled or self.file is None:
            return
        now = time.monotonic()
        record = {"step": step, "time": round(now - self.start, 3), **scalars}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        done = step - self.first_step
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(scalars.items())[:6])
        sys.stderr.write(
            f"[step {step}/{self.total_steps} {100 * step / max(self.total_steps, 1):.0f}% "
            f"{rate:.2f} it/s eta {eta / 60:.1f} min] {shown}\n"
        )

    def close(self) -> None:
        """Closes the log file."""
        if self.file is not None:
            self.file.close()
            self.file = None
