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
    ThresholdCheck,
    detect_waveform,
    fit_calibration,
    fit_logistic,
    high_band_db,
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


def _noise(seconds: float = 3.0, cutoff_hz: float | None = None) -> np.ndarray:
    """White noise at 16 kHz, optionally low-passed like a phone line."""
    wav = np.random.default_rng(1).standard_normal(int(seconds * 16000))
    if cutoff_hz is not None:
        spec = np.fft.rfft(wav)
        spec[int(cutoff_hz / 8000 * (spec.size - 1)):] = 0
        wav = np.fft.irfft(spec, n=wav.size)
    return (0.1 * wav / np.abs(wav).max()).astype(np.float32)


def test_high_band_db_separates_calls_from_wideband() -> None:
    wide = high_band_db(_noise(), 16000)
    assert -4.5 < wide < -2.0  # white noise: (8000 - 4200) / 8000 of the energy is above 4.2 kHz
    assert high_band_db(_noise(cutoff_hz=3400.0), 16000) < -60.0
    assert high_band_db(np.zeros(16000, np.float32), 16000) == 0.0  # silence: treated as wideband
    assert high_band_db(np.zeros(10, np.float32), 16000) == 0.0  # shorter than a frame


def test_narrowband_input_gets_its_own_thresholds() -> None:
    cal = Calibration(threshold=0.6, segment_threshold=0.65, narrowband_below_db=-30.0,
                      narrowband_threshold=0.95, narrowband_segment_threshold=0.97)
    assert cal.thresholds(-80.0) == (0.95, 0.97) and cal.thresholds(-10.0) == (0.6, 0.65)
    model = Detector(DetectorConfig.tiny()).eval()
    call = detect_waveform(model, prepare(_noise(cutoff_hz=3400.0), 16000), cal, {"name": "t", "version": "0"},
                           evidence=False)
    wide = detect_waveform(model, prepare(_noise(), 16000), cal, {"name": "t", "version": "0"}, evidence=False)
    assert call.threshold == 0.95 and call.evidence["segment_threshold"] == 0.97
    assert call.evidence["bandwidth"]["condition"] == "narrowband"
    assert wide.threshold == 0.6 and wide.evidence["bandwidth"]["condition"] == "wideband"
    assert call.label == ("fake" if call.p_fake >= 0.95 else "real")
    # a calibration from before 0.4.0 has one pair of thresholds for every input
    old = Calibration(threshold=0.6, segment_threshold=0.65)
    assert old.thresholds(-80.0) == (0.6, 0.65) and not old.is_narrowband(-80.0)
    assert Calibration.from_metadata({"calibration": cal.to_dict()}) == cal


