"""The Detect tab's threshold slider shows the dev operating point as it moves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[2] / "demo"


def demo_module(name: str) -> ModuleType:
    """``demo/<name>.py`` loaded as a module (the demo is not a package)."""
    spec = importlib.util.spec_from_file_location(f"voicefake_demo_{name}", DEMO / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _app() -> ModuleType:
    return demo_module("app")


def test_slider_text_shows_false_alarm_and_miss_rates() -> None:
    app = _app()
    low, high = app.operating_point(0.5), app.operating_point(0.95)
    for text in (low, high):
        assert "false alarms" in text and "missed fakes" in text and "dev recordings" in text
    percent = lambda text: float(text.split("false alarms on dev real speech **")[1].split("%")[0])  # noqa: E731
    assert percent(low) > percent(high)
    # a model whose call thresholds were checked on re-recorded dev calls (0.4.0 on) says how many it flags
    from voicefake import api

    if "chain_reals" in api.load("detection").checkpoint.metadata.get("dev", {}):
        rerecorded = lambda text: float(text.split("phone lines (a stand-in")[1].split("**")[1].split("%")[0])  # noqa: E731
        assert rerecorded(low) > rerecorded(high) and 0.0 <= rerecorded(high) <= 100.0
        own = api.load("detection").checkpoint.metadata["calibration"]["narrowband_threshold"]
        assert api.detection_operating_point(own, condition="narrowband")["far_rerecorded"] <= 0.015  # a 0.01 grid
        assert "far_rerecorded" not in api.detection_operating_point(own)


def test_model_thresholds_text_names_both_bandwidths() -> None:
    from voicefake import api

    text = _app().model_thresholds()
    if api.load("detection").checkpoint.metadata["calibration"].get("narrowband_threshold") is None:
        assert "threshold" in text
    else:
        assert "narrowband calls" in text and "wideband audio" in text and "false alarms" in text


def test_verdict_names_the_threshold_that_decided() -> None:
    views = _app().views
    report = {"label": "real", "p_fake": 0.5, "threshold": 0.921, "duration": 3.0,
              "model": {"name": "detector-16k", "version": "0.3.1"},
              "evidence": {"far_target": 0.01, "bandwidth": {"condition": "narrowband", "high_band_db": -80.0,
                                                             "narrowband_below_db": -30.0}}}
    assert "1.0% false alarms on narrowband dev real speech" in views.verdict_markdown("call.wav", report, {})
    report["evidence"]["threshold_set_by"] = "user"
    assert "threshold 0.921, set by you" in views.verdict_markdown("call.wav", report, {})
    old = {**report, "evidence": {"far_target": 0.01}}  # a report from a single-threshold model
    assert "false alarms on dev real speech" in views.verdict_markdown("call.wav", old, {})


def test_a_stereo_call_and_a_long_call_on_the_page(tmp_path) -> None:
    """The page scores a stereo upload's legs apart and says which decided; a long call's
    evidence shows the 30 s its saliency analysed, on the call's own time axis."""
    import numpy as np
    import soundfile as sf

    app = _app()
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "pbx.wav", (0.1 * rng.standard_normal((32000, 2))).astype(np.float32), 16000)
    item = app.analyze_one(str(tmp_path / "pbx.wav"), None, None)
    assert [c["evidence"]["channel"] for c in item["report"]["channels"]] == [0, 1]
    assert "2 channels scored apart" in app.detail(item)[0] and "right channel" in app.detail(item)[0]
    assert "s of speech: on unknown voices" in app.detail(item)[0]  # 2 s: the short-recording caution
    enrolled = app.api.embed_speaker([str(tmp_path / "pbx.wav")])
    checked = app.analyze_one(str(tmp_path / "pbx.wav"), None, enrolled)
    assert [c["channel"] for c in checked["speaker"]["channels"]] == [0, 1]
    assert isinstance(checked["speaker"]["matching_windows"], list)
    assert "3 s window" in app.detail(checked)[0] and "channel (left channel:" in app.detail(checked)[0]
    frames = app.api.load_waveform(str(tmp_path / "pbx.wav"), mono=False)
    top = app.views.timeline_figure(frames, item["report"], 0.5).axes[0]
    assert [text.get_text() for text in top.get_legend().get_texts()] == ["left", "right"]
    long = np.zeros(120 * 16000, np.float32)
    start, part = app._evidence_view(long, {"evidence": {"saliency": {"spans": [{"start": 100.0, "end": 100.5}]}}})
    assert start == 85.0 and part.size == 30 * 16000
    start, part = app._evidence_view(long, {"evidence": {"saliency": {"spans": [{"start": 5.0, "end": 5.5}]}}})
    assert start == 0.0 and part.size == 30 * 16000
    spec = app.api.display_spectrogram(part)
    figure = app.views.evidence_figure(spec, {"duration": 120.0, "evidence": {}}, start)
    assert figure.axes[0].get_xlim() == (0.0, 30.0)  # the excerpt, not stretched over the whole call
