"""voicefake: voice cloning, audio deepfakes, lip-sync and deepfake detection.

The public surface is the verbs in :mod:`voicefake.api`, re-exported here, plus
:class:`~voicefake.checkpoint.Checkpoint` and :class:`~voicefake.audio.io.AudioError`.
"""

from __future__ import annotations

__version__ = "0.1.0"
