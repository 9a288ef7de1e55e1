"""voicefake: voice cloning, audio deepfakes, lip-sync and deepfake detection.

The public surface is the verbs of :mod:`voicefake.api`, re-exported here (imported on first
use, so ``import voicefake`` stays cheap), plus :class:`~voicefake.checkpoint.Checkpoint`,
:class:`~voicefake.audio.io.AudioError` and ``__version__``.

Example:
    >>> import voicefake
    >>> report = voicefake.detect("call.wav")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = (
    "load", "load_waveform", "vocode", "resynthesize", "embed", "embed_speaker", "similarity",
    "verify", "verify_embedding", "detect", "sync_offset", "align", "watermark_embed",
    "watermark_detect", "detection_operating_point", "voice_profile", "save_voice", "convert", "clone", "finetune_voice", "render_scenario",
)
__all__ = [*_API, "Checkpoint", "AudioError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from voicefake import api

        return getattr(api, name)
    if name == "Checkpoint":
        from voicefake.checkpoint import Checkpoint

        return Checkpoint
    if name == "AudioError":
        from voicefake.audio.io import AudioError

        return AudioError
    raise AttributeError(f"module 'voicefake' has no attribute {name!r}")
