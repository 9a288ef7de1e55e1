"""Tests for the ``voicefake`` command (shared behaviour, and ``vocode``), run in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicefake.audio.io import write_audio
from voicefake.checkpoint import Checkpoint
from voicefake.cli import main

REPO = Path(__file__).resolve().parents[1]


def _tone(path: Path, seconds: float = 0.5, sample_rate: int = 16000, freq: float = 220.0) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wav = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return write_audio(path, wav, sample_rate)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.strip().splitlines()]


# ----------------------------------------------------------------------------- parser


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "vocode" in out and "export" in out and "--json" in out


def test_subcommand_help_names_common_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["vocode", "--help"])
    out = capsys.readouterr().out
    for flag in ("--json", "--checkpoint", "--device", "--force", "--output"):
        assert flag in out


@pytest.mark.parametrize(
    "argv",
    [["vocode"], ["no-such-command"], ["vocode", "a.wav", "--device", "tpu"], ["export", "run"],
     ["--bogus"]],
)
def test_usage_error_is_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voicefake"), captured.err


def test_no_command_prints_help_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "vocode" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from voicefake import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


# ----------------------------------------------------------------------------- vocode


@pytest.fixture(scope="module", autouse=True)
def _bundled_vocoder_loaded() -> None:
    """Loads (and caches) the bundled vocoder once, so no single test pays for it."""
    from voicefake import api

    api.load("vocoder", "cpu", kind="vocoder")


def test_vocode_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _tone(tmp_path / "in.wav", seconds=0.5)
    assert main(["vocode", str(source), "--json"]) == 0
    captured = capsys.readouterr()
    records = _json_lines(captured.out)
    assert len(records) == 1
    record = records[0]
    assert record["file"] == str(source)
    assert record["output"] == str(tmp_path / "in.vocoded.wav")
    assert record["duration"] == pytest.approx(0.5, abs=0.011)
    assert record["model"].startswith("vocoder") and "@" in record["model"]
    info = sf.info(record["output"])
    assert info.samplerate == 16000 and info.channels == 1
    assert abs(info.frames - 8000) <= 160
    with sf.SoundFile(record["output"]) as f:
        assert "SYNTHETIC" in f.comment and record["model"] in f.comment
        assert f.software.startswith("voicefake")


def test_vocode_phase_iterations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bundled default refines the phase; --phase-iterations 0 turns it off; -1 is a usage error."""
    source = _tone(tmp_path / "in.wav", seconds=0.5)
    assert main(["vocode", str(source), "-o", str(tmp_path / "default.wav"), "--json"]) == 0
    bundled_default = Checkpoint.load("vocoder").model["phase_iterations"]
    assert bundled_default >= 1
    assert _json_lines(capsys.readouterr().out)[0]["phase_iterations"] == bundled_default
    assert main(["vocode", str(source), "-o", str(tmp_path / "raw.wav"), "--json", "--phase-iterations", "0"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["phase_iterations"] == 0
    refined, raw = sf.read(tmp_path / "default.wav")[0], sf.read(tmp_path / "raw.wav")[0]
    assert refined.shape == raw.shape and np.abs(refined - raw).max() > 1e-3
    assert main(["vocode", str(source), "-o", str(tmp_path / "bad.wav"), "--phase-iterations", "-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "--phase-iterations must be >= 0" in captured.err
    assert not (tmp_path / "bad.wav").exists()


def test_vocode_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--precision picks the network's arithmetic and the JSON line says which ran."""
    from voicefake.nn.precision import compute_dtype, dtype_name

    source = _tone(tmp_path / "in.wav", seconds=0.5)
    assert main(["vocode", str(source), "-o", str(tmp_path / "auto.wav"), "--json"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["precision"] == dtype_name(compute_dtype("auto"))
    for choice in ("float32", "bfloat16"):
        assert main(["vocode", str(source), "-o", str(tmp_path / f"{choice}.wav"), "--json",
                     "--precision", choice]) == 0
        assert _json_lines(capsys.readouterr().out)[0]["precision"] == choice
    full, half = sf.read(tmp_path / "float32.wav")[0], sf.read(tmp_path / "bfloat16.wav")[0]
    assert full.shape == half.shape and 0 < np.abs(full - half).max()
    with pytest.raises(SystemExit) as info:
        main(["vocode", str(source), "-o", str(tmp_path / "bad.wav"), "--precision", "fp8"])
    assert info.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err
    assert not (tmp_path / "bad.wav").exists()


def test_vocode_refuses_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _tone(tmp_path / "in.wav", seconds=0.25)
    target = tmp_path / "out.wav"
    target.write_bytes(b"keep me")
    assert main(["vocode", str(source), "-o", str(target), "--json"]) == 1
    captured = capsys.readouterr()
    records = _json_lines(captured.out)
    assert len(records) == 1 and records[0]["file"] == str(source)
    assert "already exists" in records[0]["error"] and "--force" in records[0]["error"]
    assert len(captured.err.strip().splitlines()) == 1
    assert target.read_bytes() == b"keep me"
    assert main(["vocode", str(source), "-o", str(target), "--json", "--force"]) == 0
    assert "error" not in _json_lines(capsys.readouterr().out)[0]
    assert sf.info(str(target)).samplerate == 16000


def test_vocode_batch_errors_in_input_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _tone(tmp_path / "good.wav", seconds=0.25)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    missing = tmp_path / "missing.wav"
    assert main(["vocode", str(good), str(corrupt), str(missing), "--json"]) == 1
    captured = capsys.readouterr()
    records = _json_lines(captured.out)
    assert [r["file"] for r in records] == [str(good), str(corrupt), str(missing)]
    assert "error" not in records[0] and Path(records[0]["output"]).is_file()
    for record in records[1:]:
        assert set(record) == {"file", "error"} and "\n" not in record["error"] and record["error"]
    assert "no such file" in records[2]["error"]
    assert not (tmp_path / "corrupt.vocoded.wav").exists()
    assert len(captured.err.strip().splitlines()) == 2  # one stderr line per failed file


def test_vocode_folder_recursive_sorted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "calls"
    for name in ("b.wav", "a.wav", "sub/c.flac", ".hidden/d.wav"):
        _tone(folder / name, seconds=0.12)
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert main(["vocode", str(folder), "-o", str(out), "--json"]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert [r["file"] for r in records] == [str(folder / n) for n in ("a.wav", "b.wav", "sub/c.flac")]
    assert sorted(p.name for p in out.iterdir()) == ["a.vocoded.wav", "b.vocoded.wav", "c.vocoded.wav"]


def test_vocode_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _tone(tmp_path / "in.wav", seconds=0.12)
    assert main(["vocode", str(source)]) == 0
    out = capsys.readouterr().out
    assert "in.vocoded.wav" in out and not out.lstrip().startswith("{")


def test_vocode_bad_checkpoint_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _tone(tmp_path / "in.wav", seconds=0.12)
    assert main(["vocode", str(source), "--checkpoint", str(tmp_path / "nope")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "not a checkpoint directory" in lines[0] and "Traceback" not in captured.err


@pytest.mark.slow  # a fresh interpreter imports torch: ~5-15 s on a busy 2-core machine
def test_python_m_voicefake_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "voicefake", "--version"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("voicefake ")
