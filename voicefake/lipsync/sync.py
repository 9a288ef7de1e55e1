"""Audio-visual sync measurement without training: lip opening vs. audio loudness.

How it works (a handful of correlations, so every number can be explained):

1. **Visual speech signal**: the inner and outer lip opening of every frame
   (:func:`voicefake.lipsync.mouth.lip_openings`: dlib landmarks, in inter-ocular distances).
   The signal is geometric, so its meaning is the same on every face: lips apart -> sound.
2. **Audio speech signal**: log-energy of the one mel front end (mean of the natural-log mel,
   :data:`voicefake.audio.features.MEL_16K_80`) averaged over each video frame's interval.
3. Both are temporally high-passed (minus a ``w``-frame moving average: removes head motion,
   lighting and loudness drift slower than ``w`` frames) for a few widths ``w``.
4. **Lag curve**: for each lag ``k`` in ``[-max_offset, +max_offset]`` the correlation of the
   lip signal at ``t`` with the audio at ``t + k`` over the frames where both exist, averaged
   (Fisher z) over both openings and all widths.
5. **Offset** = the lag with the highest curve value. Sign convention: ``offset_frames > 0``
   means the **audio lags the video** (you hear a sound after the lips make it); delaying the
   audio of an in-sync video by ``d`` frames gives ``offset_frames == d``.
6. **Confidence** (SyncNet's definition, on our curve) = the curve's peak minus its median
   over the searched lags: how clearly one offset stands out. It says how far to trust
   ``offset_frames``; unrelated audio still finds *some* best lag, so it is not zero there.
7. **Sync score** = the curve's best value at lags -1..+1: how well the lips follow this audio
   as it is, without moving it. Real talking-face videos (GRID) score 0.46-0.72, audio of
   another speaker's clip median 0.18 (90 % below 0.43). ``in_sync`` = ``sync_score >= threshold`` and
   ``|offset_frames| <= in_sync_frames``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d

from voicefake.audio.features import MEL_16K_80, MelConfig, MelSpectrogram


@dataclass(frozen=True)
class SyncConfig:
    """Settings of the sync measurement.

    Attributes:
        max_offset: search window, +- video frames.
        highpass_frames: moving-average widths ``w`` (frames) of the temporal high-pass.
        threshold: sync score at or above which audio is taken to move with the lips.
        in_sync_frames: largest |offset| still called in sync, frames.
        min_overlap: fewest overlapping frames a lag needs to be scored.
    """

    max_offset: int = 15
    highpass_frames: tuple[int, ...] = (9, 11, 13)
    threshold: float = 0.40
    in_sync_frames: int = 1
    min_overlap: int = 20

    def __post_init__(self) -> None:
        if self.max_offset < 1 or self.min_overlap < 4 or not self.highpass_frames:
            raise ValueError(f"bad SyncConfig: max_offset={self.max_offset}, min_overlap="
                             f"{self.min_overlap}, highpass_frames={self.highpass_frames}")


@dataclass
class SyncResult:
    """Outcome of a sync measurement.

    Attributes:
        offset_frames: audio delay relative to the lips, video frames (> 0: audio late).
        offset_ms: the same in milliseconds.
        confidence: peak minus median of the lag curve (how distinct the offset is).
        sync_score: best curve value at lags -1..+1 (do the lips follow the audio as it is).
        in_sync: sync_score >= threshold and |offset_frames| <= in_sync_frames.
        lags: (L,) candidate offsets, frames.
        curve: (L,) correlation per lag (nan where the overlap is too short).
        fps: video frame rate.
    """

    offset_frames: int
    offset_ms: float
    confidence: float
    sync_score: float
    in_sync: bool
    lags: np.ndarray
    curve: np.ndarray
    fps: float

    def to_dict(self) -> dict[str, float | int | bool]:
        """The JSON fields of ``voicefake sync``."""
        return {"offset_frames": self.offset_frames, "offset_ms": round(self.offset_ms, 1),
                "confidence": round(self.confidence, 4), "sync_score": round(self.sync_score, 4),
                "in_sync": self.in_sync, "fps": round(self.fps, 3)}


@functools.lru_cache(maxsize=4)
def _mel(mel: MelConfig) -> MelSpectrogram:
    return MelSpectrogram(mel)


def audio_envelope(wav: np.ndarray, sample_rate: int, fps: float,
                   mel: MelConfig = MEL_16K_80) -> np.ndarray:
    """Log-energy of the mel spectrogram averaged over each video frame's interval.

    Args:
        wav: (T,) float32 mono waveform at ``mel.sample_rate``.
        sample_rate: must equal ``mel.sample_rate``.
        fps: video frame rate; frame ``v`` covers ``[v / fps, (v + 1) / fps)`` seconds.

    Returns:
        (A,) float64 natural-log energy per video frame, A = floor(T / sample_rate * fps),
        floored at the 5th percentile of the frames that are not digital silence.
    """
    if sample_rate != mel.sample_rate:
        raise ValueError(f"audio at {sample_rate} Hz; the lip-sync front end needs {mel.sample_rate} Hz")
    with torch.inference_mode():
        energy = _mel(mel)(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None])
    energy = energy[0].mean(0).double().numpy()  # (F,) mel frame f is centred on f * hop
    num_video = int(len(wav) / sample_rate * fps)
    if num_video < 1:
        raise ValueError(f"audio of {len(wav) / sample_rate:.3f} s is shorter than one video frame")
    frame_of = np.floor(np.arange(len(energy)) * mel.hop_length / sample_rate * fps).astype(int)
    keep = frame_of < num_video
    sums = np.bincount(frame_of[keep], energy[keep], minlength=num_video)
    counts = np.bincount(frame_of[keep], minlength=num_video)
    envelope = sums / np.maximum(counts, 1)  # every video frame >= 1 mel frame when fps <= 100
    # Digital silence (padding, muted gaps) sits at log(log_floor), far below any recording's
    # noise: raise it to the recording's own noise floor so the step is not taken for speech.
    live = envelope > np.log(mel.log_floor) + 1.0
    floor = np.percentile(envelope[live], 5) if live.any() else envelope.max()
    return np.maximum(envelope, floor)


def highpass(x: np.ndarray, width: int) -> np.ndarray:
    """``x`` minus its ``width``-frame moving average along axis 0 (removes slow drift)."""
    return x - uniform_filter1d(x, width, axis=0, mode="nearest")


def _pairs(num_audio: int, num_video: int, lag: int) -> tuple[slice, slice]:
    """Video and audio slices pairing video frame t with audio frame t + lag."""
    start = max(0, -lag)
    stop = min(num_video, num_audio - lag)
    return slice(start, max(start, stop)), slice(start + lag, max(start, stop) + lag)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.sqrt((a @ a) * (b @ b)) + 1e-12))


def lag_curve(openings: np.ndarray, envelope: np.ndarray, config: SyncConfig) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of lips and audio at every lag (see the module doc, step 4).

    Args:
        openings: (V, S) lip signals (:func:`voicefake.lipsync.mouth.lip_openings`).
        envelope: (A,) audio log-energy per video frame.

    Returns:
        ``(lags, curve)``: (L,) int lags and (L,) correlations (nan: overlap too short).
    """
    openings = np.asarray(openings, dtype=np.float64).reshape(len(openings), -1)
    lags = np.arange(-config.max_offset, config.max_offset + 1)
    z = np.zeros(len(lags))
    for width in config.highpass_frames:
        audio, visual = highpass(envelope, width), highpass(openings, width)
        for column in visual.T:
            for i, lag in enumerate(lags):
                video_part, audio_part = _pairs(len(audio), len(column), int(lag))
                if video_part.stop - video_part.start < config.min_overlap:
                    z[i] = np.nan
                    continue
                z[i] += np.arctanh(np.clip(_corr(column[video_part], audio[audio_part]), -0.999, 0.999))
    return lags, np.tanh(z / (len(config.highpass_frames) * openings.shape[1]))


