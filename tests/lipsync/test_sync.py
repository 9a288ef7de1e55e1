"""Lip tracking, offset search and sync scores on synthetic talking faces (GRID clips with the data marker)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.lipsync.faces import FPS, RATE, speech_like, write_blank
from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.audio.video import NoFaceError, read_video
from voicefake.lipsync.mouth import lip_openings, mouth_of, track_mouth
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
    track = track_mouth(path)
    return track.openings, track.fps, wav


def test_lip_opening_follows_the_drawn_mouth(talking_face: tuple[Path, np.ndarray]) -> None:
    _, opening = speech_like(4.0)  # the conftest's face is drawn from this opening
    track = mouth_of(read_video(talking_face[0]))
    assert track.points.shape == (len(opening), 68, 2) and track.openings.shape == (len(opening), 2)
    for column in track.openings.T:
        assert np.corrcoef(column, opening)[0, 1] > 0.9


def test_lip_openings_scale_free() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (5, 68, 2))
    assert np.allclose(lip_openings(points), lip_openings(points * 3 + 7))


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
    late = measure_sync(crops, audio_envelope(_shift(wav, 8), RATE, fps), fps)
    assert own.in_sync and own.sync_score >= SyncConfig().threshold
    assert foreign.confidence < own.confidence and foreign.sync_score < SyncConfig().threshold
    assert not foreign.in_sync
    assert not late.in_sync and late.confidence > foreign.confidence  # belongs, but shifted
    assert len(own.curve) == len(own.lags) == 31


def test_api_reads_the_video_soundtrack(talking_face: tuple[Path, np.ndarray]) -> None:
    result = api.sync_offset(talking_face[0])
    assert abs(result.offset_frames) <= 1 and result.in_sync
    assert set(result.to_dict()) >= {"offset_frames", "offset_ms", "confidence", "sync_score", "in_sync"}


def test_no_face_is_a_clear_error(tmp_path: Path) -> None:
    blank = write_blank(tmp_path / "noface.mp4", 50)
    with pytest.raises(NoFaceError, match="no face found"):
        track_mouth(blank)


def test_too_short_overlap_raises(mouth: tuple[np.ndarray, float, np.ndarray]) -> None:
    crops, fps, wav = mouth
    with pytest.raises(ValueError, match="overlap"):
        measure_sync(crops[:15], audio_envelope(wav[: RATE // 2], RATE, fps), fps)


@pytest.mark.data
@pytest.mark.slow
def test_grid_offsets(data_root: Path) -> None:
    path = sorted((data_root / "grid_lipnet").glob("*.mpg"))[0]
    track = track_mouth(path)
    crops, fps = track.openings, track.fps
    wav = load_audio(path, RATE)
    original = measure_sync(crops, audio_envelope(wav, RATE, fps), fps)
    assert abs(original.offset_frames) <= 1 and original.in_sync
    shifted = measure_sync(crops, audio_envelope(_shift(wav, 9), RATE, fps), fps)
    assert abs(shifted.offset_frames - 9) <= 1


def test_missing_landmark_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from voicefake.lipsync import mouth

    mouth._predictor.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(mouth.LandmarkModelError, match="pip install face_recognition_models"):
            mouth._predictor()
    finally:
        monkeypatch.undo()
        mouth._predictor.cache_clear()


@pytest.mark.data
def test_grid_own_soundtrack_scores_above_foreign(data_root: Path) -> None:
    """Regression guard on real faces (benchmark: sync-score AUC 0.984, own clips 0.46-0.72)."""
    paths = sorted((data_root / "grid_lipnet").glob("*.mpg"))[:4]
    if len(paths) < 4:
        pytest.skip(f"fewer than 4 GRID clips under {data_root / 'grid_lipnet'}")
    tracks = [track_mouth(path) for path in paths]
    sounds = [load_audio(path, RATE) for path in paths]
    for i, track in enumerate(tracks):
        scores = [measure_sync(track.openings, audio_envelope(wav, RATE, track.fps), track.fps)
                  for wav in sounds]
        own = scores[i]
        assert own.in_sync and own.sync_score >= 0.45 and own.offset_frames == 0, paths[i].name
        assert max(s.sync_score for j, s in enumerate(scores) if j != i) < own.sync_score, paths[i].name
