"""Audio-visual sync measurement without training: mouth appearance vs. audio loudness.

How it works (every step is a few lines of linear algebra, so every number can be explained):

1. **Visual speech features**: the mouth crop of each video frame (lower third of the tracked
   face, 48x24 grey pixels), temporally high-passed (minus a ``w``-frame moving average, which
   removes lighting drift and head motion slower than ``w`` frames) and reduced to its first
   ``k`` principal components *of this video*: (V, k).
2. **Audio speech signal**: log-energy of the one mel front end (mean of the natural-log mel,
   :data:`voicefake.audio.features.MEL_16K_80`) averaged over each video frame's interval and
   high-passed the same way: (A,) at the video frame rate.
3. **Lag curve**: for each lag ``k`` in ``[-max_offset, +max_offset]`` a ridge regression
   predicts the audio signal at ``t + k`` from the mouth features at ``t`` using only the
   frames where both exist; the curve is the correlation of prediction and audio, corrected
   for chance fit (adjusted R^2, so lags with less overlap get no advantage), averaged over a small ensemble of (``w``, ``k``) settings. Which mouth shapes go with loud
   sound differs between faces (dark open mouth, bright teeth), so the mapping is fitted per
   video instead of being fixed; the ensemble removes the sensitivity to any one setting.
4. **Offset** = the lag with the highest curve value. Sign convention: ``offset_frames > 0``
   means the **audio lags the video** (you hear a sound after the lips make it); delaying the
   audio of an in-sync video by ``d`` frames gives ``offset_frames == d``.
5. **Confidence** = cross-validated correlation at the found offset (best of offset +-1): the ridge map is fitted
   on 4/5 of the frames and scored on the held-out 1/5 (5 contiguous folds), averaged over the
   ensemble. It reads "how well these lips predict the loudness of this audio on frames the
   fit never saw": about 0 for audio that does not belong to the face, 0.4-0.7 for real
   talking-face videos (GRID). ``in_sync`` is ``confidence >= threshold`` and
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
        components: numbers ``k`` of mouth principal components.
        ridge: ridge strength (relative to the mean feature variance) for the lag curve.
        cv_ridge: ridge strength for the cross-validated confidence.
        cv_folds: contiguous folds of the cross-validation.
        threshold: confidence at or above which audio is taken to belong to the lips.
        in_sync_frames: largest |offset| still called in sync, frames.
        min_overlap: fewest overlapping frames a lag needs to be scored.
    """

    max_offset: int = 15
    highpass_frames: tuple[int, ...] = (5, 7, 9)
    components: tuple[int, ...] = (8, 16)
    ridge: float = 1.0
    cv_ridge: float = 10.0
    cv_folds: int = 5
    threshold: float = 0.30
    in_sync_frames: int = 1
    min_overlap: int = 20

    def __post_init__(self) -> None:
        if self.max_offset < 1 or self.min_overlap < self.cv_folds * 2:
            raise ValueError(f"bad SyncConfig: max_offset={self.max_offset}, "
                             f"min_overlap={self.min_overlap} (need >= 1 and >= 2 * cv_folds)")


@dataclass
class SyncResult:
    """Outcome of a sync measurement.

    Attributes:
        offset_frames: audio delay relative to the lips, video frames (> 0: audio late).
        offset_ms: the same in milliseconds.
        confidence: cross-validated lips->loudness correlation at the offset (see module doc).
        in_sync: confidence >= threshold and |offset_frames| <= in_sync_frames.
        lags: (L,) candidate offsets, frames.
        curve: (L,) mean Fisher-z correlation per lag (nan where the overlap is too short).
        fps: video frame rate.
    """

    offset_frames: int
    offset_ms: float
    confidence: float
    in_sync: bool
    lags: np.ndarray
    curve: np.ndarray
    fps: float

    def to_dict(self) -> dict[str, float | int | bool]:
        """The JSON fields of ``voicefake sync``."""
        return {"offset_frames": self.offset_frames, "offset_ms": round(self.offset_ms, 1),
                "confidence": round(self.confidence, 4), "in_sync": self.in_sync,
                "fps": round(self.fps, 3)}


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


def mouth_components(crops: np.ndarray, width: int, num: int) -> np.ndarray:
    """High-passed mouth crops -> their first ``num`` principal components (this video's).

    Args:
        crops: (V, h, w) mouth crops in [0, 1].

    Returns:
        (V, min(num, V)) component scores.
    """
    pixels = highpass(crops.reshape(len(crops), -1).astype(np.float64), width)
    pixels -= pixels.mean(0)
    left, singular, _ = np.linalg.svd(pixels, full_matrices=False)
    num = min(num, len(singular))
    return left[:, :num] * singular[:num]


def _pairs(num_audio: int, num_video: int, lag: int) -> tuple[slice, slice]:
    """Video and audio slices pairing video frame t with audio frame t + lag."""
    start = max(0, -lag)
    stop = min(num_video, num_audio - lag)
    return slice(start, max(start, stop)), slice(start + lag, max(start, stop) + lag)


