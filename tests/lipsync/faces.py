"""Helpers for lip-sync tests: synthetic talking-face videos: a drawn face whose mouth opening follows a speech envelope."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = 25
RATE = 16000


def speech_like(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T,) 16 kHz harmonic 'syllables' with random loudness, and its (V,) per-frame opening."""
    rng = np.random.default_rng(seed)
    num_frames = int(seconds * FPS)
    opening = np.zeros(num_frames)
    frame = 2
    while frame < num_frames - 9:
        length = int(rng.integers(3, 8))
        opening[frame:frame + length] = rng.uniform(0.4, 1.0) * np.sin(np.linspace(0, np.pi, length))
        frame += length + int(rng.integers(1, 6))
    t = np.arange(int(seconds * RATE)) / RATE
    carrier = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    gain = np.repeat(opening, RATE // FPS)[: len(t)]
    wav = 0.3 * gain * carrier + 0.003 * rng.standard_normal(len(t))
    return wav.astype(np.float32), opening


def draw_face(opening: float, size: tuple[int, int] = (240, 192)) -> np.ndarray:
    """(H, W, 3) uint8 cartoon face (Haar-detectable) with a mouth ``opening`` in [0, 1] open."""
    import cv2

    width, height = size
    image = np.full((height, width, 3), 60, np.uint8)
    cx, cy = width // 2, height // 2
    cv2.ellipse(image, (cx, cy), (52, 68), 0, 0, 360, (170, 180, 200), -1)
    for side in (-1, 1):
        cv2.ellipse(image, (cx + side * 20, cy - 18), (10, 5), 0, 0, 360, (30, 30, 30), -1)
        cv2.line(image, (cx + side * 30, cy - 30), (cx + side * 10, cy - 30), (40, 40, 40), 4)
    cv2.line(image, (cx, cy - 10), (cx, cy + 10), (120, 130, 150), 3)
    cv2.ellipse(image, (cx, cy + 32), (16, 2 + int(12 * opening)), 0, 0, 360, (20, 20, 60), -1)
    return image


def write_video(path: Path, openings: np.ndarray, wav: np.ndarray | None) -> Path:
    """Writes an mp4 (H.264 25 fps, optional AAC 16 kHz mono) of the drawn face."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 240, 192, "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono") if wav is not None else None
        for index, value in enumerate(openings):
            frame = av.VideoFrame.from_ndarray(draw_face(value), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            for start in range(0, len(wav), 1024):
                block = av.AudioFrame.from_ndarray(wav[None, start:start + 1024].copy(), format="fltp",
                                                   layout="mono")
                block.sample_rate, block.pts = RATE, start
                container.mux(audio.encode(block))
            container.mux(audio.encode(None))
    return path


def write_blank(path: Path, num_frames: int) -> Path:
    """Writes an mp4 of flat grey frames (no face)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 160, 128, "yuv420p"
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((128, 160, 3), 90, np.uint8), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path
