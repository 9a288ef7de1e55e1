"""Offset search and confidence on synthetic talking faces (and GRID clips with the data marker)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.lipsync.faces import FPS, RATE, speech_like, write_blank
from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.audio.video import NoFaceError, load_mouth
from voicefake.lipsync.sync import SyncConfig, audio_envelope, measure_sync


def _shift(wav: np.ndarray, frames: int) -> np.ndarray:
    samples = frames * RATE // FPS
    out = np.zeros_like(wav)
    if samples >= 0:
        out[samples:] = wav[: len(wav) - samples]
    else:
        out[:samples] = wav[-samples:]
    return out


@pytest.fixture(scope="module")
def mouth(talking_face: tuple[Path, np.ndarray]) -> tuple[np.ndarray, float, np.ndarray]:
    path, wav = talking_face
    crops, fps = load_mouth(path)
    return crops, fps, wav


@pytest.mark.parametrize("shift", [-15, -7, 0, 4, 15])
def test_known_offset_recovered(mouth: tuple[np.ndarray, float, np.ndarray], shift: int) -> None:
    crops, fps, wav = mouth
    result = measure_sync(crops, audio_envelope(_shift(wav, shift), RATE, fps), fps)
    assert abs(result.offset_frames - shift) <= 1
    assert result.offset_ms == pytest.approx(result.offset_frames * 40.0)


def test_in_sync_confident_and_foreign_audio_not(mouth: tuple[np.ndarray, float, np.ndarray]) -> None:
    crops, fps, wav = mouth
    own = measure_sync(crops, audio_envelope(wav, RATE, fps), fps)
    other, _ = speech_like(4.0, seed=7)
    foreign = measure_sync(crops, audio_envelope(other, RATE, fps), fps)
    assert own.in_sync and own.confidence >= SyncConfig().threshold
    assert foreign.confidence < own.confidence
    assert not foreign.in_sync
    assert len(own.curve) == len(own.lags) == 31


def test_api_reads_the_video_soundtrack(talking_face: tuple[Path, np.ndarray]) -> None:
    result = api.sync_offset(talking_face[0])
    assert abs(result.offset_frames) <= 1 and result.in_sync
    assert set(result.to_dict()) >= {"offset_frames", "offset_ms", "confidence", "in_sync"}


def test_no_face_is_a_clear_error(tmp_path: Path) -> None:
    blank = write_blank(tmp_path / "noface.mp4", 50)
    with pytest.raises(NoFaceError, match="no face found"):
        load_mouth(blank)


def test_too_short_overlap_raises(mouth: tuple[np.ndarray, float, np.ndarray]) -> None:
    crops, fps, wav = mouth
    with pytest.raises(ValueError, match="overlap"):
        measure_sync(crops[:15], audio_envelope(wav[: RATE // 2], RATE, fps), fps)


@pytest.mark.data
@pytest.mark.slow
def test_grid_offsets(data_root: Path) -> None:
    path = sorted((data_root / "grid_lipnet").glob("*.mpg"))[0]
    crops, fps = load_mouth(path)
    wav = load_audio(path, RATE)
    original = measure_sync(crops, audio_envelope(wav, RATE, fps), fps)
    assert abs(original.offset_frames) <= 1 and original.in_sync
    shifted = measure_sync(crops, audio_envelope(_shift(wav, 9), RATE, fps), fps)
    assert abs(shifted.offset_frames - 9) <= 1