def _ridge(features: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Ridge weights for centred ``features`` (N, D) and ``target`` (N,)."""
    gram = features.T @ features
    # ridge relative to the mean variance, so one strength suits any pixel scale
    penalty = strength * np.trace(gram) / gram.shape[0] + 1e-9
    return np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), features.T @ target)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.sqrt((a @ a) * (b @ b)) + 1e-12))


def fitted_corr(features: np.ndarray, target: np.ndarray, strength: float) -> float:
    """In-sample correlation of ``target`` (N,) with its ridge prediction from (N, D)."""
    features = features - features.mean(0)
    target = target - target.mean()
    return _corr(features @ _ridge(features, target, strength), target)


def adjusted_corr(features: np.ndarray, target: np.ndarray, strength: float) -> float:
    """:func:`fitted_corr` corrected for chance fit: sqrt of the adjusted R^2 (0 if negative).

    A fit with D features on N frames reaches R^2 ~ D / N on pure noise, so lags with less
    overlap (larger |lag|) would win by chance; the adjustment
    ``1 - (1 - R^2) (N - 1) / (N - D - 1)`` puts every lag on the same footing.
    """
    num, dims = features.shape
    r = fitted_corr(features, target, strength)
    adjusted = 1.0 - (1.0 - r * r) * (num - 1) / max(num - dims - 1, 1)
    return float(np.sqrt(max(adjusted, 0.0)))


def cv_corr(features: np.ndarray, target: np.ndarray, strength: float, folds: int) -> float:
    """Correlation of ``target`` (N,) with its ridge prediction from (N, D), each fold held out."""
    num = len(target)
    fold_of = np.arange(num) * folds // num
    prediction = np.empty(num)
    for fold in range(folds):
        test = fold_of == fold
        train_x, train_y = features[~test], target[~test]
        mean_x, mean_y = train_x.mean(0), train_y.mean()
        weights = _ridge(train_x - mean_x, train_y - mean_y, strength)
        prediction[test] = (features[test] - mean_x) @ weights + mean_y
    return _corr(prediction, target)


def measure_sync(crops: np.ndarray, envelope: np.ndarray, fps: float,
                 config: SyncConfig | None = None) -> SyncResult:
    """Finds the audio-video offset and the sync confidence.

    Args:
        crops: (V, h, w) mouth crops in [0, 1] (:func:`voicefake.audio.video.mouth_crops`).
        envelope: (A,) audio log-energy per video frame (:func:`audio_envelope`), A may differ
            from V (frames past either end are simply not paired).
        fps: video frame rate.

    Returns:
        :class:`SyncResult`.

    Raises:
        ValueError: too few frames to search +- ``config.max_offset``.
    """
    config = config or SyncConfig()
    lags = np.arange(-config.max_offset, config.max_offset + 1)
    curves, settings = [], []
    for width in config.highpass_frames:
        audio = highpass(envelope, width)
        for num in config.components:
            visual = mouth_components(crops, width, num)
            settings.append((audio, visual))
            curves.append([_lag_score(audio, visual, int(lag), config) for lag in lags])
    curve = np.mean(np.arctanh(np.clip(np.array(curves), -0.999, 0.999)), axis=0)
    if not np.any(np.isfinite(curve)):
        raise ValueError(f"{len(crops)} video frames and {len(envelope)} audio frames overlap by less "
                         f"than {config.min_overlap} frames at every offset; use a longer clip")
    best = int(lags[np.nanargmax(curve)])
    # the offset is only good to +-1 frame, so the confidence takes the best lag near it
    confidence = max(_confidence(settings, lag, config) for lag in (best - 1, best, best + 1))
    in_sync = confidence >= config.threshold and abs(best) <= config.in_sync_frames
    return SyncResult(best, best * 1000.0 / fps, confidence, bool(in_sync), lags, curve, fps)


def _confidence(settings: list[tuple[np.ndarray, np.ndarray]], lag: int, config: SyncConfig) -> float:
    """Mean cross-validated correlation over the ensemble at ``lag`` (-1 if too little overlap)."""
    scores = []
    for audio, visual in settings:
        video_part, audio_part = _pairs(len(audio), len(visual), lag)
        if video_part.stop - video_part.start < config.min_overlap:
            return -1.0
        scores.append(cv_corr(visual[video_part], audio[audio_part], config.cv_ridge, config.cv_folds))
    return float(np.mean(scores))


def _lag_score(audio: np.ndarray, visual: np.ndarray, lag: int, config: SyncConfig) -> float:
    video_part, audio_part = _pairs(len(audio), len(visual), lag)
    if video_part.stop - video_part.start < config.min_overlap:
        return float("nan")
    return adjusted_corr(visual[video_part], audio[audio_part], config.ridge)


def predicted_envelope(crops: np.ndarray, envelope: np.ndarray, offset: int,
                       config: SyncConfig | None = None) -> np.ndarray:
    """The audio loudness the lips predict for every video frame (a 1-D visual speech signal).

    The ridge map is fitted at ``offset`` (as found by :func:`measure_sync`) with the middle
    setting of the ensemble, then applied to every frame.

    Returns:
        (V,) predicted high-passed log-energy, in the units of the audio signal.
    """
    config = config or SyncConfig()
    width = config.highpass_frames[len(config.highpass_frames) // 2]
    num = config.components[0]
    audio, visual = highpass(envelope, width), mouth_components(crops, width, num)
    video_part, audio_part = _pairs(len(audio), len(visual), offset)
    mean_x, mean_y = visual[video_part].mean(0), audio[audio_part].mean()
    weights = _ridge(visual[video_part] - mean_x, audio[audio_part] - mean_y, config.ridge)
    return (visual - mean_x) @ weights + mean_y
