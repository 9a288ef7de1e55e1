"""Frame decoding, face tracking and muxing for lip-sync (PyAV + OpenCV, no ffmpeg).

Conventions: ``V`` video frames, ``H``/``W`` pixel rows/columns. Frames are decoded to 8-bit
grey (V, H, W). Face boxes are ``(x, y, w, h)`` float pixels per frame. The face detector is
OpenCV's frontal-face Haar cascade, which ships inside the ``opencv-python-headless`` wheel
(no download); it runs on a subsampled grid of frames at reduced resolution and the boxes are
interpolated and smoothed over time, so one missed detection never makes the mouth jump.
The lips inside the box are measured by :mod:`voicefake.lipsync.mouth`.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class VideoError(ValueError):
    """A video cannot be decoded, or holds no usable face."""


class NoFaceError(VideoError):
    """No face was found in (enough of) the video."""


@dataclass
class Video:
    """Decoded grey frames of a video.

    Attributes:
        frames: (V, H, W) uint8 grey frames.
        fps: frames per second.
        label: the name used in error messages.
    """

    frames: np.ndarray
    fps: float
    label: str

    @property
    def duration(self) -> float:
        """Duration in seconds (V / fps)."""
        return len(self.frames) / self.fps


def read_video(path: PathLike, max_duration: float = 600.0, name: str | None = None) -> Video:
    """Decodes the first video stream of a file into grey frames.

    Args:
        path: any container FFmpeg (bundled in PyAV) can read: mp4, mpg, mkv, webm, avi, ...
        max_duration: refuse videos longer than this many seconds.
        name: label for error messages (default: the path).

    Returns:
        :class:`Video` with (V, H, W) uint8 frames.

    Raises:
        FileNotFoundError: the file does not exist.
        VideoError: not a video, no video stream, or too long.
    """
    import av

    label = name or str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{label}: no such file")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"{label}: cannot be decoded as video (unknown format, or corrupt)") from exc
    with container:
        if not container.streams.video:
            raise VideoError(f"{label}: has no video stream; pass a video of a talking face")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if fps <= 0:
            raise VideoError(f"{label}: the video stream states no frame rate")
        stream.thread_type = "AUTO"  # frame/slice threads: decoding is a third of lip-sync's time
        frames = []
        try:
            for frame in container.decode(stream):
                frames.append(_grey(frame))
                if len(frames) > max_duration * fps:
                    raise VideoError(f"{label}: is longer than the limit of {max_duration:g} s")
        except av.FFmpegError as exc:
            raise VideoError(f"{label}: the video stream is truncated or corrupt") from exc
    if not frames:
        raise VideoError(f"{label}: the video stream has no frames")
    return Video(np.stack(frames), fps, label)


# limited-range luma (16-235) -> full-range grey (0-255), as FFmpeg's own conversion does
_LUMA_TO_GREY = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


def _grey(frame: Any) -> np.ndarray:
    """(H, W) uint8 grey image of a decoded frame: the luma plane itself for YUV formats."""
    name = frame.format.name
    if not name.startswith("yuv") or name.endswith(("le", "be")):  # other layouts, > 8-bit luma
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    return luma.copy() if name.startswith("yuvj") else _LUMA_TO_GREY[luma]


@functools.lru_cache(maxsize=1)
def _cascade() -> Any:
    import cv2

    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV face cascade missing at {path}; reinstall opencv-python-headless")
    return cascade


def track_face(video: Video, every: int = 5, max_width: int = 240,
               min_found: float = 0.2, smooth_frames: int = 9) -> np.ndarray:
    """Finds the main face every ``every`` frames and interpolates/smooths its box over time.

    Args:
        video: decoded frames.
        every: run the detector on every ``every``-th frame (boxes in between are interpolated).
        max_width: frames are downscaled to at most this width for detection (speed).
        min_found: fraction of the probed frames that must contain a face.
        smooth_frames: width of the moving-median/mean smoothing of the box track, frames.

    Returns:
        (V, 4) float boxes ``(x, y, w, h)`` in full-resolution pixels.

    Raises:
        NoFaceError: fewer than ``min_found`` of the probed frames hold a face.
    """
    import cv2

    cascade = _cascade()
    height, width = video.frames.shape[1:]
    scale = min(1.0, max_width / width)
    probes = np.arange(0, len(video.frames), max(1, every))
    found_at, boxes = [], []
    min_side = max(24, int(0.15 * min(height, width) * scale))
    last = None  # the previous box (detection scale): later probes search only near it
    for index in probes:
        image = video.frames[index]
        if scale < 1.0:
            image = cv2.resize(image, (int(width * scale), int(height * scale)),
                               interpolation=cv2.INTER_AREA)
        box = _near(cascade, image, last) if last is not None else None
        if box is None:
            faces = cascade.detectMultiScale(image, scaleFactor=1.15, minNeighbors=4,
                                             minSize=(min_side, min_side))
            box = max(faces, key=lambda b: b[2] * b[3]) if len(faces) else None
        if box is not None:
            last = np.asarray(box, dtype=np.float64)
            found_at.append(index)
            boxes.append(last / scale)
    if len(found_at) < max(1, min_found * len(probes)):
        raise NoFaceError(
            f"{video.label}: no face found ({len(found_at)} of {len(probes)} probed frames); "
            "pass a video with one frontal, well-lit talking face")
    return _smooth_track(np.asarray(found_at), np.stack(boxes), len(video.frames), smooth_frames)


def _near(cascade: Any, image: np.ndarray, last: np.ndarray) -> np.ndarray | None:
    """The face near ``last`` (x, y, w, h), searched in a window around it at similar sizes.

    A talking face moves little between probes, so this is several times cheaper than a
    whole-frame search; None when it is not there (the caller then searches everything).
    """
    x, y, w, h = last
    x0, y0 = int(max(0, x - 0.5 * w)), int(max(0, y - 0.5 * h))
    x1, y1 = int(min(image.shape[1], x + 1.5 * w)), int(min(image.shape[0], y + 1.5 * h))
    small, large = int(0.75 * w), int(1.35 * w)
    if x1 - x0 <= small or y1 - y0 <= small:
        return None
    faces = cascade.detectMultiScale(image[y0:y1, x0:x1], scaleFactor=1.1, minNeighbors=4,
                                     minSize=(small, small), maxSize=(large, large))
    if not len(faces):
        return None
    box = np.asarray(max(faces, key=lambda b: b[2] * b[3]), dtype=np.float64)
    return box + np.array([x0, y0, 0.0, 0.0])


def _smooth_track(found_at: np.ndarray, boxes: np.ndarray, num_frames: int,
                  smooth_frames: int) -> np.ndarray:
    """Interpolates (N, 4) boxes seen at frames ``found_at`` to every frame, then smooths."""
    every_frame = np.arange(num_frames)
    track = np.stack([np.interp(every_frame, found_at, boxes[:, k]) for k in range(4)], axis=1)
    # a median across a few detections drops one-off false boxes, the mean removes jitter
    half = smooth_frames // 2
    padded = np.pad(track, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, smooth_frames, axis=0)
    return np.median(windows, axis=-1)


def mux_audio(video_path: PathLike, wav: np.ndarray, sample_rate: int, out_path: PathLike,
              metadata: dict[str, str] | None = None, force: bool = False) -> Path:
    """Writes the video stream of ``video_path`` with ``wav`` as its only audio track (mp4).

    The video is re-encoded frame by frame to H.264 at the source frame rate, so frame count,
    frame rate and duration are kept; the audio is AAC, padded or cut to the video duration.
    Written to a temporary file, then renamed (an interrupted run leaves no half file).

    Args:
        wav: (T,) float32 mono waveform in [-1, 1].
        sample_rate: Hz of ``wav``.
        metadata: container tags (e.g. ``{"comment": "SYNTHETIC SPEECH ..."}``).

    Returns:
        The written path.

    Raises:
        FileExistsError: ``out_path`` exists and ``force`` is False.
    """
    import av

    out = Path(out_path)
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=out.suffix or ".mp4", dir=out.parent, prefix=".tmp-")
    os.close(handle)
    try:
        with av.open(str(video_path)) as source, av.open(tmp, mode="w", format="mp4") as target:
            for key, value in (metadata or {}).items():
                target.metadata[key] = value
            _write_streams(source, target, wav, sample_rate)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _write_streams(source: Any, target: Any, wav: np.ndarray, sample_rate: int) -> None:
    import av

    in_video = source.streams.video[0]
    rate = Fraction(in_video.average_rate or in_video.guessed_rate).limit_denominator(1001)
    video = target.add_stream("libx264", rate=rate)
    video.width, video.height = in_video.codec_context.width, in_video.codec_context.height
    video.pix_fmt = "yuv420p"
    video.options = {"crf": "20", "preset": "veryfast"}
    audio = target.add_stream("aac", rate=sample_rate, layout="mono")
    num_frames = 0
    for index, frame in enumerate(source.decode(in_video)):
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1) / rate
        target.mux(video.encode(frame))
        num_frames += 1
    target.mux(video.encode(None))
    length = int(round(num_frames / float(rate) * sample_rate))
    samples = np.zeros(length, dtype=np.float32)
    samples[: min(length, len(wav))] = np.clip(wav[:length], -1.0, 1.0)
    frame_size = 1024
    for start in range(0, length, frame_size):
        chunk = samples[start:start + frame_size][None]
        block = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
        block.sample_rate, block.pts = sample_rate, start
        target.mux(audio.encode(block))
    target.mux(audio.encode(None))
