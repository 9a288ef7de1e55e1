"""Shared fixtures of the detection tests."""

from __future__ import annotations

import pytest

from voicefake.checkpoint import Checkpoint
from voicefake.detection.inference import Calibration
from voicefake.detection.model import Detector, DetectorConfig


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    """An untrained tiny detector with threshold 0.6 and no dev table, saved as a checkpoint."""
    path = tmp_path_factory.mktemp("det") / "tiny"
    meta = {"name": "detector-tiny", "version": "0.0.1", "calibration": Calibration(threshold=0.6).to_dict()}
    Checkpoint.from_module(Detector(DetectorConfig.tiny()), "detection", metadata=meta).save(path)
    return str(path)
