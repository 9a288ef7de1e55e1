"""Audio file I/O: the only module in voicefake that reads or writes audio files.

Everything here works on numpy arrays. Waveforms are float32, mono, shape ``(T,)``
with ``T`` samples, values in ``[-1, 1]`` and a sample rate in Hz; ``mono=False`` reads
keep a file's channels apart as ``(T, channels)``.

Reading tries :mod:`soundfile` first (wav, flac, ogg/opus, mp3: fast and exact) and
falls back to PyAV (``av``, bundled FFmpeg, in-process) for m4a/aac, amr and the audio
track of videos. Every failure raises :class:`AudioError` with a one-line message that
names the file, says what is wrong and what to do about it.
"""


from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

from voicefake.audio.decode import (
    _RATE_RANGE,
    DEFAULT_MAX_DURATION,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SILENCE_LEVEL,
    AudioError,
    _check_samples,
    _check_wav_chunks,
    _error,
    _finish,
    _make_source,
    _read_pyav,
    _read_soundfile,
    _reject_non_audio,
    _valid_rate,
)
from voicefake.audio.ops import loudness_normalize, resample, speech_regions, to_mono, trim_silence

__all__ = ["AUDIO_EXTENSIONS", "DEFAULT_MAX_DURATION", "MAX_SAMPLE_RATE", "METADATA_KEYS", "MIN_SAMPLE_RATE",
           "SILENCE_LEVEL", "VIDEO_EXTENSIONS", "WRITE_FORMATS", "AudioError", "iter_media_files", "load_audio",
           "loudness_normalize", "read_audio", "resample", "sha256_file", "speech_regions", "to_mono",
           "trim_silence", "write_audio"]

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".m4a",
    ".aac",
    ".amr",
    ".aif",
    ".aiff",
    ".gsm",  # headerless telephony formats (Asterisk): see voicefake.audio.decode
    ".ulaw",
    ".ul",
    ".alaw",
    ".al",
    ".sln",
)
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".m4v",
    ".mov",
    ".avi",
    ".webm",
    ".mkv",
    ".mpg",
    ".mpeg",
)
WRITE_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC"}
METADATA_KEYS: tuple[str, ...] = (
    "title",
    "copyright",
    "software",
    "artist",
    "comment",
    "date",
    "album",
    "license",
)


# ----------------------------------------------------------------------------- reading


