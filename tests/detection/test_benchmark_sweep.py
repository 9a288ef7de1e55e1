"""The detection benchmark's threshold sweep counts what it says (benchmarks/detection.py --sweep)."""

from __future__ import annotations

import pytest

from voicefake import api

detection_benchmark = pytest.importorskip("benchmarks.detection")


def test_sweep_moves_only_the_narrowband_threshold() -> None:
    wideband = api.load("detection").checkpoint.metadata["calibration"]["threshold"]
    dev = [(0.5, False, True), (0.95, False, True), (0.99, True, True), (0.9, True, True),
           (0.999, False, False)]  # a wideband real far above every threshold: not counted on dev
    unseen = [("voices", "as recorded", 0.96, True), ("voices", "as recorded", 0.5, True),
              ("voices", "phone", 0.999, False), ("voices", "phone", 0.1, False)]
    rows = detection_benchmark.threshold_sweep(dev, unseen, [0.92, 0.97])
    loose, strict = rows
    assert loose["dev_narrowband_false_alarm_rate"] == 0.5 and strict["dev_narrowband_false_alarm_rate"] == 0.0
    assert loose["dev_narrowband_miss_rate"] == 0.5 and strict["dev_narrowband_miss_rate"] == 0.5
    assert loose["unseen"]["voices, as recorded"] == 0.5 and strict["unseen"]["voices, as recorded"] == 0.0
    # wideband input keeps the model's own threshold at every step of the sweep
    assert loose["unseen"]["voices, phone"] == strict["unseen"]["voices, phone"] == 0.5
    assert loose["wideband_threshold"] == pytest.approx(wideband, abs=1e-4)
    table = detection_benchmark.to_markdown({"threshold_sweep": rows})
    assert "| 0.970 | 0.0 % | 50.0 % | 0.0 % | 50.0 % |" in table
