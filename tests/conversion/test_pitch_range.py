"""Pitch-range matching: the source's intonation widened or narrowed towards the reference's
(voicefake.conversion.inference.match_pitch_range), its defaults (api.pitch_range_for) and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake import api
from voicefake.api import cloning as api_cloning
from voicefake.audio.io import write_audio
from voicefake.cli import main
from voicefake.conversion.inference import (
    MIN_VOICED_FRAMES,
    PITCH_RATIO_LIMITS,
    match_pitch_range,
    pitch_spread,
)

SR = 16000


def contour(frames: int, voiced: int, depth: float, level: float = math.log(120.0)) -> torch.Tensor:
    """(frames,) log-F0: ``voiced`` frames gliding over +-``depth`` around ``level``, then unvoiced (0)."""
    out = torch.zeros(frames)
    out[:voiced] = level + depth * torch.sin(torch.linspace(0, 6 * math.pi, voiced))
    return out


def relative(log_f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from voicefake.conversion.decoder_training import relative_pitch

    return relative_pitch(log_f0[None])


def test_the_spread_is_the_voiced_frames_10_to_90_percent_range() -> None:
    flat = contour(400, 300, 0.0)
    assert pitch_spread(flat) == pytest.approx(0.0, abs=1e-6)
    glide = torch.zeros(400)
    glide[:300] = math.log(100.0) + torch.linspace(0.0, 1.0, 300)
    assert pitch_spread(glide) == pytest.approx(0.8, abs=0.01)  # 10 % -> 90 % of a straight glide
    assert pitch_spread(contour(400, MIN_VOICED_FRAMES - 1, 0.3)) == 0.0  # too few voiced frames to read


def test_match_pitch_range_scales_the_contour_towards_the_reference() -> None:
    rel, voiced = relative(contour(500, 300, 0.05))
    reference = contour(800, 600, 0.1, level=math.log(200.0))  # twice the source's range, another level
    full = match_pitch_range(rel, voiced, reference, 1.0)
    assert pitch_spread(torch.where(voiced > 0, full + 1.0, full)) == pytest.approx(
        pitch_spread(reference), rel=0.02)  # the reference's range
    half = match_pitch_range(rel, voiced, reference, 0.5)
    voiced_frames = voiced[0] > 0
    ratio = (half[0, voiced_frames] / rel[0, voiced_frames])[rel[0, voiced_frames].abs() > 1e-3]
    assert torch.allclose(ratio, torch.full_like(ratio, 2.0 ** 0.5), rtol=0.03)  # halfway in log
    assert torch.equal(match_pitch_range(rel, voiced, reference, 0.0), rel)  # 0 = the source's own
    assert torch.equal(full[0, ~voiced_frames], rel[0, ~voiced_frames])  # unvoiced frames stay 0


def test_the_ratio_is_clipped_and_an_unreadable_contour_is_left_alone() -> None:
    rel, voiced = relative(contour(500, 300, 0.01))
    wide = contour(800, 600, 0.5)  # 50 x the source's range: an octave error must not multiply it by 50
    scaled = match_pitch_range(rel, voiced, wide, 1.0)
    assert scaled.abs().max() / rel.abs().max() == pytest.approx(PITCH_RATIO_LIMITS[1], rel=1e-4)
    narrow = contour(800, 600, 0.0005)
    assert match_pitch_range(rel, voiced, narrow, 1.0).abs().max() / rel.abs().max() == pytest.approx(
        PITCH_RATIO_LIMITS[0], rel=1e-4)
    few, few_voiced = relative(contour(500, MIN_VOICED_FRAMES - 1, 0.05))
    assert torch.equal(match_pitch_range(few, few_voiced, wide, 1.0), few)  # the source: too short to read
    assert torch.equal(match_pitch_range(rel, voiced, contour(800, 10, 0.3), 1.0), rel)  # the reference too
    for bad in (-0.5, float("inf")):
        with pytest.raises(ValueError, match="pitch_range must be >= 0"):
            match_pitch_range(rel, voiced, wide, bad)


def gliding_voice(f0: float, seconds: float, depth: float, seed: int = 0) -> np.ndarray:
    """A harmonic voice whose pitch glides by +-``depth`` (relative) twice a second."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * np.exp(depth * np.sin(2 * np.pi * 2 * t))) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, 25))
    return (0.04 * wav + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pitch_range")
    out = {"ref": root / "ref.wav", "src": root / "src.wav"}
    write_audio(out["ref"], gliding_voice(140, 5.0, 0.1, seed=1), SR)  # a lively voice
    write_audio(out["src"], gliding_voice(110, 2.5, 0.05, seed=2), SR)  # half its range, like flite
    return out


def test_convert_follows_the_reference_range_only_when_asked(voices: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Conversion keeps the source's intonation by default (0: bit for bit the same as asking for
    0); asked for the reference's range, the decoder is handed the source's contour at the
    reference's spread."""
    from voicefake.conversion.model import ConversionDecoder

    profile = api.voice_profile(voices["ref"])
    assert api.pitch_range_for(profile) == api.DEFAULT_PITCH_RANGE == 0.0
    plain, _ = api.convert(voices["src"], profile, identity_steps=0, blend=0.0)
    off, _ = api.convert(voices["src"], profile, identity_steps=0, blend=0.0, pitch_range=0)
    handed: list[torch.Tensor] = []
    forward = ConversionDecoder.forward

    def spy(self: ConversionDecoder, content: torch.Tensor, rel_log_f0: torch.Tensor, voiced: torch.Tensor,
            *args: object, **kwargs: object) -> torch.Tensor:
        handed.append(torch.where(voiced > 0, rel_log_f0 + 1.0, torch.zeros_like(rel_log_f0))[0])
        return forward(self, content, rel_log_f0, voiced, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ConversionDecoder, "forward", spy)
    api.convert(voices["src"], profile, identity_steps=0, blend=0.0)
    wide, _ = api.convert(voices["src"], profile, identity_steps=0, blend=0.0, pitch_range=1)
    assert np.array_equal(plain, off) and not np.allclose(plain, wide)
    source, matched = (pitch_spread(h) for h in handed)
    target = pitch_spread(profile.log_f0)
    assert source < 0.7 * target and matched == pytest.approx(target, rel=0.02), (source, matched, target)


def test_text_to_speech_widens_the_front_end_halfway_by_default(voices: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """clone() hands each sentence to convert() at DEFAULT_TTS_PITCH_RANGE for a zero-shot voice, or at
    what it is told; a fine-tuned voice keeps 0 (its figures were measured so); bad values are one clear
    error before any work, in the API and the CLI, and the JSON record says what ran."""
    profile = api.voice_profile(voices["ref"])
    assert api.pitch_range_for(profile, text=True) == api.DEFAULT_TTS_PITCH_RANGE == 0.5
    assert api.pitch_range_for(profile, 0.2, text=True) == 0.2
    finetuned = type("Tuned", (), {"decoder": object(), "seconds": 60.0})()
    assert api.pitch_range_for(finetuned, text=True) == 0.0

    seen: list[float] = []
    convert = api_cloning.convert

    def spy(*args: object, **kwargs: object) -> tuple[np.ndarray, int]:
        seen.append(float(kwargs["pitch_range"]))  # type: ignore[arg-type]
        return convert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api_cloning, "convert", spy)
    api.clone("Hello there. Goodbye now.", profile, engine="espeak", identity_steps=0)
    api.clone("Hello there.", profile, engine="espeak", identity_steps=0, pitch_range=1.0)
    assert seen == [0.5, 0.5, 1.0]
    monkeypatch.undo()
    for call in (lambda: api.convert(voices["src"], tmp_path / "no_such_reference.wav", pitch_range=-1),
                 lambda: api.clone("Hello.", tmp_path / "no_such_reference.wav", pitch_range=-0.1),
                 lambda: api.pitch_range_for(profile, float("nan")),
                 lambda: api.pitch_range_for(profile, float("inf"))):
        with pytest.raises(ValueError, match="pitch_range must be >= 0"):
            call()

    out = tmp_path / "c.wav"
    assert main(["clone", "--reference", str(voices["ref"]), "--text", "Hello there.", "--engine", "espeak",
                 "-o", str(out), "--json", "--identity-steps", "0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pitch_range"] == 0.5
    assert main(["convert", str(voices["src"]), "--reference", str(voices["ref"]), "-o", str(out), "--json",
                 "--identity-steps", "0", "--pitch-range", "0.8", "--force"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pitch_range"] == 0.8
    for bad, message in (("-1", "below 0"), ("inf", "not a finite number")):
        with pytest.raises(SystemExit) as error:
            main(["convert", str(voices["src"]), "--reference", str(voices["ref"]), "-o", str(tmp_path / "bad.wav"),
                  "--pitch-range", bad])
        assert error.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "bad.wav").exists()