def read_audio(
    source: str | os.PathLike[str] | bytes,
    *,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    name: str | None = None,
    allow_silence: bool = False,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode a recording at its native sample rate, downmixed to mono (or every channel).

    Args:
        source: path to an audio or video file, or the file's bytes.
        max_duration: longest accepted duration in seconds (None: no limit). Checked from
            the header before decoding where the format allows, and while decoding.
        name: label used in error messages (default: the path, or ``"<bytes>"``).
        allow_silence: accept a recording that is digital silence only.
        mono: average the channels (True), or keep them: ``wav`` is then (T, channels),
            also for a mono file (one column). Silence is judged on all channels together.

    Returns:
        ``(wav, sample_rate)``: wav is (T,) float32 in [-1, 1]; sample_rate in Hz.

    Raises:
        AudioError: missing, unreadable, not audio, truncated or corrupt, empty, silent,
            non-finite, bad sample rate, video without sound, or longer than max_duration.
    """
    src = _make_source(source, name)
    if max_duration is not None and not max_duration > 0:
        raise _error(
            src.label,
            f"max_duration={max_duration!r} is not positive",
            "pass a duration in seconds greater than 0, or None for no limit",
        )
    _check_wav_chunks(src)
    decoded = _read_soundfile(src, max_duration)
    if decoded is None:  # not a format libsndfile knows: m4a, amr, video, ...
        _reject_non_audio(src)
        decoded = _read_pyav(src, max_duration)
    frames, sample_rate = decoded  # (T, channels)
    wav = _finish(frames.mean(axis=1) if mono else frames, src.label)
    _check_samples(wav, src.label, allow_silence)
    return wav, sample_rate


def load_audio(
    source: str | os.PathLike[str] | bytes,
    sample_rate: int | None = 16000,
    *,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    name: str | None = None,
    allow_silence: bool = False,
    mono: bool = True,
) -> np.ndarray:
    """Decode any common recording into a mono waveform at ``sample_rate``.

    Reads wav, flac, ogg/opus, mp3, m4a/aac, amr, Asterisk's headerless telephony files
    (gsm, ulaw, alaw, sln; named by their extension) and the audio track of mp4, avi, mov,
    webm, mpg and mkv videos. Multichannel audio is downmixed by averaging the channels.

    Args:
        source: path to an audio or video file, or the file's bytes.
        sample_rate: output rate in Hz, 4000-384000; None keeps the file's native rate.
        max_duration: longest accepted duration in seconds (None: no limit).
        name: label used in error messages (default: the path, or ``"<bytes>"``).
        allow_silence: accept a recording that is digital silence only.
        mono: False keeps the channels apart: a (T, channels) array (see :func:`read_audio`).

    Returns:
        (T,) float32 waveform in [-1, 1] at ``sample_rate`` (or the native rate); (T, channels)
        with ``mono=False``.

    Raises:
        AudioError: see :func:`read_audio`; also for an unsupported ``sample_rate``.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if sample_rate is not None and not _valid_rate(sample_rate):
        raise _error(
            label,
            f"requested sample_rate={sample_rate!r} is not supported",
            f"ask for an integer rate in {_RATE_RANGE}, or None for the native rate",
        )
    wav, native_rate = read_audio(
        source, max_duration=max_duration, name=name, allow_silence=allow_silence, mono=mono
    )
    if sample_rate is None or sample_rate == native_rate:
        return wav
    return resample(wav, native_rate, sample_rate)


# ----------------------------------------------------------------------------- writing


def write_audio(
    path: str | os.PathLike[str],
    wav: np.ndarray,
    sample_rate: int,
    *,
    force: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a waveform as 16-bit PCM WAV or FLAC, atomically.

    The data goes to a temporary file in the target folder, which then replaces the
    target in one step, so readers never see a half-written file.

    Args:
        path: output file; the extension picks the format (``.wav`` or ``.flac``).
        wav: (T,) mono or (T, channels) float waveform; values are clipped to [-1, 1].
        sample_rate: rate in Hz, 4000-384000.
        force: overwrite an existing file.
        metadata: text tags stored in the file, keys from :data:`METADATA_KEYS`
            (e.g. ``{"comment": "synthetic speech", "software": "voicefake 0.1"}``).

    Returns:
        The path written.

    Raises:
        FileExistsError: the file exists and ``force`` is False.
        ValueError: unsupported extension, metadata key, sample rate or waveform.
    """
    path = Path(path)
    file_format = _check_write_args(path, wav, sample_rate, metadata)
    if path.exists() and not force:
        raise FileExistsError(
            f"{path}: already exists; pass force=True (CLI: --force) "
            "to overwrite it, or choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with sf.SoundFile(
            tmp,
            "w",
            int(sample_rate),
            1 if data.ndim == 1 else data.shape[1],
            subtype="PCM_16",
            format=file_format,
        ) as out:
            for key, value in (metadata or {}).items():
                setattr(out, key, value)  # soundfile exposes text tags as attributes
            out.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_write_args(
    path: Path, wav: np.ndarray, sample_rate: int, metadata: dict[str, str] | None
) -> str:
    """Validate write_audio's arguments; return the soundfile format name."""
    file_format = WRITE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(
            f"{path}: cannot write {path.suffix or 'files without an extension'}; "
            f"use one of {', '.join(WRITE_FORMATS)}"
        )
    if not _valid_rate(sample_rate):
        raise ValueError(f"{path}: sample_rate={sample_rate!r} is not an integer in {_RATE_RANGE}")
    array = np.asarray(wav)
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValueError(
            f"{path}: wav must be (T,) or (T, channels) with T > 0, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: wav contains NaN or infinite values; refusing to write it")
    unknown = sorted(set(metadata or {}) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown metadata keys {unknown}; use {', '.join(METADATA_KEYS)}")
    return file_format


# ----------------------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes as 64 hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_media_files(inputs: list[str | Path]) -> list[Path]:
    """Expand files and folders into the list of media files to process.

    A folder stands for every audio or video file below it (recursively, sorted, hidden
    files and folders skipped); a file is kept as given, whatever its extension.

    Args:
        inputs: files and folders.

    Returns:
        Paths in input order, each folder's files sorted.

    Raises:
        AudioError: a path does not exist, or a folder holds no audio or video files.
    """
    extensions = set(AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise _error(str(item), "no such file or folder", "check the path")
        if not path.is_dir():
            found.append(path)
            continue
        media = sorted(
            child
            for child in path.rglob("*")
            if child.suffix.lower() in extensions
            and child.is_file()
            and not any(part.startswith(".") for part in child.relative_to(path).parts)
        )
        if not media:
            raise _error(
                str(item),
                "folder contains no audio or video files",
                f"supported extensions: {' '.join(sorted(extensions))}",
            )
        found.extend(media)
    return found
