"""Decoding a file or byte string into a checked waveform, with one AudioError per problem.

The reading half of :mod:`voicefake.audio.io` (which re-exports what callers need): sources
(paths or bytes), container sniffing, soundfile first, PyAV (bundled FFmpeg) as the fallback,
bounded decoding of over-long inputs, and the sample/rate/duration checks.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

logger = logging.getLogger("voicefake.audio.io")

DEFAULT_MAX_DURATION = 600.0
"""Longest recording (seconds) that :func:`load_audio` accepts unless told otherwise."""

MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
SILENCE_LEVEL = 1e-6
"""Peak amplitude below which a recording counts as digital silence."""

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
    """Decode with libsndfile to (T, channels) float32; None when PyAV should decode the file instead.

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
    return frames, sample_rate


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


# Headerless telephony formats (what Asterisk records and plays): FFmpeg cannot recognise
# them from their bytes, so the file name's extension names the format. u-law, A-law and
# signed linear carry no rate: 8 kHz, as Asterisk writes them.
_RAW_FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    ".gsm": ("gsm", {}),
    ".ulaw": ("mulaw", {"sample_rate": "8000"}),
    ".ul": ("mulaw", {"sample_rate": "8000"}),
    ".alaw": ("alaw", {"sample_rate": "8000"}),
    ".al": ("alaw", {"sample_rate": "8000"}),
    ".sln": ("s16le", {"sample_rate": "8000"}),
}


def _raw_format(src: _Source) -> tuple[str, dict[str, str]] | tuple[None, None]:
    """FFmpeg's format name and options for a headerless telephony file, by its extension."""
    suffix = (src.path.suffix if src.path is not None else Path(src.label).suffix).lower()
    return _RAW_FORMATS.get(suffix, (None, None))


def _read_pyav(src: _Source, max_duration: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container FFmpeg knows to (T, channels) float32,
    bounded in length."""
    import av  # imported here: only m4a/amr/video need it

    raw_format, raw_options = _raw_format(src)
    with src.open() as stream:
        try:
            container = av.open(stream, mode="r", format=raw_format, options=raw_options,
                                metadata_errors="replace")
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
    return np.concatenate(chunks), sample_rate


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
    """Yield (T, channels) float32 chunks; stop with an error once past ``max_duration``."""
    import av

    sample_rate = audio.codec_context.sample_rate
    # Converting to planar float makes every sample format (s16, s32p, dbl, ...) give a
    # (channels, T) array in [-1, 1]; transposed to (T, channels) as soundfile gives them.
    resampler = av.AudioResampler(format="fltp")
    decoded = 0
    for frame in container.decode(audio):
        for planar in resampler.resample(frame):
            chunk = planar.to_ndarray().T
            decoded += len(chunk)
            # Headers can lie or be missing: bound the decoding itself too.
            if max_duration is not None and decoded > max_duration * sample_rate:
                problem = f"is longer than the limit of {max_duration:g} s (stopped decoding)"
                raise _error(label, problem, _FIX_LONG)
            yield chunk
    for planar in resampler.resample(None):
        yield planar.to_ndarray().T


