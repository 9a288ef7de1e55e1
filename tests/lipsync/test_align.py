"""WSOLA keeps pitch and length; alignment fixes an offset; mux keeps fps and duration; CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.lipsync.faces import FPS, RATE
from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.lipsync.align import clamp_map, time_stretch, wsola


def _dominant_hz(wav: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spectrum) * RATE / len(wav))


@pytest.mark.parametrize("stretch", [0.8, 1.0, 1.25])
def test_wsola_keeps_pitch_and_hits_length(stretch: float) -> None:
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = time_stretch(tone, RATE, stretch)
    assert len(out) == round(RATE * stretch)
    middle = out[len(out) // 4: 3 * len(out) // 4]
    assert abs(_dominant_hz(middle) - 220) <= 4
    # no amplitude dip at the seams: the steady tone stays steady
    assert np.std(np.abs(middle[: len(middle) // 480 * 480]).reshape(-1, 480).max(1)) < 0.02


def test_wsola_pads_outside_input_with_silence() -> None:
    tone = np.ones(RATE, np.float32) * 0.1
    out = wsola(tone, RATE, np.array([0.0, RATE]), np.array([-RATE / 2, RATE / 2]), RATE)
    assert np.abs(out[: RATE // 2 - 400]).max() < 1e-6
    assert np.abs(out[RATE // 2 + 400: RATE - 400] - 0.1).max() < 1e-3


def test_clamp_map_limits_rate_and_keeps_mean_lag() -> None:
    frames = np.arange(50, dtype=float)
    jumpy = frames + 5 + np.r_[np.zeros(25), np.full(25, 6.0)]
    clamped = clamp_map(jumpy, 3, 0.8, 1.25)
    assert np.all(np.diff(clamped) <= 1.25 + 1e-9) and np.all(np.diff(clamped) >= 0.8 - 1e-9)
    assert np.mean(clamped - frames) == pytest.approx(np.mean(jumpy - frames))


def test_align_fixes_offset_and_mux_keeps_fps_duration(talking_face: tuple[Path, np.ndarray],
                                                      tmp_path: Path) -> None:
    import av

    path, wav = talking_face
    late = np.r_[np.zeros(6 * RATE // FPS, np.float32), wav][: len(wav)]
    out = tmp_path / "dubbed.mp4"
    result = api.align(path, late, output=out, warp=True)
    assert result.before.offset_frames in (5, 6, 7)
    assert abs(result.after.offset_frames) <= 1
    assert 0.8 - 1e-6 <= result.stretch_min <= result.stretch_max <= 1.25 + 1e-6
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        assert float(video.average_rate) == FPS
        assert "SYNTHETIC" in container.metadata.get("comment", "")
    assert frames == 100
    audio = load_audio(out, RATE)
    assert abs(len(audio) / RATE - 4.0) < 0.05


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from voicefake.cli import main

    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_sync_and_lipsync_json(talking_face: tuple[Path, np.ndarray], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import soundfile

    path, wav = talking_face
    speech = tmp_path / "late.wav"
    soundfile.write(speech, np.r_[np.zeros(4 * RATE // FPS, np.float32), wav][: len(wav)], RATE)
    status, out_text, err_text = _cli(capsys, "sync", str(path), "--audio", str(speech), "--json")
    assert status == 0, err_text
    record = json.loads(out_text)
    assert record["file"] == str(path) and abs(record["offset_frames"] - 4) <= 1
    assert {"offset_ms", "confidence", "in_sync", "model"} <= set(record)
    out = tmp_path / "out.mp4"
    status, out_text, err_text = _cli(capsys, "lipsync", str(path), "--audio", str(speech), "-o", str(out), "--json")
    assert status == 0, err_text
    record = json.loads(out_text)
    assert abs(record["after"]["offset_frames"]) <= 1 and out.is_file()
    assert len(record["stretch_range"]) == 2
    status, out_text, err_text = _cli(capsys, "lipsync", str(path), "--audio", str(speech), "-o", str(out))
    assert status == 1 and "already exists" in err_text
