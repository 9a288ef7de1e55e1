"""API detect() and the CLI (detect --json, a corrupt file in the batch, detect-eval) on a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voicefake import api
from voicefake.audio.io import write_audio
from voicefake.checkpoint import Checkpoint
from voicefake.cli import main
from voicefake.detection.inference import Calibration
from voicefake.detection.model import Detector, DetectorConfig


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    write_audio(folder / "a.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000)
    write_audio(folder / "b.flac", (0.1 * rng.standard_normal(40000)).astype(np.float32), 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    return folder


def test_api_detect(tiny_checkpoint, clips) -> None:
    report = api.detect(clips / "a.wav", tiny_checkpoint)
    assert 0 <= report.p_fake <= 1 and report.threshold == 0.6
    assert report.model == {"name": "detector-tiny", "version": "0.0.1"}
    assert report.segments[-1]["end"] == pytest.approx(1.0, abs=1e-3)  # 8 kHz file, 1 s
    assert api.detect.__doc__ and "Example" in api.detect.__doc__


def test_cli_detect_json_batch_with_corrupt_file(tiny_checkpoint, clips, capsys) -> None:
    status = main(["detect", str(clips), "--json", "--checkpoint", tiny_checkpoint, "--no-evidence"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert [line["file"].rsplit("/", 1)[-1] for line in lines] == ["a.wav", "b.flac", "corrupt.wav"]
    good, bad = lines[0], lines[2]
    assert {"file", "sha256", "p_fake", "label", "threshold", "segments", "evidence", "model"} <= set(good)
    assert good["label"] in ("fake", "real") and len(good["sha256"]) == 64
    assert set(bad) == {"file", "error"}


def test_cli_detect_eval(tiny_checkpoint, clips, tmp_path, capsys) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"segments": [
        {"start": 0.0, "end": 1.0, "speaker": "x", "label": "real"},
        {"start": 1.0, "end": 2.5, "speaker": "x", "label": "fake"}]}))
    status = main(["detect-eval", str(clips / "b.flac"), str(truth), "--json", "--checkpoint", tiny_checkpoint])
    record = json.loads(capsys.readouterr().out)
    assert status == 0 and record["fake_seconds"] == pytest.approx(1.5, abs=0.11)


def test_cli_missing_checkpoint_is_one_error_line(clips, capsys) -> None:
    assert main(["detect", str(clips / "a.wav"), "--checkpoint", "/nonexistent/ckpt"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_detect_applies_the_threshold_for_each_file_bandwidth(tmp_path, capsys) -> None:
    """An 8 kHz call gets the narrowband threshold, a 16 kHz white-noise clip the wideband one;
    the JSON line and the text line both say which."""
    path = tmp_path / "split"
    cal = Calibration(threshold=0.6, segment_threshold=0.62, narrowband_below_db=-30.0,
                      narrowband_threshold=0.9, narrowband_segment_threshold=0.92)
    meta = {"name": "detector-tiny", "version": "0.0.2", "calibration": cal.to_dict()}
    Checkpoint.from_module(Detector(DetectorConfig.tiny()), "detection", metadata=meta).save(path)
    rng = np.random.default_rng(0)
    write_audio(tmp_path / "call.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 8000)
    write_audio(tmp_path / "wide.wav", (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
    assert main(["detect", str(tmp_path / "call.wav"), str(tmp_path / "wide.wav"), "--json",
                 "--checkpoint", str(path), "--no-evidence"]) == 0
    call, wide = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert call["threshold"] == 0.9 and call["evidence"]["bandwidth"]["condition"] == "narrowband"
    assert call["evidence"]["segment_threshold"] == 0.92
    assert wide["threshold"] == 0.6 and wide["evidence"]["bandwidth"]["condition"] == "wideband"
    assert main(["detect", str(tmp_path / "call.wav"), "--checkpoint", str(path), "--no-evidence"]) == 0
    assert "threshold 0.900 for narrowband audio" in capsys.readouterr().out


def test_a_users_threshold_replaces_the_models_for_every_file(tiny_checkpoint, clips, capsys) -> None:
    """--threshold / detect(threshold=) decide at the user's p_fake and say so; a value that is
    not a probability is one usage error before any file is read."""
    model = api.detect(clips / "a.wav", tiny_checkpoint)
    for cut in (0.0, 1.0, model.p_fake):
        mine = api.detect(clips / "a.wav", tiny_checkpoint, threshold=cut)
        assert mine.threshold == cut and mine.label == ("fake" if model.p_fake >= cut else "real")
        assert mine.evidence["threshold_set_by"] == "user" and mine.evidence["model_threshold"] == 0.6
        assert mine.p_fake == model.p_fake and mine.segments == model.segments
    with pytest.raises(ValueError, match="not a probability"):
        api.detect(clips / "a.wav", tiny_checkpoint, threshold=1.5)
    with pytest.raises(ValueError, match="not a probability"):
        model.at_threshold(-0.1)
    with pytest.raises(ValueError, match="not a probability"):
        model.at_threshold(float("nan"))
    assert main(["detect", str(clips / "a.wav"), "--json", "--checkpoint", tiny_checkpoint, "--no-evidence",
                 "--threshold", "0"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["threshold"] == 0.0 and line["label"] == "fake" and line["evidence"]["threshold_set_by"] == "user"
    assert main(["detect", str(clips / "a.wav"), "--checkpoint", tiny_checkpoint, "--threshold", "0"]) == 0
    assert "threshold 0.000, set by you" in capsys.readouterr().out
    assert main(["detect", str(clips / "a.wav"), "--checkpoint", tiny_checkpoint, "--threshold", "97"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threshold: threshold 97.0 is not a probability" in err[0]


def test_max_duration_refuses_longer_files_one_line_each(tiny_checkpoint, clips, capsys) -> None:
    from voicefake.audio.io import AudioError

    with pytest.raises(AudioError, match="over the limit of 1 s"):
        api.detect(clips / "b.flac", tiny_checkpoint, max_duration=1.0)  # 2.5 s
    assert main(["detect", str(clips / "a.wav"), str(clips / "b.flac"), "--json", "--checkpoint", tiny_checkpoint,
                 "--no-evidence", "--max-duration", "1.5"]) == 1
    short, long = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "p_fake" in short and "over the limit of 1.5 s" in long["error"]
    assert main(["detect", str(clips / "a.wav"), "--checkpoint", tiny_checkpoint, "--max-duration", "0"]) == 2
