"""Analysis verbs: who is speaking (speaker), is it synthetic (detection), is it in sync (lip-sync)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from voicefake import __version__
from voicefake.api.core import AudioInput, Loaded, PathLike, _as_wave, _mel_module, load
from voicefake.api.generation import synthetic_metadata, watermark_generated
from voicefake.audio.features import MelSpectrogram
from voicefake.audio.io import AudioError, load_audio

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- speaker


@dataclass(frozen=True)
class Verification:
    """The answer to "is the test recording the enrolled speaker?".

    Attributes:
        cosine: cosine similarity of the two embeddings, in [-1, 1].
        p_same: calibrated same-speaker probability in [0, 1] (50/50 prior).
        same: ``score >= threshold``.
        threshold: the decision threshold on the score (1 % false accepts on dev trials).
        score: what is calibrated and thresholded: the cosine, or for a model with a cohort
            (the bundled one) the AS-norm score (:meth:`SpeakerEncoder.score`, unbounded).
        channel: for a test recording whose channels were checked apart (the legs of a stereo
            call), the channel of the fields above: the one that matches best (0 = left).
        channels: then, one :class:`Verification` per checked channel; empty otherwise.
        segments: with ``timeline=True``, the check on windows of the recording (or leg):
            ``{"start", "end", "score", "p_same", "same"}`` (seconds), windows of
            :data:`SPEAKER_WINDOW_S` every :data:`SPEAKER_HOP_S` with at least half their
            length of speech. Evidence of *where* a voice is heard in a call that holds two;
            the decision above stays the whole recording's (or leg's).
    """

    cosine: float
    p_same: float
    same: bool
    threshold: float
    score: float = float("nan")
    channel: int | None = None
    channels: tuple[Verification, ...] = ()
    segments: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict, rounded; ``channel`` and ``channels`` only when the channels were
        checked apart."""
        out: dict[str, Any] = {"cosine": round(self.cosine, 4), "p_same": round(self.p_same, 4), "same": self.same,
                               "score": round(self.score, 4), "threshold": round(self.threshold, 4)}
        if self.channels:
            out["channel"] = self.channel
            out["channels"] = [{"channel": c.channel, **c.to_dict()} for c in self.channels]
        if self.segments:
            out["segments"] = [dict(seg) for seg in self.segments]
        return out


SPEAKER_WINDOW_S = 3.0
"""Window of the speaker timeline (``verify_embedding(timeline=True)``), seconds."""
SPEAKER_HOP_S = 1.5
"""Hop of the speaker timeline, seconds."""


def _speaker(checkpoint: PathLike, device: str) -> tuple[Loaded, MelSpectrogram]:
    model = load(checkpoint, device, kind="speaker")
    mel_cfg = model.checkpoint.mel_config
    assert mel_cfg is not None
    return model, _mel_module(mel_cfg).to(model.device)


def embed(audio: AudioInput, checkpoint: PathLike = "speaker", device: str = "cpu",
          name: str | None = None, centre: bool = True) -> np.ndarray:
    """Speaker embedding of one recording (path, bytes or 16 kHz waveform; 8 kHz files are
    upsampled on load).

    Only the speech regions are used; long inputs are the mean of 1.6 s windows every 0.8 s.
    At least 0.5 s of audio is required, and 1.5 s or more of speech is recommended.
    ``centre=False`` leaves out the model's embedding centre: the raw embedding that voice
    profiles condition the conversion decoder on (compare embeddings of one kind only).

    Returns:
        (D,) float32 unit-norm embedding (D = 256 for the bundled model).

    Raises:
        AudioError: unreadable, silent or non-finite audio. ValueError: shorter than 0.5 s.

    Example:
        >>> emb = embed("cfo_call.wav")
        >>> emb.shape
        (256,)
    """
    from voicefake.speaker.inference import embed_wave

    model, features = _speaker(checkpoint, device)
    wav = _as_wave(audio, features.config.sample_rate, name)
    return embed_wave(model.module, features, wav, model.device, centre)  # type: ignore[arg-type]


