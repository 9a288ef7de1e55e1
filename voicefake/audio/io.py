"""Audio file I/O: the only module in voicefake that reads or writes audio files.

Everything here works on numpy arrays. Waveforms are float32, mono, shape ``(T,)``
with ``T`` samples, values in ``[-1, 1]`` and a sample rate in Hz.

Reading tries :mod:`soundfile` first (wav, flac, ogg/opus, mp3: fast and exact) and
falls back to PyAV (``av``, bundled FFmpeg, in-process) for m4a/aac, amr and the audio
track of videos. Every failure raises :class:`AudioError` with a one-line message that
names the file, says what is wrong and what to do about it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

DEFAULT_MAX_DURATION = 600.0
"""Longest recording (seconds) that :func:`load_audio` accepts unless told otherwise."""

MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
SILENCE_LEVEL = 1e-6
"""Peak amplitude below which a recording counts as digital silence."""

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

_RATE_RANGE = f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
_FIX_COPY = "copy or download the file again"
_FIX_AUDIO = "pass a recording (wav, flac, mp3, m4a, ...) or a video with sound"
_FIX_LONG = "cut it into shorter pieces, or pass a larger max_duration"
_FIX_EXPORT = "check that it plays in a media player, then re-export it as WAV or FLAC"
# Leading bytes of common non-audio files, to name what was passed instead of audio.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
)
# libsndfile error codes (sndfile.h): the format is known but the file is malformed.
_SF_ERR_MALFORMED_FILE = 3
# soundfile reports this frame count (SF_COUNT_MAX) when the header gives no length.
_SF_UNKNOWN_LENGTH = 2**62
# An MP3 whose first frame carries one of these tags states its exact sample count.
_MP3_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")


class AudioError(ValueError):
    """An audio file (or byte string) cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class _Source:
    """An input to decode: a file on disk or bytes in memory, with a label for messages."""

    label: str
    path: Path | None
    data: bytes | None
    size: int
    head: bytes

    def open(self) -> BinaryIO:
        """Open the content as a binary stream (the caller closes it)."""
        if self.path is not None:
            return self.path.open("rb")
        return io.BytesIO(self.data or b"")


def _error(label: str, problem: str, fix: str) -> AudioError:
    """Build a one-line AudioError: ``"<label>: <problem>; <fix>"``."""
    message = f"{label}: {problem}; {fix}"
    return AudioError(" ".join(message.split()))


# ----------------------------------------------------------------------------- reading


def read_audio(
    source: str | os.PathLike[str] | bytes,
    *,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    name: str | None = None,
    allow_silence: bool = False,
) -> tuple[np.ndarray, int]:
    """Decode a recording at its native sample rate, downmixed to mono.

    Args:
        source: path to an audio or video file, or the file's bytes.
        max_duration: longest accepted duration in seconds (None: no limit). Checked from
            the header before decoding where the format allows, and while decoding.
        name: label used in error messages (default: the path, or ``"<bytes>"``).
        allow_silence: accept a recording that is digital silence only.

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
    wav, sample_rate = decoded
    _check_samples(wav, src.label, allow_silence)
    return wav, sample_rate


def load_audio(
    source: str | os.PathLike[str] | bytes,
    sample_rate: int | None = 16000,
    *,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    name: str | None = None,
    allow_silence: bool = False,
) -> np.ndarray:
    """Decode any common recording into a mono waveform at ``sample_rate``.

    Reads wav, flac, ogg/opus, mp3, m4a/aac, amr and the audio track of mp4, avi, mov,
    webm, mpg and mkv videos. Multichannel audio is downmixed by averaging the channels.

    Args:
        source: path to an audio or video file, or the file's bytes.
        sample_rate: output rate in Hz, 4000-384000; None keeps the file's native rate.
        max_duration: longest accepted duration in seconds (None: no limit).
        name: label used in error messages (default: the path, or ``"<bytes>"``).
        allow_silence: accept a recording that is digital silence only.

    Returns:
        (T,) float32 waveform in [-1, 1] at ``sample_rate`` (or the native rate).

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
        source, max_duration=max_duration, name=name, allow_silence=allow_silence
    )
    if sample_rate is None or sample_rate == native_rate:
        return wav
    return resample(wav, native_rate, sample_rate)


