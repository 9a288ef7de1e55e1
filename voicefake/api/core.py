"""Shared plumbing of the API: model loading and caching, audio inputs, display helpers."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from voicefake.audio.features import MelSpectrogram
from voicefake.audio.io import AudioError, load_audio
from voicefake.checkpoint import Checkpoint, CheckpointError, resolve

PathLike = str | os.PathLike[str]
AudioInput = PathLike | bytes | np.ndarray


@dataclass
class Loaded:
    """A model ready for inference: its checkpoint, module (eval mode) and device."""

    checkpoint: Checkpoint
    module: Any  # the kind's model class (Vocoder, Detector, SpeakerEncoder, ...), in eval mode
    device: torch.device
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``name@version`` of the model, as reported in JSON output."""
        return self.checkpoint.name


def load(checkpoint: PathLike, device: str = "cpu", kind: str | None = None) -> Loaded:
    """Loads a checkpoint (bundled name or directory) for inference, cached.

    Example:
        >>> voc = load("vocoder")
        >>> voc.module(torch.zeros(1, 80, 11)).shape
        torch.Size([1, 1600])

    Raises:
        CheckpointError: missing or malformed checkpoint, or not of ``kind``.
    """
    return _load_cached(str(resolve(checkpoint)), str(device), kind)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, device: str, kind: str | None) -> Loaded:
    ckpt = Checkpoint.load(path)
    if kind is not None and ckpt.kind != kind:
        raise CheckpointError(f"{path}: is a {ckpt.kind!r} checkpoint, expected {kind!r}")
    # built outside inference mode even when the first caller is inside it: a cached model's
    # tensors must stay usable by autograd (conversion's embedding adaptation differentiates
    # through the decoder and the speaker encoder)
    with torch.inference_mode(False):
        module = ckpt.build(torch.device(device)).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return Loaded(ckpt, module, torch.device(device))


def _as_wave(audio: AudioInput, sample_rate: int, name: str | None = None) -> np.ndarray:
    """A path, bytes or waveform at ``sample_rate`` -> mono float32 waveform."""
    if isinstance(audio, np.ndarray):
        wav = np.asarray(audio, dtype=np.float32)
        if wav.ndim != 1 or wav.size == 0 or not np.all(np.isfinite(wav)):
            raise AudioError(f"{name or '<array>'}: expected a non-empty finite 1-D waveform; got shape {wav.shape}")
        return wav
    return load_audio(audio, sample_rate, name=name)


def load_waveform(audio: PathLike | bytes, sample_rate: int = 16000,
                  max_duration: float | None = 600.0, name: str | None = None, mono: bool = True) -> np.ndarray:
    """Decodes a recording (any common audio format or a video's sound) to mono float32, or
    with ``mono=False`` to (T, channels) (what :func:`voicefake.api.detect` takes for a stereo call).

    Raises :class:`AudioError` with a one-line message for anything unusable (missing,
    corrupt, silent, too long, video without sound, ...).

    Example:
        >>> wav = load_waveform("call.amr", 16000, max_duration=600)
        >>> load_waveform("pbx_call.wav", mono=False).shape
        (960000, 2)
    """
    return load_audio(audio, sample_rate, max_duration=max_duration, name=name, mono=mono)


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file, as reported in detection reports.

    Example:
        >>> file_sha256("call.wav")[:8]
        '3f1c9a2b'
    """
    from voicefake.audio.io import sha256_file

    return sha256_file(path)


def display_spectrogram(wav: np.ndarray, sample_rate: int = 16000, hop_length: int = 160) -> np.ndarray:
    """Log-power spectrogram in dB for display, (n_fft // 2 + 1, F) with n_fft 512.

    Example:
        >>> display_spectrogram(np.zeros(16000, dtype=np.float32)).shape
        (257, 101)
    """
    from voicefake.audio.features import LinearSpectrogram

    with torch.inference_mode():
        spec = LinearSpectrogram(512, hop_length, 400)(torch.from_numpy(np.asarray(wav, dtype=np.float32)))
    return (spec.numpy() * (10 / np.log(10))).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_module(mel_cfg: Any) -> MelSpectrogram:
    return MelSpectrogram(mel_cfg)