def embed_speaker(clips: Sequence[AudioInput], checkpoint: PathLike = "speaker", device: str = "cpu",
                  centre: bool = True) -> np.ndarray:
    """Enrollment embedding of one speaker: the renormalised mean of the clips' embeddings.

    Clips under the encoder's 0.5 s (a "yes", the tail of a cut recording) are left out, with a
    warning; when every clip is that short, they are embedded joined together.

    Returns:
        (D,) float32 unit-norm embedding.

    Raises:
        ValueError: under 0.5 s of audio in all.

    Example:
        >>> cfo = embed_speaker(["cfo_1.wav", "cfo_2.wav", "cfo_3.wav"])
    """
    from voicefake.speaker.inference import MIN_SECONDS, embed_wave, mean_embedding

    if isinstance(clips, (str, bytes, os.PathLike, np.ndarray)):
        clips = [clips]
    model, features = _speaker(checkpoint, device)
    wavs = [_as_wave(clip, features.config.sample_rate) for clip in clips]
    if not wavs:
        raise ValueError("no enrollment clips given: pass one or more recordings of the speaker")
    long_enough = [w for w in wavs if len(w) >= MIN_SECONDS * features.config.sample_rate]
    if len(long_enough) < len(wavs):
        log.warning("%d of %d clips of one speaker are under %.1f s: %s", len(wavs) - len(long_enough), len(wavs),
                    MIN_SECONDS, "left out of the speaker embedding" if long_enough else "embedded joined together")
    return mean_embedding([embed_wave(model.module, features, w, model.device, centre)  # type: ignore[arg-type]
                           for w in long_enough or [np.concatenate(wavs)]])


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two (D,) speaker embeddings (from :func:`embed`), in [-1, 1].

    Example:
        >>> similarity(embed("a.wav"), embed("b.wav"))
        0.83
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"embeddings must have the same non-zero size, got {a.shape} and {b.shape}")
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def verify(enroll: AudioInput | Sequence[AudioInput], test: AudioInput, checkpoint: PathLike = "speaker",
           device: str = "cpu") -> Verification:
    """Is ``test`` spoken by the enrolled speaker? Enrollment from several clips averages them.

    ``p_same`` comes from a logistic calibration of the score (the cosine, or the AS-norm score
    for a model with a cohort, such as the bundled one) fitted on the speaker-disjoint dev
    trials (LibriSpeech test-other, clean and phone-line), and ``same`` is decided at the score
    threshold that gave 1 % false accepts on those trials (both stored in the checkpoint's
    ``metadata["calibration"]``; see its MODEL_CARD.md).

    Args:
        enroll: one recording or a list of recordings of the claimed speaker.
        test: the recording to check.

    Returns:
        :class:`Verification` (cosine, p_same, same, threshold, score).

    Example:
        >>> result = verify(["cfo_1.wav", "cfo_2.wav"], "incoming_call.wav")
        >>> result.same, round(result.p_same, 2)
        (True, 0.97)
    """
    return verify_embedding(embed_speaker(enroll, checkpoint, device), test, checkpoint, device)  # type: ignore[arg-type]