def _make_source(source: str | os.PathLike[str] | bytes, name: str | None) -> _Source:
    """Check that ``source`` exists and is a non-empty regular file, and read its head."""
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        label = name or "<bytes>"
        if not data:
            raise _error(label, "is empty (0 bytes)", "pass the bytes of a complete recording")
        return _Source(label, None, data, len(data), data[:4096])
    path = Path(source)
    label = name or str(source)
    if not path.exists():
        raise _error(label, "no such file", "check the path and the current directory")
    if path.is_dir():
        raise _error(
            label,
            "is a directory, not an audio file",
            "pass a file inside it (the CLI accepts folders and searches them)",
        )
    if not path.is_file():
        raise _error(label, "is not a regular file (a pipe or device?)", "save it to a file first")
    try:
        with path.open("rb") as stream:
            head = stream.read(4096)
        size = path.stat().st_size
    except OSError as exc:
        raise _error(
            label, f"cannot be read ({exc.strerror or exc})", "check the file's permissions"
        ) from exc
    if size == 0:
        raise _error(label, "is empty (0 bytes)", "the recording was not saved; export it again")
    return _Source(label, path, None, size, head)


def _valid_rate(sample_rate: object) -> bool:
    """True for an int (not bool) sample rate within the supported range."""
    return (
        isinstance(sample_rate, int | np.integer)
        and not isinstance(sample_rate, bool)
        and MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE
    )


def _check_rate(sample_rate: float, label: str) -> int:
    """Return the native rate as int, or raise if it is absurd."""
    if not (MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE):
        raise _error(
            label,
            f"has an unsupported sample rate of {sample_rate:g} Hz",
            f"supported rates are {_RATE_RANGE}; resample it with a sound editor",
        )
    return int(sample_rate)


def _check_duration(duration: float, max_duration: float | None, label: str) -> None:
    """Raise when ``duration`` (seconds) is over ``max_duration``."""
    if max_duration is not None and duration > max_duration:
        problem = f"is {duration:.2f} s long, over the limit of {max_duration:g} s"
        raise _error(label, problem, _FIX_LONG)


def _check_samples(wav: np.ndarray, label: str, allow_silence: bool) -> None:
    """Reject empty, non-finite or (unless allowed) digitally silent waveforms."""
    if wav.size == 0:
        raise _error(label, "contains no audio samples", "the recording is empty; export it again")
    if not np.isfinite(wav).all():
        raise _error(
            label,
            "contains NaN or infinite sample values",
            "the file is corrupt or was written from a broken model output",
        )
    if not allow_silence and float(np.max(np.abs(wav))) < SILENCE_LEVEL:
        raise _error(
            label,
            "contains only digital silence",
            "check the recording's input device, or pass allow_silence=True",
        )