def measure_sync(openings: np.ndarray, envelope: np.ndarray, fps: float,
                 config: SyncConfig | None = None) -> SyncResult:
    """Finds the audio-video offset, its confidence and the as-is sync score.

    Args:
        openings: (V, S) lip signals per video frame (:attr:`MouthTrack.openings`).
        envelope: (A,) audio log-energy per video frame (:func:`audio_envelope`), A may differ
            from V (frames past either end are simply not paired).
        fps: video frame rate.

    Returns:
        :class:`SyncResult`.

    Raises:
        ValueError: too few frames to search +- ``config.max_offset``.
    """
    config = config or SyncConfig()
    lags, curve = lag_curve(openings, envelope, config)
    if not np.any(np.isfinite(curve)):
        raise ValueError(f"{len(openings)} video frames and {len(envelope)} audio frames overlap by "
                         f"less than {config.min_overlap} frames at every offset; use a longer clip")
    best = int(lags[np.nanargmax(curve)])
    confidence = float(np.nanmax(curve) - np.nanmedian(curve))
    near = curve[np.abs(lags) <= 1]
    sync_score = float(np.nanmax(near)) if np.any(np.isfinite(near)) else -1.0
    in_sync = sync_score >= config.threshold and abs(best) <= config.in_sync_frames
    return SyncResult(best, best * 1000.0 / fps, confidence, sync_score, bool(in_sync), lags, curve, fps)


def visual_signal(openings: np.ndarray, config: SyncConfig | None = None) -> np.ndarray:
    """One visual speech signal per frame: the high-passed lip openings, standardised and averaged.

    Returns:
        (V,) float64 with zero mean and unit variance (louder speech where it is high).
    """
    config = config or SyncConfig()
    width = config.highpass_frames[len(config.highpass_frames) // 2]
    visual = highpass(np.asarray(openings, dtype=np.float64).reshape(len(openings), -1), width)
    visual = (visual - visual.mean(0)) / (visual.std(0) + 1e-9)
    signal = visual.mean(1)
    return (signal - signal.mean()) / (signal.std() + 1e-9)