def verify_embedding(enrolled: np.ndarray, test: AudioInput, checkpoint: PathLike = "speaker",
                     device: str = "cpu", name: str | None = None, channels: str = "auto",
                     timeline: bool = False) -> Verification:
    """:func:`verify` against an already enrolled (D,) embedding (from :func:`embed_speaker`).

    ``test`` may be a path, bytes, or a 16 kHz waveform (T,) or (T, channels). The two legs of a
    stereo call recording hold two people, so by default (``channels="auto"``, as in
    :func:`detect`; :func:`voicefake.audio.legs.plan_channels`) each leg is checked on its
    own speech (the other party's turns cut out: :func:`voicefake.audio.legs.leg_speech`), and
    the result is the best-matching leg's, with every leg in ``.channels``.
    ``"mix"`` averages the channels, ``"split"`` checks every channel.

    ``timeline=True`` adds ``segments``: the check on 3 s windows, so that in a mono recording
    of two parties the enrolled voice can be placed in time. Only the whole recording (or
    leg) decides ``same``: any one of many windows passes the threshold by chance more often
    than one trial does (docs/benchmarks/speaker.md, session 24, measures how much).

    Example:
        >>> cfo = embed_speaker(["cfo_1.wav", "cfo_2.wav"])
        >>> [verify_embedding(cfo, call).same for call in ("call_1.wav", "call_2.wav")]
        [True, False]
        >>> result = verify_embedding(cfo, "pbx_call.wav")   # stereo: caller left, callee right
        >>> result.channel, [c.same for c in result.channels]
        (1, [False, True])
    """
    from voicefake.audio.io import DEFAULT_MAX_DURATION
    from voicefake.audio.legs import check_channel_mode, own_speech, plan_channels
    from voicefake.speaker.inference import Calibration

    check_channel_mode(channels)  # before any work
    model, features = _speaker(checkpoint, device)
    calibration = Calibration.from_metadata(model.checkpoint.metadata)
    frames = _as_frames(test, features.config.sample_rate, name, DEFAULT_MAX_DURATION)
    apart, _ = plan_channels(frames, channels)
    rate = features.config.sample_rate

    def check(wav: np.ndarray, channel: int | None) -> Verification:
        test_emb = embed(np.ascontiguousarray(wav), checkpoint, device, name)
        with torch.inference_mode():
            pair = [torch.as_tensor(np.asarray(e, np.float32).ravel(), device=model.device)[None]
                    for e in (enrolled, test_emb)]
            score = float(model.module.score(*pair)[0, 0])
        return Verification(similarity(enrolled, test_emb), calibration.p_same(score), score >= calibration.threshold,
                            calibration.threshold, score, channel)

    def windows(wav: np.ndarray) -> tuple[dict[str, Any], ...]:
        from voicefake.audio.io import speech_regions

        regions = speech_regions(wav, rate)
        out = []
        for start in np.arange(0.0, max(wav.size / rate - SPEAKER_WINDOW_S, 0.0) + 1e-9, SPEAKER_HOP_S):
            end = min(wav.size / rate, start + SPEAKER_WINDOW_S)
            speech = sum(max(0.0, min(b, end) - max(a, start)) for a, b in regions)
            if speech < 0.5 * SPEAKER_WINDOW_S or end - start < 0.5:
                continue
            one = check(wav[int(start * rate) : int(end * rate)], None)
            out.append({"start": round(float(start), 3), "end": round(float(end), 3), "score": round(one.score, 4),
                        "p_same": round(one.p_same, 4), "same": one.same})
        return tuple(out)

    if not apart:
        mixed = frames.mean(axis=1)
        whole = check(mixed, None)
        return replace(whole, segments=windows(mixed)) if timeline else whole

    def voice_of(channel: int) -> np.ndarray:
        """The leg's own speech (the other party's turns, echo and line noise are not this
        voice), or the whole leg when that is under the encoder's 0.5 s minimum (a party who
        says "yes")."""
        speech, _ = own_speech(frames, channel, rate, apart)
        return speech if speech.size >= rate // 2 else frames[:, channel]

    legs = tuple(check(voice_of(channel), channel) for channel in apart)
    if timeline:  # on each leg as recorded, so that times are the call's
        legs = tuple(replace(leg, segments=windows(frames[:, leg.channel])) for leg in legs)
    best = max(legs, key=lambda leg: leg.score)
    return replace(best, channels=legs)


# ----------------------------------------------------------------------------- detection

DETECT_MAX_SECONDS = 3 * 3600.0
"""Longest recording :func:`detect` reads by default: a long conference call, with room to spare."""


