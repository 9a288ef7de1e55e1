"""Shared pytest fixtures: the real-data root, and quiet, single-threaded defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Gradio phones home on import unless told not to; tests run offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:
    import torch
except ImportError:  # the audio I/O tests need only numpy
    torch = None

if torch is not None:
    # Two intra-op threads on a shared 2-core machine make tiny ops 100x slower at times.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data folder from $VOICEFAKE_DATA; skips the test when it is not there."""
    value = os.environ.get("VOICEFAKE_DATA", "")
    hint = "point it at the shared data folder (e.g. ../shared/data) to run data tests"
    if not value:
        pytest.skip(f"VOICEFAKE_DATA is not set; {hint}")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"VOICEFAKE_DATA={value} is not a folder; {hint}")
    return root