def test_fit_calibration_holds_the_false_alarm_rate_in_each_condition() -> None:
    """Narrowband real recordings score higher (as real calls do): one threshold fitted on the
    mixture lets more than the target through on them; per-condition thresholds do not."""
    rng = np.random.default_rng(0)
    n = 400
    narrow = np.repeat([True, False], n)  # recordings: narrowband first
    labels = np.tile(np.repeat([0, 1], n // 2), 2)
    logits = rng.normal(0.0, 1.0, 2 * n) + np.where(labels == 1, 3.0, 0.0) + np.where(narrow, 1.0, -1.0)
    benford = np.zeros((2 * n, 2))
    stats = np.abs(rng.normal(0.01, 0.001, (n, 2)))
    args = (logits, benford, labels, logits, labels, stats, 0.01)
    one = fit_calibration(*args)
    split = fit_calibration(*args, narrowband=narrow, window_narrowband=narrow, narrowband_below_db=-30.0)
    fused = 1 / (1 + np.exp(-(split.weights[0] * logits + split.bias)))  # Benford inputs are all 0
    real_narrow, real_wide = narrow & (labels == 0), ~narrow & (labels == 0)
    assert np.mean(fused[real_narrow] >= one.threshold) > 0.01  # the mixture's threshold fails on calls
    assert np.mean(fused[real_narrow] >= split.narrowband_threshold) <= 0.01
    assert np.mean(fused[real_wide] >= split.threshold) <= 0.01
    assert split.narrowband_threshold > split.threshold
    assert split.narrowband_segment_threshold is not None
    # too few real recordings on one side: one pair of thresholds, as before
    few = fit_calibration(*args, narrowband=narrow, window_narrowband=narrow, narrowband_below_db=-30.0,
                          min_narrowband_real=n)
    assert few.narrowband_threshold is None and few.threshold == one.threshold


def test_fit_calibration_threshold_check_raises_only_the_band_it_binds() -> None:
    """Check reals that score higher than the dev reals (speech from another recording chain)
    raise the threshold of their band to their own 1 % point, leave the fusion, the scaling and
    the other band alone, and never lower a threshold."""
    rng = np.random.default_rng(1)
    n = 400
    narrow = np.repeat([True, False], n)
    labels = np.tile(np.repeat([0, 1], n // 2), 2)
    logits = rng.normal(0.0, 1.0, 2 * n) + np.where(labels == 1, 3.0, 0.0)
    benford = np.zeros((2 * n, 2))
    stats = np.abs(rng.normal(0.01, 0.001, (n, 2)))
    args = (logits, benford, labels, logits, labels, stats, 0.01)
    split = {"narrowband": narrow, "window_narrowband": narrow, "narrowband_below_db": -30.0}
    base = fit_calibration(*args, **split)
    m = 300
    hot = rng.normal(1.5, 1.0, m)  # narrowband check reals, scored higher than the dev reals
    check = ThresholdCheck(logits=hot, benford=np.zeros((m, 2)), narrowband=np.ones(m, bool),
                           window_logits=hot, window_narrowband=np.ones(m, bool))
    held = fit_calibration(*args, **split, check=check)
    assert (held.weights, held.bias, held.segment_scale) == (base.weights, base.bias, base.segment_scale)
    assert held.narrowband_threshold > base.narrowband_threshold
    fused = 1 / (1 + np.exp(-(held.weights[0] * hot + held.bias)))
    assert np.mean(fused >= held.narrowband_threshold) <= 0.01 < np.mean(fused >= base.narrowband_threshold)
    assert held.narrowband_segment_threshold > base.narrowband_segment_threshold
    assert (held.threshold, held.segment_threshold) == (base.threshold, base.segment_threshold)
    cold = ThresholdCheck(logits=hot - 5.0, benford=np.zeros((m, 2)), narrowband=np.ones(m, bool),
                          window_logits=hot - 5.0, window_narrowband=np.ones(m, bool))
    assert fit_calibration(*args, **split, check=cold) == base  # a check never lowers a threshold
    few = ThresholdCheck(logits=hot[:50], benford=np.zeros((50, 2)), narrowband=np.ones(50, bool),
                         window_logits=hot[:50], window_narrowband=np.ones(50, bool))
    assert fit_calibration(*args, **split, check=few) == base  # too few to set a 1 % point


def test_saliency_counts_the_artefact_branch() -> None:
    """With an artefact branch, the band shares include its log-mel relevance and still sum to 1;
    a branch that only answers to one band's level puts its share in that band's range."""
    import torch

    from voicefake.detection.inference import saliency

    base = Detector(DetectorConfig.tiny()).eval()
    config = DetectorConfig(**{**DetectorConfig.tiny().__dict__, "artefact_channels": 8,
                               "artefact_dilations": (1,), "artefact_weight": 100.0})
    model = Detector(config).eval()
    model.load_state_dict(base.state_dict(), strict=False)
    wav = torch.from_numpy(prepare(np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1, 16000))
    plain = saliency(base, wav, 16000)
    with torch.no_grad():  # the branch's frames echo the top mel band (about 7.6-8 kHz) only
        assert model.artefact is not None
        for p in model.artefact.parameters():
            p.zero_()
        model.artefact.stem.weight[0, -1, 2] = 1.0
        model.artefact.out.weight[0, 0, 0] = 1.0
        model.artefact.head.weight[0, 0] = 1.0
        model.artefact_probe.weight.zero_()
        model.artefact_probe.weight[0, 0] = 1.0
    both = saliency(model, wav, 16000)
    assert abs(sum(b["share"] for b in both["bands"]) - 1) < 0.05
    top = lambda s: next(b["share"] for b in s["bands"] if b["low_hz"] == 6000)  # noqa: E731
    assert top(both) > top(plain) + 0.2


def test_long_inputs_are_scored_in_pieces_that_join_exactly() -> None:
    """Over ``chunk_seconds`` the frame logits come from pieces seen with 2 s of context each:
    as many frames as one pass, each piece's frames those of a pass over the piece and its
    context, the utterance logit their mean. Up to ``chunk_seconds`` it is one pass."""
    import torch

    from voicefake.detection.inference import CHUNK_OVERLAP_SECONDS, network_scores

    model = Detector(DetectorConfig.tiny()).eval()
    wav = torch.from_numpy(prepare(np.random.default_rng(3).standard_normal(50 * 16000).astype(np.float32) * 0.1, 16000))
    whole_logit, whole = network_scores(model, wav)
    logit, pieces = network_scores(model, wav, chunk_seconds=20.0)
    assert pieces.shape == whole.shape and logit == pytest.approx(pieces.mean())
    per_piece = int(20.0 * 16000) // model.config.frame_hop
    context = int(CHUNK_OVERLAP_SECONDS * 16000)
    first = network_scores(model, wav[: 20 * 16000 + context])[1]
    np.testing.assert_allclose(pieces[:per_piece], first[:per_piece], rtol=1e-5, atol=1e-5)
    second = network_scores(model, wav[20 * 16000 - context: 40 * 16000 + context])[1]
    skip = context // model.config.frame_hop
    np.testing.assert_allclose(pieces[per_piece: 2 * per_piece], second[skip: skip + per_piece], rtol=1e-5, atol=1e-5)
    short_logit, short = network_scores(model, wav, chunk_seconds=60.0)
    assert short_logit == whole_logit and np.array_equal(short, whole)


def test_short_recordings_carry_a_caution() -> None:
    """Under 8 s of speech the evidence says how much speech there was and why to be careful
    (unknown voices' short recordings false-alarm more); from 8 s on there is no caution."""
    short, long = _report(4.2), _report(9.0)
    assert short.evidence["speech_seconds"] == pytest.approx(4.2, abs=0.1)
    assert "only 4.2 s of speech" in short.evidence["caution"] and "1 %" in short.evidence["caution"]
    assert long.evidence["speech_seconds"] >= 8.0 and "caution" not in long.evidence
