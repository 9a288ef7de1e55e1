"""Report fields, timeline coverage, calibration fitting, scoring against ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from voicefake.audio.io import load_audio
from voicefake.detection.benford import benford_stats
from voicefake.detection.inference import (
    Calibration,
    DetectionReport,
    detect_waveform,
    fit_logistic,
    prepare,
    score_against_truth,
    threshold_for_far,
    window_bounds,
)
from voicefake.detection.model import Detector, DetectorConfig


def _report(seconds: float) -> DetectionReport:
    model = Detector(DetectorConfig.tiny()).eval()
    wav = prepare(np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1, 16000)
    return detect_waveform(model, wav, Calibration(), {"name": "tiny", "version": "0"})


@pytest.mark.parametrize("seconds", [0.3, 1.5, 4.2])
def test_report_fields_and_timeline(seconds: float) -> None:
    report = _report(seconds)
    record = report.to_dict()
    assert set(record) == {"p_fake", "label", "threshold", "segments", "evidence", "model", "duration"}
    assert 0.0 <= report.p_fake <= 1.0 and report.label in ("fake", "real")
    assert report.label == ("fake" if report.p_fake >= report.threshold else "real")
    segments = report.segments
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(seconds, abs=1e-3)
    for a, b in zip(segments, segments[1:], strict=False):
        assert b["start"] <= a["end"]  # no gaps
    assert all(0.0 <= s["p_fake"] <= 1.0 for s in segments)
    evidence = record["evidence"]
    assert {"benford", "saliency", "flagged_spans", "network_logit"} <= set(evidence)
    assert "reference_range_real" in evidence["benford"]
    assert abs(sum(b["share"] for b in evidence["saliency"]["bands"]) - 1) < 0.05


def test_window_bounds_cover_the_file() -> None:
    bounds = window_bounds(10.2, 1.5, 0.5)
    assert bounds[0] == (0.0, 1.5) and bounds[-1][1] == pytest.approx(10.2)
    assert window_bounds(1.0, 1.5, 0.5) == [(0.0, 1.0)]


def test_fit_logistic_recovers_separable_direction() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (200, 1)), rng.normal(2, 1, (200, 1))])
    y = np.concatenate([np.zeros(200), np.ones(200)])
    weights, bias = fit_logistic(x, y)
    assert weights[0] > 1 and abs(bias) < 0.5


def test_threshold_for_far() -> None:
    probs = np.linspace(0.0, 0.99, 100)
    threshold = threshold_for_far(probs, 0.01)
    assert np.mean(probs >= threshold) <= 0.01
    assert threshold_for_far(np.zeros(10), 0.01) == 0.5  # never below 0.5


def test_calibration_metadata_round_trip() -> None:
    cal = Calibration(weights=(2.0, 0.1, -0.2), bias=0.3, threshold=0.7)
    assert Calibration.from_metadata({"calibration": cal.to_dict()}) == cal
    assert Calibration.from_metadata({}) == Calibration()
    with pytest.raises(ValueError, match="unknown"):
        Calibration.from_metadata({"calibration": {"bogus": 1}})


def test_score_against_truth() -> None:
    report = _report(6.0)
    truth = [{"start": 0.0, "end": 3.0, "speaker": "a", "label": "real"},
             {"start": 3.0, "end": 6.0, "speaker": "a", "label": "fake"}]
    figures = score_against_truth(report, truth)
    assert figures["fake_seconds"] == pytest.approx(3.0, abs=0.11)
    assert 0 <= figures["fake_recall"] <= 1 and figures["file_truth"] == "fake"
    with pytest.raises(ValueError):
        score_against_truth(report, [{"start": 2, "end": 1, "label": "real"}])


def test_prepare_makes_a_resampled_call_look_like_its_stored_copy(tmp_path) -> None:
    """An 8 kHz call read at 16 kHz and the same call stored as a 16-bit 16 kHz file (the form of
    every training and calibration recording) give the same Benford statistics after ``prepare``:
    without the 16-bit grid, resampling turns the call's digital silence into tiny non-zero
    values whose digits the stored copy never has."""
    rng = np.random.default_rng(0)
    t = np.arange(4 * 8000) / 8000
    voiced = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float64)  # speech bursts and pauses
    speech = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 20)) * 0.2 * voiced
    call = speech + 3e-5 * rng.standard_normal(t.size)  # a 1-LSB noise floor ...
    call[:2400] = call[-2400:] = 0.0                       # ... and digital silence around the prompt
    sf.write(tmp_path / "call8k.wav", call, 8000, subtype="PCM_16")
    resampled = load_audio(tmp_path / "call8k.wav", 16000)
    sf.write(tmp_path / "stored16k.flac", resampled, 16000, subtype="PCM_16")
    stored = load_audio(tmp_path / "stored16k.flac", 16000)
    a, b = benford_stats(prepare(resampled, 16000)), benford_stats(prepare(stored, 16000))
    assert abs(a.pause_divergence - b.pause_divergence) < 0.005
    assert abs(a.divergence - b.divergence) < 0.005
    grid = prepare(resampled, 16000) * 32767
    assert np.allclose(grid, np.round(grid), atol=1e-3)
