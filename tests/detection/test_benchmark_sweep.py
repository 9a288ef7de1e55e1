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


def test_unseen_voices_joined_into_longer_recordings(tmp_path) -> None:
    """--by-length N joins each new voice's recordings N at a time (0.3 s apart), drops a short
    leftover group and ignores voices that are not new; the table shows the counts."""
    import numpy as np

    from voicefake.audio.io import write_audio

    header = "path,speaker,label,system,transcript,media,sample_rate,channels,duration_s,folder,license,notes\n"
    lines = []
    rng = np.random.default_rng(0)
    for index, (voice, new) in enumerate([("a", 1)] * 5 + [("b", 0)] * 2):
        write_audio(tmp_path / f"{index}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        lines.append(f"{index}.wav,{voice},real,human,,audio,16000,1,1.0,x,x,new_voice={new}\n")
    (tmp_path / "manifest.csv").write_text(header + "".join(lines))
    out = detection_benchmark.unseen_by_length(tmp_path, [1, 2])
    assert out["1"]["recordings"] == 5 and out["1"]["mean_seconds"] == 1.0
    assert out["2"]["recordings"] == 2 and out["2"]["mean_seconds"] == 2.3
    assert {"false_alarm_rate_as_recorded", "false_alarm_rate_phone"} <= set(out["2"])
    table = detection_benchmark.to_markdown({"false_alarms_unseen_by_length": {"voices": out}})
    assert "| 2 | 2 | 2.3 s |" in table