def _check_wav_chunks(src: _Source) -> None:
    """Raise if a RIFF/WAVE file's data chunk is shorter than its header says.

    libsndfile quietly reads a cut-off WAV as a shorter one, so the chunk sizes are
    checked here. A data size of 0 or 0xFFFFFFFF means "unknown" (streamed writers).
    """
    if src.head[:4] != b"RIFF" or src.head[8:12] != b"WAVE":
        return
    with src.open() as stream:
        offset = 12
        while offset + 8 <= src.size:
            stream.seek(offset)
            chunk = stream.read(8)
            chunk_size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                declared_end = offset + 8 + chunk_size
                if chunk_size not in (0, 0xFFFFFFFF) and declared_end > src.size:
                    missing = declared_end - src.size
                    raise _error(
                        src.label, f"is truncated ({missing} bytes of audio missing)", _FIX_COPY
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise _error(
        src.label, "is a WAV file without an audio data chunk (truncated or corrupt)", _FIX_COPY
    )


def _reject_non_audio(src: _Source) -> None:
    """Raise a clear error for text files, images and archives passed as audio."""
    for magic, kind in _MAGIC:
        if src.head.startswith(magic):
            raise _error(src.label, f"is {kind}, not audio", _FIX_AUDIO)
    sample = src.head[:1024]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multibyte character cut at the end is still text
        text = sample[: exc.start].decode("utf-8") if exc.start > len(sample) - 4 else ""
    if text and all(char.isprintable() or char in "\t\r\n\f" for char in text):
        raise _error(src.label, "is a text file, not audio", _FIX_AUDIO)


def _read_soundfile(src: _Source, max_duration: float | None) -> tuple[np.ndarray, int] | None:
    """Decode with libsndfile; None when PyAV should decode the file instead.

    libsndfile stops reading at the length it finds in the header, so it is only used
    when that length is exact. Otherwise (an unknown format or codec, a FLAC stream of
    unknown length, an MP3 without a Xing/Info/VBRI length header, whose length
    libsndfile guesses from the bit rate) the file goes to PyAV.
    """
    with src.open() as stream:
        try:
            sound = sf.SoundFile(stream)
        except sf.LibsndfileError as exc:
            if exc.code == _SF_ERR_MALFORMED_FILE:
                problem = f"is a truncated or corrupt {_ext(src)} file"
                raise _error(src.label, problem, _FIX_COPY) from exc
            logger.debug("soundfile cannot read %s (%s); trying PyAV", src.label, exc)
            return None
        with sound:
            inexact_mp3 = sound.format == "MP3" and not any(t in src.head for t in _MP3_LENGTH_TAGS)
            if sound.frames >= _SF_UNKNOWN_LENGTH or inexact_mp3:
                logger.debug("%s: length not exact in the header; decoding with PyAV", src.label)
                return None
            sample_rate = _check_rate(sound.samplerate, src.label)
            _check_duration(sound.frames / sample_rate, max_duration, src.label)
            try:
                frames = sound.read(dtype="float32", always_2d=True)
            except sf.LibsndfileError as exc:
                problem = f"is a truncated or corrupt {sound.format} file"
                raise _error(src.label, problem, _FIX_COPY) from exc
            if len(frames) < sound.frames:
                problem = f"is truncated (only {len(frames)} of {sound.frames} samples decode)"
                raise _error(src.label, problem, _FIX_COPY)
    return _finish(frames.mean(axis=1), src.label), sample_rate


def _ext(src: _Source) -> str:
    """The file's extension in capitals for messages (``"audio"`` for bytes)."""
    suffix = src.path.suffix.lstrip(".").upper() if src.path is not None else ""
    return suffix or "audio"


def _finish(wav: np.ndarray, label: str) -> np.ndarray:
    """Return a contiguous float32 waveform, clipping (and logging) any overshoot."""
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    finite = wav[np.isfinite(wav)]
    if finite.size and float(np.max(np.abs(finite))) > 1.0:
        logger.info("%s: samples exceed [-1, 1]; clipping them", label)
        wav = np.clip(wav, -1.0, 1.0)
    return wav


def _read_pyav(src: _Source, max_duration: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container FFmpeg knows, bounded in length."""
    import av  # imported here: only m4a/amr/video need it

    with src.open() as stream:
        try:
            container = av.open(stream, mode="r", metadata_errors="replace")
        except (av.FFmpegError, OSError) as exc:
            logger.debug("PyAV cannot open %s: %s", src.label, exc)
            raise _error(
                src.label, "cannot be decoded as audio (unknown format, or corrupt)", _FIX_EXPORT
            ) from exc
        with container:
            audio = _audio_stream(container, src)
            sample_rate = _check_rate(audio.codec_context.sample_rate or 0, src.label)
            _check_duration(_header_duration(container, audio), max_duration, src.label)
            try:
                chunks = list(_decode_chunks(container, audio, max_duration, src.label))
            except av.FFmpegError as exc:
                raise _error(
                    src.label, "is truncated or corrupt (the audio failed to decode)", _FIX_COPY
                ) from exc
    if not chunks:
        raise _error(src.label, "has an audio track with no samples", "export it again")
    return _finish(np.concatenate(chunks), src.label), sample_rate


def _audio_stream(container: Any, src: _Source) -> Any:
    """Return the first audio stream, or raise naming what the file holds instead."""
    if container.streams.audio:
        audio = container.streams.audio[0]
        if audio.codec_context is None:
            raise _error(
                src.label, "has an audio track in a codec FFmpeg cannot decode", _FIX_EXPORT
            )
        return audio
    format_name = container.format.name
    if format_name.endswith("_pipe") or format_name == "image2":
        raise _error(src.label, f"is an image ({format_name}), not audio", _FIX_AUDIO)
    if container.streams.video:
        raise _error(
            src.label,
            "is a video without an audio track",
            "use a video that has sound, or pass the audio file separately",
        )
    raise _error(src.label, f"contains no audio stream (format {format_name})", _FIX_EXPORT)


def _header_duration(container: Any, audio: Any) -> float:
    """Duration in seconds that the header states (0 when unknown or only a guess).

    For raw MP3 and ADTS AAC streams FFmpeg guesses the duration from the first
    frame's bit rate, which can be several times too long; those rely on the bounded
    decoding alone.
    """
    if container.format.name in ("mp3", "aac"):
        return 0.0
    if audio.duration is not None and audio.time_base is not None:
        return float(audio.duration * audio.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return 0.0


def _decode_chunks(
    container: Any, audio: Any, max_duration: float | None, label: str
) -> Iterator[np.ndarray]:
    """Yield (T,) mono float32 chunks; stop with an error once past ``max_duration``."""
    import av

    sample_rate = audio.codec_context.sample_rate
    # Converting to planar float makes every sample format (s16, s32p, dbl, ...) give a
    # (channels, T) array in [-1, 1], so the downmix is a plain mean over channels.
    resampler = av.AudioResampler(format="fltp")
    decoded = 0
    for frame in container.decode(audio):
        for planar in resampler.resample(frame):
            chunk = planar.to_ndarray().mean(axis=0)
            decoded += len(chunk)
            # Headers can lie or be missing: bound the decoding itself too.
            if max_duration is not None and decoded > max_duration * sample_rate:
                problem = f"is longer than the limit of {max_duration:g} s (stopped decoding)"
                raise _error(label, problem, _FIX_LONG)
            yield chunk
    for planar in resampler.resample(None):
        yield planar.to_ndarray().mean(axis=0)


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


# ----------------------------------------------------------------------------- signal


def resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample with the SoX high-quality polyphase filter (deterministic).

    Args:
        wav: (T,) float waveform.
        orig_rate: its sample rate in Hz.
        target_rate: the wanted sample rate in Hz.

    Returns:
        (T * target_rate / orig_rate,) float32 waveform, clipped to [-1, 1].

    Raises:
        ValueError: a rate is outside 4000-384000 Hz or not an integer.
    """
    for rate in (orig_rate, target_rate):
        if not _valid_rate(rate):
            raise ValueError(f"sample rate {rate!r} is not an integer in {_RATE_RANGE}")
    wav = np.asarray(wav, dtype=np.float32)
    if orig_rate == target_rate:
        return wav.copy()
    # soxr is the resampler behind librosa's "soxr_hq" (a librosa dependency); calling it
    # directly avoids librosa's import time (seconds) for the same result.
    import soxr

    out = soxr.resample(wav, orig_rate, target_rate, quality="HQ")
    # The anti-aliasing filter rings, so a full-scale input can overshoot slightly.
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Downmix to mono by averaging the channels.

    Convention: a 1-D array is already mono. A 2-D array's channel axis is its shorter
    axis, so both (channels, T) (PyTorch, PyAV) and (T, channels) (soundfile) work; a
    square array is read as (channels, T).

    Args:
        wav: (T,), (channels, T) or (T, channels) waveform.

    Returns:
        (T,) float32 waveform.

    Raises:
        ValueError: the array has more than 2 dimensions.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav
    if wav.ndim != 2:
        raise ValueError(f"wav must be (T,), (channels, T) or (T, channels), got {wav.shape}")
    channel_axis = 0 if wav.shape[0] <= wav.shape[1] else 1
    return wav.mean(axis=channel_axis)


def _frame_power_db(wav: np.ndarray, sample_rate: int, frame_ms: float) -> np.ndarray:
    """(F,) mean power per non-overlapping frame, in dBFS (full-scale square wave = 0)."""
    frame_length = max(1, round(sample_rate * frame_ms / 1000))
    if len(wav) == 0:
        return np.zeros(0)
    num_frames = -(-len(wav) // frame_length)  # ceil: the last partial frame counts
    padded = np.zeros(num_frames * frame_length, dtype=np.float64)
    padded[: len(wav)] = wav
    frames = padded.reshape(num_frames, frame_length)
    # Count only real samples in the last frame, so its power is not diluted by padding.
    counts = np.full(num_frames, frame_length, dtype=np.float64)
    counts[-1] = len(wav) - (num_frames - 1) * frame_length
    power = (frames**2).sum(axis=1) / counts
    return 10 * np.log10(np.maximum(power, 1e-20))  # floor: log of exact silence


def _active_frames(power_db: np.ndarray, threshold_db: float) -> np.ndarray:
    """(F,) bool: frames within ``threshold_db`` of the loudest frame, above -100 dBFS."""
    if power_db.size == 0:
        return np.zeros(0, dtype=bool)
    return (power_db > power_db.max() + threshold_db) & (power_db > -100.0)


def loudness_normalize(wav: np.ndarray, sample_rate: int, target_db: float = -23.0) -> np.ndarray:
    """Scale a waveform so that its speech has a given loudness, without clipping.

    Loudness is the RMS level of the active frames only (30 ms frames within 40 dB of
    the loudest one), in dBFS where a full-scale square wave is 0 dB (a full-scale sine
    is -3 dB). Pauses therefore do not change the result. If the gain would push the
    peak above -1 dBFS, the gain is lowered so the peak sits at -1 dBFS, and the result
    is quieter than ``target_db``.

    Args:
        wav: (T,) float waveform.
        sample_rate: its sample rate in Hz.
        target_db: wanted speech RMS level in dBFS.

    Returns:
        (T,) float32 waveform. Silence (no active frames) is returned unchanged.

    Raises:
        ValueError: the waveform contains NaN or infinite values.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if not np.isfinite(wav).all():
        raise ValueError("loudness_normalize: wav contains NaN or infinite values")
    power_db = _frame_power_db(wav, sample_rate, 30.0)
    active = _active_frames(power_db, -40.0)
    if not active.any():
        logger.debug("loudness_normalize: no active frames, returning input unchanged")
        return wav.copy()
    loudness_db = 10 * np.log10(np.mean(10 ** (power_db[active] / 10)))
    gain = 10 ** ((target_db - loudness_db) / 20)
    peak_limit = 10 ** (-1.0 / 20)  # -1 dBFS headroom for inter-sample peaks and codecs
    peak = float(np.max(np.abs(wav)))
    gain = min(gain, peak_limit / peak)
    return (wav * gain).astype(np.float32)


def speech_regions(
    wav: np.ndarray,
    sample_rate: int,
    *,
    frame_ms: float = 30.0,
    threshold_db: float = -40.0,
    min_speech_s: float = 0.1,
    min_silence_s: float = 0.2,
) -> list[tuple[float, float]]:
    """Find where someone is speaking, from frame energy.

    A frame is active when its power is within ``threshold_db`` of the loudest frame.
    Pauses shorter than ``min_silence_s`` are bridged, then active stretches shorter than
    ``min_speech_s`` are dropped. Times are accurate to one frame.

    Args:
        wav: (T,) float waveform.
        sample_rate: its sample rate in Hz.
        frame_ms: frame length in milliseconds (frames do not overlap).
        threshold_db: activity threshold in dB relative to the loudest frame (negative).
        min_speech_s: shortest kept speech region, in seconds.
        min_silence_s: shortest pause that splits two regions, in seconds.

    Returns:
        ``[(start_s, end_s), ...]`` in seconds, sorted; empty when nothing is active.
    """
    wav = np.asarray(wav, dtype=np.float32)
    frame_s = max(1, round(sample_rate * frame_ms / 1000)) / sample_rate
    active = _active_frames(_frame_power_db(wav, sample_rate, frame_ms), threshold_db)
    runs = _runs(active)
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and (start - merged[-1][1]) * frame_s < min_silence_s:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    duration = len(wav) / sample_rate
    return [
        (start * frame_s, min(end * frame_s, duration))
        for start, end in merged
        if (end - start) * frame_s >= min_speech_s
    ]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` frame index ranges (end exclusive) where mask is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(start), int(end)) for start, end in zip(starts, ends, strict=True)]


def trim_silence(wav: np.ndarray, sample_rate: int, *, pad_s: float = 0.1) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``pad_s`` seconds around the speech.

    Args:
        wav: (T,) float waveform.
        sample_rate: its sample rate in Hz.
        pad_s: silence kept before the first and after the last speech region, seconds.

    Returns:
        (T',) float32 waveform; empty when :func:`speech_regions` finds no speech.
    """
    wav = np.asarray(wav, dtype=np.float32)
    regions = speech_regions(wav, sample_rate)
    if not regions:
        return wav[:0].copy()
    start = max(0, int((regions[0][0] - pad_s) * sample_rate))
    end = min(len(wav), int(np.ceil((regions[-1][1] + pad_s) * sample_rate)))
    return wav[start:end].copy()


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