def detect(audio: AudioInput, checkpoint: PathLike = "detection", device: str = "cpu",
           name: str | None = None, window: float = 1.5, hop: float = 0.5,
           evidence: bool = True, threshold: float | None = None, channels: str = "auto",
           max_duration: float | None = DETECT_MAX_SECONDS) -> Any:
    """Is this speech synthetic? A calibrated probability, a decision, a timeline and evidence.

    Args:
        audio: path, file bytes, or a waveform at the detector's rate (16 kHz; files at any
            rate, 8 kHz calls included, are resampled on load): (T,), or (T, channels).
        window / hop: segment timeline window and hop in seconds.
        evidence: also compute saliency (bands and time spans that drove the score).
        threshold: decide at this p_fake for every input instead of the model's threshold for
            the input's bandwidth (see ``DetectionReport.at_threshold``); checked before any work.
        channels: ``"auto"`` scores the two legs of a stereo call recording apart (unless they
            carry one signal, or one is silent), ``"split"`` scores every channel apart,
            ``"mix"`` averages them (:func:`voicefake.audio.legs.plan_channels`).
            Scored apart, the recording is "fake" when any channel is, each of ``n`` channels
            is decided at ``far_target / n`` so that the recording keeps the stated
            false-alarm rate (unless ``threshold`` is given), and ``report.channels`` holds
            one report per channel.
        max_duration: longest file accepted, seconds (default 3 hours; None: no limit).
            Recordings over 10 minutes are scored in 10-minute pieces
            (:func:`voicefake.detection.inference.network_scores`).

    Returns:
        :class:`voicefake.detection.inference.DetectionReport` (``.to_dict()`` for JSON):
        ``p_fake``, ``label`` ("fake"/"real"), ``threshold``, ``segments``, ``evidence``
        (``evidence["channels"]`` says how the channels were used), ``model``, ``duration``
        and, for channels scored apart, ``channels``.

    Example:
        >>> report = detect("call.wav")
        >>> report.label, report.p_fake, report.segments[0]
        ('real', 0.012, {'start': 0.0, 'end': 1.5, 'p_fake': 0.02})
        >>> stereo = detect("pbx_call.wav")  # caller left, callee right
        >>> [(c.evidence["channel"], c.label) for c in stereo.channels]
        [(0, 'real'), (1, 'fake')]
    """
    from voicefake.audio.legs import check_channel_mode, own_speech, plan_channels
    from voicefake.detection.inference import (
        Calibration,
        check_threshold,
        combine_channels,
        detect_waveform,
        prepare,
        threshold_for_legs,
    )

    if threshold is not None:
        check_threshold(threshold)  # before any work
    check_channel_mode(channels)  # before any work
    loaded = load(checkpoint, device, kind="detection")
    rate = loaded.module.config.sample_rate
    frames = _as_frames(audio, rate, name, max_duration)
    meta = loaded.checkpoint.metadata
    calibration = Calibration.from_metadata(meta)
    model = {"name": str(meta.get("name", "detector")), "version": str(meta.get("version", __version__))}
    apart, info = plan_channels(frames, channels)
    if not apart:
        report = detect_waveform(loaded.module, prepare(frames.mean(axis=1), rate), calibration, model, window, hop,
                                 evidence)
        report.evidence["channels"] = info
    else:
        scored = []
        for channel in apart:  # each leg on its own speech: the other party's turns cut out
            speech, kept = own_speech(frames, channel, rate, apart)
            one = detect_waveform(loaded.module, prepare(speech, rate), calibration, model, window, hop, evidence, kept,
                                  len(frames))
            one.evidence["channel"] = channel
            if len(apart) > 1:  # the call, not each leg, keeps the stated false-alarm rate
                leg_threshold = threshold_for_legs(meta.get("dev", {}), one.evidence["bandwidth"]["condition"],
                                                   one.threshold, calibration.far_target / len(apart))
                one = one.decided_at(leg_threshold, "legs")
            scored.append(one)
        report = combine_channels(scored, info)
    return report if threshold is None else report.at_threshold(threshold)


def _as_frames(audio: AudioInput, sample_rate: int, name: str | None, max_duration: float | None) -> np.ndarray:
    """A path, bytes or waveform at ``sample_rate`` -> (T, channels) float32."""
    if isinstance(audio, np.ndarray) and audio.ndim == 2:
        frames = np.asarray(audio, dtype=np.float32)
        if not 0 < frames.shape[1] < frames.shape[0] or not np.all(np.isfinite(frames)):
            raise AudioError(f"{name or '<array>'}: expected a finite (T, channels) waveform with T > channels; "
                             f"got shape {frames.shape}")
        return frames
    if isinstance(audio, np.ndarray):
        return _as_wave(audio, sample_rate, name)[:, None]
    return load_audio(audio, sample_rate, name=name, mono=False, max_duration=max_duration)


