"""The Detect tab's threshold slider shows the dev operating point as it moves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "demo" / "app.py"


def _app():
    spec = importlib.util.spec_from_file_location("voicefake_demo_app", APP)
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    sys.modules["voicefake_demo_app"] = app
    spec.loader.exec_module(app)
    return app


def test_slider_text_shows_false_alarm_and_miss_rates() -> None:
    app = _app()
    low, high = app.operating_point(0.5), app.operating_point(0.95)
    for text in (low, high):
        assert "false alarms" in text and "missed fakes" in text and "dev recordings" in text
    percent = lambda text: float(text.split("false alarms on dev real speech **")[1].split("%")[0])  # noqa: E731
    assert percent(low) > percent(high)


def test_model_thresholds_text_names_both_bandwidths() -> None:
    from voicefake import api

    text = _app().model_thresholds()
    if api.load("detection").checkpoint.metadata["calibration"].get("narrowband_threshold") is None:
        assert "threshold" in text
    else:
        assert "narrowband calls" in text and "wideband audio" in text and "false alarms" in text
