"""Aligning new speech to a face's mouth movements: global shift + clamped DTW warp + WSOLA.

Pipeline (:func:`align_speech`):

1. :func:`voicefake.lipsync.sync.measure_sync` finds the global offset of the new speech
   against the lips (+-``max_offset`` frames).
2. DTW between the speech loudness signal and the lips' opening
   (:func:`voicefake.lipsync.sync.visual_signal`), restricted to a band of
   +-``band`` frames around the global offset, gives a monotonic frame map
   video frame -> speech frame.
3. The map is smoothed and its local slope clamped to ``[min_rate, max_rate]`` (speech is
   never sped up or slowed down beyond that: 0.8-1.25 keeps it natural).
4. :func:`wsola` renders the speech along the map, keeping pitch (waveform-similarity
   overlap-add moves whole pitch periods, it never resamples).

Conventions: ``T`` samples, ``V`` video frames. A *rate* is input seconds consumed per output
second (> 1: speech played faster); a *stretch* is its inverse (output/input duration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voicefake.lipsync.sync import (
    SyncConfig,
    SyncResult,
    audio_envelope,
    highpass,
    measure_sync,
    visual_signal,
)


@dataclass(frozen=True)
class AlignConfig:
    """Settings of the alignment.

    Attributes:
        band: DTW search band around the global offset, +- video frames.
        smooth_frames: moving-average width applied to the DTW map, frames.
        min_rate: slowest allowed playback rate (input s per output s).
        max_rate: fastest allowed playback rate.
        warp: also apply the DTW warp (off by default: on GRID it aligned fewer clips than
            the global shift alone, see docs/benchmarks/lipsync.md).
    """

    band: int = 4
    smooth_frames: int = 9
    min_rate: float = 0.8
    max_rate: float = 1.25
    warp: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= 1.0 <= self.max_rate:
            raise ValueError(f"need 0 < min_rate <= 1 <= max_rate; got {self.min_rate}, {self.max_rate}")


@dataclass
class AlignResult:
    """Speech aligned to a video.

    Attributes:
        wav: (T,) float32 aligned speech, exactly the video's duration.
        sample_rate: Hz.
        before: sync of the speech as given.
        after: sync of the aligned speech.
        frame_map: (V,) speech frame (fractional) played at each video frame.
        stretch_min: smallest local stretch (output/input duration) applied.
        stretch_max: largest local stretch applied.
    """

    wav: np.ndarray
    sample_rate: int
    before: SyncResult
    after: SyncResult
    frame_map: np.ndarray
    stretch_min: float
    stretch_max: float


def wsola(wav: np.ndarray, sample_rate: int, out_times: np.ndarray, in_times: np.ndarray,
          num_samples: int, frame_ms: float = 30.0, tolerance_ms: float = 10.0) -> np.ndarray:
    """Time-warps speech along a monotonic map, keeping its pitch (WSOLA).

    Output sample ``t`` plays input sample ``interp(t, out_times, in_times)``; each 50 %-overlap
    Hann frame is taken from within +-``tolerance_ms`` of that position, at the lag that best
    continues the previous frame (normalised cross-correlation), so pitch periods line up.
    Positions outside the input play silence.

    Args:
        wav: (T,) float32 mono input.
        sample_rate: Hz.
        out_times: (N,) increasing output positions, samples.
        in_times: (N,) matching input positions, samples (non-decreasing).
        num_samples: output length, samples.

    Returns:
        (num_samples,) float32.
    """
    win = 2 * int(frame_ms / 2000 * sample_rate)
    hop, tol = win // 2, int(tolerance_ms / 1000 * sample_rate)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann: sums to 1 at hop
    pad = win + 2 * tol
    source = np.pad(np.asarray(wav, np.float64), (pad, pad + win))
    starts = np.arange(-hop, num_samples + hop, hop)
    targets = np.interp(starts + hop, out_times, in_times) - hop  # map frame centres
    out = np.zeros(num_samples + 3 * win)
    position = None
    for start, target in zip(starts, targets, strict=True):
        target = int(np.clip(round(target) + pad, tol, len(source) - win - tol - 1))
        if position is not None:
            natural = min(position + hop, len(source) - win)
            target = _best_match(source, target, source[natural:natural + win], tol)
        out[start + win: start + 2 * win] += window * source[target:target + win]
        position = target
    return out[win: win + num_samples].astype(np.float32)


def _best_match(source: np.ndarray, target: int, template: np.ndarray, tol: int) -> int:
    """Start in ``[target - tol, target + tol]`` whose frame best correlates with ``template``."""
    region = source[target - tol: target + tol + len(template)]
    scores = np.correlate(region, template, mode="valid")
    squares = np.concatenate([[0.0], np.cumsum(region**2)])
    energy = squares[len(template):] - squares[:-len(template)]
    # normalise by the candidate's energy so loud frames don't win by level alone
    scores = scores / np.sqrt(energy + 1e-9)
    return target - tol + int(np.argmax(scores))


def time_stretch(wav: np.ndarray, sample_rate: int, stretch: float) -> np.ndarray:
    """Uniform pitch-preserving stretch: output is ``stretch`` times as long (WSOLA).

    Returns:
        (round(T * stretch),) float32.
    """
    num = int(round(len(wav) * stretch))
    return wsola(wav, sample_rate, np.array([0.0, num]), np.array([0.0, len(wav)]), num)


def dtw_map(visual: np.ndarray, audio: np.ndarray, offset: int, band: int) -> np.ndarray:
    """Monotonic DTW map video frame -> audio frame within +-``band`` of ``v + offset``.

    Args:
        visual: (V,) visual speech signal (standardised lip opening).
        audio: (A,) audio loudness signal.

    Returns:
        (V,) float audio frame matched to each video frame (mean over the path).
    """
    zv = (visual - visual.mean()) / (visual.std() + 1e-9)
    za = (audio - audio.mean()) / (audio.std() + 1e-9)
    num_v, num_a = len(zv), len(za)
    cols = np.arange(-band, band + 1)
    # cost[v, c]: video frame v against audio frame v + offset + cols[c] (outside -> silence)
    index = np.arange(num_v)[:, None] + offset + cols[None]
    inside = (index >= 0) & (index < num_a)
    values = np.where(inside, za[np.clip(index, 0, num_a - 1)], za.min())
    cost = (zv[:, None] - values) ** 2
    total = np.full_like(cost, np.inf)
    total[0] = cost[0]
    moves = np.zeros(cost.shape, dtype=np.int8)
    for v in range(1, num_v):
        # from (v-1, c) diagonal; (v-1, c+1) audio held (slower); (v-1, c-1) audio skips one
        options = np.stack([total[v - 1], np.r_[total[v - 1, 1:], np.inf],
                            np.r_[np.inf, total[v - 1, :-1]]])
        moves[v] = np.argmin(options, axis=0)
        total[v] = cost[v] + options[moves[v], np.arange(len(cols))]
    path = np.empty(num_v, dtype=int)
    path[-1] = int(np.argmin(total[-1]))
    for v in range(num_v - 1, 0, -1):
        path[v - 1] = path[v] + (0, 1, -1)[moves[v, path[v]]]
    return np.arange(num_v) + offset + cols[path].astype(float)


def clamp_map(frame_map: np.ndarray, smooth_frames: int, min_rate: float,
              max_rate: float) -> np.ndarray:
    """Smooths a frame map and clamps its slope (playback rate) to ``[min_rate, max_rate]``.

    The mean lag (map minus frame index) is kept, so clamping never undoes the global shift.
    """
    half = smooth_frames // 2
    padded = np.pad(frame_map, (half, half), mode="edge")
    smooth = np.convolve(padded, np.ones(smooth_frames) / smooth_frames, mode="valid")
    steps = np.clip(np.diff(smooth), min_rate, max_rate)
    clamped = np.concatenate([[0.0], np.cumsum(steps)])
    return clamped + np.mean(frame_map - clamped)


def align_speech(openings: np.ndarray, fps: float, wav: np.ndarray, sample_rate: int,
                 sync_config: SyncConfig | None = None,
                 config: AlignConfig | None = None) -> AlignResult:
    """Aligns speech to the mouth movements of a video.

    Args:
        openings: (V, S) lip signals of the video (:attr:`MouthTrack.openings`).
        fps: video frame rate.
        wav: (T,) float32 speech at ``sample_rate`` (16 kHz, the mel front end's rate).

    Returns:
        :class:`AlignResult` whose ``wav`` lasts exactly V / fps seconds.
    """
    sync_config = sync_config or SyncConfig()
    config = config or AlignConfig()
    envelope = audio_envelope(wav, sample_rate, fps)
    before = measure_sync(openings, envelope, fps, sync_config)
    num_video = len(openings)
    frame_map = np.arange(num_video, dtype=float) + before.offset_frames
    if config.warp:
        visual = visual_signal(openings, sync_config)
        width = sync_config.highpass_frames[len(sync_config.highpass_frames) // 2]
        raw = dtw_map(visual, highpass(envelope, width), before.offset_frames, config.band)
        frame_map = clamp_map(raw, config.smooth_frames, config.min_rate, config.max_rate)
    samples_per_frame = sample_rate / fps
    # frame_map[v] is the speech frame whose start plays at the start of video frame v
    out_times = np.arange(num_video + 1) * samples_per_frame
    in_times = np.r_[frame_map, frame_map[-1] + (frame_map[-1] - frame_map[-2])] * samples_per_frame
    num_samples = int(round(num_video * samples_per_frame))
    aligned = wsola(wav, sample_rate, out_times, in_times, num_samples)
    after = measure_sync(openings, audio_envelope(aligned, sample_rate, fps), fps, sync_config)
    rates = np.diff(in_times) / samples_per_frame
    return AlignResult(aligned, sample_rate, before, after, frame_map,
                       float(1.0 / rates.max()), float(1.0 / rates.min()))