def detection_operating_point(threshold: float, checkpoint: PathLike = "detection",
                              condition: str | None = None) -> dict[str, Any] | None:
    """False-alarm and miss rates of the detector's dev data at a p_fake threshold.

    Linear interpolation in the table the calibration stored (thresholds 0, 0.01, ..., 1);
    None for a checkpoint without one.

    Args:
        condition: None for all dev recordings, or "narrowband" / "wideband" for those of one
            bandwidth (checkpoints calibrated with narrowband thresholds; None otherwise).

    Returns:
        ``{"threshold", "far", "miss", "description"}``; for a ``condition`` whose thresholds
        were also checked on re-recorded dev speech (``calibrate.py --chain-reals``, detector
        0.4.0 on), also ``"far_rerecorded"``: the share of those re-recordings flagged.

    Example:
        >>> detection_operating_point(0.9)["far"]
    """
    if condition not in (None, "narrowband", "wideband"):
        raise ValueError(f"condition must be None, 'narrowband' or 'wideband', got {condition!r}")
    dev = load(checkpoint, kind="detection").checkpoint.metadata.get("dev", {})
    roc = dev.get("roc" if condition is None else f"roc_{condition}")
    if not roc:
        return None
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    grid = np.asarray(roc["thresholds"])
    description = dev.get("roc_description", "")
    if condition is not None:
        description = f"the {condition} ones of the {description}"
    point = {"threshold": float(threshold), "far": float(np.interp(threshold, grid, roc["far"])),
             "miss": float(np.interp(threshold, grid, roc["miss"])), "description": description}
    chain = (dev.get("chain_reals") or {}).get(f"roc_{condition}") if condition is not None else None
    if chain:
        point["far_rerecorded"] = float(np.interp(threshold, np.asarray(chain["thresholds"]), chain["far"]))
    return point


# ----------------------------------------------------------------------------- lipsync

LIPSYNC_MODEL = "lipsync-engineered"  # no learned weights of ours: dlib lip landmarks vs loudness (voicefake.lipsync)


def sync_offset(video: PathLike, audio: AudioInput | None = None, name: str | None = None) -> Any:
    """Measures how far a video's soundtrack (or ``audio``) is from its lips, on the CPU.

    Args:
        video: a video with one talking face.
        audio: other speech to test against the face (path, bytes or 16 kHz waveform);
            default: the video's own soundtrack.

    Returns:
        :class:`voicefake.lipsync.sync.SyncResult`: ``offset_frames`` (> 0: audio late),
        ``offset_ms``, ``confidence`` (peak minus median of the lag curve: how distinct the
        offset is), ``sync_score`` (lips-loudness correlation of the audio as it is; below
        ``SyncConfig.threshold`` the audio is not in sync with the lips or does not belong to
        them), ``in_sync``; ``.to_dict()`` gives the JSON fields.

    Raises:
        NoFaceError: no face in the video. AudioError: unreadable audio.

    Example:
        >>> result = sync_offset("talk.mp4")
        >>> result.offset_frames, result.sync_score, result.in_sync
        (0, 0.62, True)
    """
    from voicefake.lipsync.mouth import track_mouth
    from voicefake.lipsync.sync import audio_envelope, measure_sync

    mouth = track_mouth(video, name=name)
    wav = _as_wave(video if audio is None else audio, 16000, name)
    return measure_sync(mouth.openings, audio_envelope(wav, 16000, mouth.fps), mouth.fps)


def align(video: PathLike, speech: AudioInput, output: PathLike | None = None,
          force: bool = False, warp: bool = False, name: str | None = None) -> Any:
    """Aligns new speech to a face's mouth movements; optionally writes the dubbed video.

    Global shift (+-15 frames), plus with ``warp=True`` a monotonic DTW warp clamped to
    0.8-1.25x local stretch, rendered with pitch-preserving WSOLA. With ``output`` the video stream is written
    with the aligned speech as its AAC track (mp4), watermarked and labelled synthetic in its
    metadata (``result.wav`` itself is the unmarked aligned speech).

    Returns:
        :class:`voicefake.lipsync.align.AlignResult` (``wav`` at 16 kHz, ``before`` /
        ``after`` sync results, ``stretch_min`` / ``stretch_max``).

    Example:
        >>> result = align("talk.mp4", "cloned.wav", output="dubbed.mp4")
        >>> result.before.offset_frames, result.after.offset_frames
        (7, 0)
    """
    from voicefake.audio.video import mux_audio
    from voicefake.lipsync.align import AlignConfig, align_speech
    from voicefake.lipsync.mouth import track_mouth

    mouth = track_mouth(video, name=name)
    wav = _as_wave(speech, 16000, name)
    result = align_speech(mouth.openings, mouth.fps, wav, 16000, config=AlignConfig(warp=warp))
    if output is not None:
        wav, note = watermark_generated(result.wav, 16000, LIPSYNC_MODEL)
        mux_audio(video, wav, 16000, output, force=force,
                  metadata=synthetic_metadata(LIPSYNC_MODEL, f"audio aligned to the lips; {note}"))
    return result
