"""Fixtures for lip-sync tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.lipsync.faces import speech_like, write_video


@pytest.fixture(scope="session")
def talking_face(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 4 s in-sync synthetic talking-face mp4 and its (T,) 16 kHz speech."""
    wav, opening = speech_like(4.0)
    path = tmp_path_factory.mktemp("lipsync") / "face.mp4"
    return write_video(path, opening, wav), wav
