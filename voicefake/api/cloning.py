"""Cloning verbs: voice profiles, conversion, text to speech, fine-tuning, call scenarios."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voicefake.api.analysis import embed_speaker
from voicefake.api.core import AudioInput, PathLike, _as_wave, _mel_module, load
from voicefake.api.generation import vocode
from voicefake.checkpoint import Checkpoint, check_same_mel

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- cloning

VoiceReference = Any  # a path, a list of paths/waveforms, a voice-profile directory or a VoiceProfile
MIN_REFERENCE_S = 3.0
# 0 = the decoder alone (most intelligible), 1 = only the target's own matched frames wherever the
# source is voiced (most similar, unintelligible; unvoiced stretches keep the decoder's mel:
# inference.voiced_weight). 0.25 was the measured compromise until session 18; with the embedding
# adaptation below, the decoder alone was closer to the target and kept more words
# (docs/benchmarks/cloning.md, session 18), so it was 0 until session 40. conversion-ref-16k keeps
# enough words to spend some. Session 40, 10 unseen targets, one thread: conversion 0.738 / 12.9 % WER
# at 0; blending every frame, 0.746 / 14.3 % at 0.1 and 0.750 / 16.7 % at 0.15; blending voiced frames
# only, 0.748 / 14.2 % at 0.15 (two threads: the same; docs/benchmarks/cloning.md, session 40). Session
# 43: with conversion-ref-16k's speaker contrast (contrast_for), 0.15 lost more words (0.752 / 16.3 % at
# contrast 0.6) and 0.1 measured 0.751 / 14.9 % at contrast 1, the default now.
# For a zero-shot voice; a fine-tuned one keeps FINETUNED_BLEND (see blend_for).
DEFAULT_BLEND = 0.1
# ... and for a voice whose reference is a call's (conversion-call-16k, no contrast): 0.15, the setting
# its figures were measured at (0.686 / 13.6 % WER, 95 % above source; 0.679 / 11.7 % at 0;
# docs/benchmarks/cloning.md, session 42)
CALL_BLEND = 0.15
# ... and for text to speech (clone): flite's clones lose words faster to the blend. Session 40, two
# threads, 40 clips: 0.697 / 8.9 % WER at 0, 0.709 / 14.6 % at 0.15 on voiced frames (at the edge of the
# 15 % target), 0.704 / 12.2 % at 0.1 (docs/benchmarks/cloning.md, session 40)
DEFAULT_TTS_BLEND = 0.1
# ... and for a fine-tuned voice (its own decoder): 0, the setting its figures were measured at
# (sessions 25-27); its decoder already speaks in the voice
FINETUNED_BLEND = 0.0
# ... and none for a zero-shot voice with less reference than this. Session 40, one thread, the default
# blend against 0: 3 s 0.740 / 17.3 % WER against 0.731 / 14.0 %, 5 s 0.747 / 16.3 % against 0.737 /
# 14.2 %, 10 s 0.744 / 16.7 % against 0.735 / 14.5 %, 30 s 0.748 / 14.2 % against 0.738 / 12.9 %: below
# 30 s the blend crosses the 15 % word target (docs/benchmarks/cloning.md, session 40). Session 42
# measured the lengths between: 20 s 0.746 / 15.9 % against 0.737 / 13.6 % at 0, 25 s 0.747 / 15.6 %:
# still over the target, so the blend waits for 30 s (it was 25 s, unmeasured, in session 40)
MIN_BLEND_SECONDS = 30.0
# the long-term spectrum match (0 = off, 1 = the whole difference). It was 1 (session 12: +0.027
# similarity for +2.1 WER points). With the identity steps below doing most of that work, half of
# it is as close a voice with fewer lost words and higher DNSMOS: on 10 unseen targets, conversion
# 0.709 -> 0.708 similarity, 18.4 -> 17.9 % WER, flite 0.680 -> 0.683, 14.9 -> 12.9 %
# (docs/benchmarks/cloning.md, session 19)
DEFAULT_EQ = 0.5
# the global-variance post-filter (0 = off, 1 = the reference's whole spectral movement): the
# decoder's output moves 8-21 % less than its reference. At 0.5 against off, blend 0, eq 0.5, 10
# steps, on 10 unseen targets: conversion 0.708 -> 0.721 similarity, 17.9 -> 16.5 % WER, DNSMOS
# 2.636 -> 2.659; flite 0.683 -> 0.692, 12.9 -> 12.9 %, 2.621 -> 2.640; at 1, more words lost
# (docs/benchmarks/cloning.md, session 19)
DEFAULT_GV = 0.5
# text to speech: words per minute. At 130 instead of 150, flite's clones lost 14.0 % of words
# instead of 16.4 % and gained similarity and DNSMOS (docs/benchmarks/cloning.md, session 15)
DEFAULT_RATE = 130
# gradient steps that adapt the target embedding to each source so that the speaker encoder hears
# the reference's voice in the output (0 = off). With blend 0, against blend 0.25 without it, on 10
# unseen targets: similarity +0.005-0.011 (Resemblyzer; long-term MFCC statistics agree in 91 % of
# pairs), conversion WER 26.2 -> 18.4 %, espeak-ng 51.8 -> 46.9 %, flite 14.6 -> 14.9 %; DNSMOS
# -0.07 / -0.03 / +0.04; 6-9x slower, still 5x real time or more on 2 threads. speaker-16k is a
# student of the judge (docs/benchmarks/cloning.md, session 18). 5 steps give 0.697 / 17.4 %
# (conversion) at 16x real time, 20 steps no more than 10 (session 19)
DEFAULT_IDENTITY_STEPS = 10
# ... and for a fine-tuned voice (its own decoder): off. On 3 unseen targets x 8 sources, 10 steps
# gave it +0.008 similarity for -0.040 at the worst pair, +3.4 WER points and -0.13 DNSMOS; its
# decoder was tuned at one embedding and moving away from it costs more than it gains
# (docs/benchmarks/cloning.md, session 19)
FINETUNED_IDENTITY_STEPS = 0
# how far the source's intonation is widened or narrowed towards the reference's pitch range
# (conversion.inference.match_pitch_range: 0 = the source's own, 1 = the reference's). The range of 30 s
# of reference (several utterances) is about twice one sentence's: the ratio averaged 1.9 for flite's
# sentences and 2.0 for VCTK's read ones. Session 47, 40 flite clips into 10 unseen targets, one thread:
# 0.709 / 14.5 % WER / DNSMOS 2.675 at 0, 0.712 / 11.1 % / 2.714 at 0.5, 0.715 / 16.0 % / 2.727 at 1; on
# 120 clips 0.719 / 11.7 % / 2.727 at 0 and 0.721 / 11.3 % / 2.764 at 0.5: DNSMOS and the pitch gain,
# similarity and words are level within noise (docs/benchmarks/cloning.md, session 47)
DEFAULT_TTS_PITCH_RANGE = 0.5
# ... and for conversion: 0, the source's own intonation. At 1 the conversions measured 0.750 / 16.4 % WER
# against 0.751 / 14.9 % (session 47): words lost, no voice gained
DEFAULT_PITCH_RANGE = 0.0
# the vocoder's phase refinement for the decoder's mels: one iteration, not the vocoder's own
# default (12, chosen on real speech's mels). On 10 unseen targets, 12 iterations moved conversion
# from DNSMOS 2.679 to 2.536 and flite text to speech from 2.669 to 2.569, with similarity within
# 0.01 and WER within per-clip noise: matched ever closer to the decoder's smooth mel, the output
# loses the network's own fine structure (docs/benchmarks/cloning.md, session 22)
PHASE_ITERATIONS = 1


def _check_phase_iterations(phase_iterations: int | None) -> None:
    if phase_iterations is not None and phase_iterations < 0:
        raise ValueError(f"phase_iterations must be >= 0 (0: the vocoder network alone), got {phase_iterations}")


def _check_contrast(contrast: float | None) -> None:
    if contrast is not None and not contrast >= 0.0:
        raise ValueError(f"contrast must be >= 0 (0: the reference's own embedding), got {contrast}")


def contrast_for(profile: Any, decoder: Any, contrast: float | None = None) -> float:
    """The speaker contrast (:func:`voicefake.conversion.model.contrast_embedding`) that runs
    for ``profile`` through ``decoder`` (a :class:`ConversionDecoder`): ``contrast`` when given,
    otherwise the decoder's own ``speaker_contrast`` (the value its figures were measured at: 1 for
    conversion-ref-16k and 0.5 for conversion-flite-16k since session 43, 0 for the other bundled
    decoders); 0 for a zero-shot voice
    with less than :data:`MIN_BLEND_SECONDS` of reference, and for a fine-tuned voice (its own
    decoder learnt the voice at its plain embedding).

    The contrast takes the place of part of the kNN blend, so it waits for the same length of
    reference. Session 43 (docs/benchmarks/cloning.md; 80 conversions, one thread): with 30 s
    references, contrast 1 at blend 0.1 measured 0.751 / 14.9 % WER against 0.748 / 14.2 % for
    blend 0.15 alone; with 10 s references (blend 0), 0.739 / 17.1 % against 0.735 / 14.5 %: over
    the 15 % word target.

    Example:
        >>> contrast_for(voice_profile("ceo_30s.wav"), load("conversion-ref").module)
        1.0
        >>> contrast_for(voice_profile("ceo_10s.wav"), load("conversion-ref").module)
        0.0
    """
    _check_contrast(contrast)
    if contrast is not None:
        return float(contrast)
    if getattr(profile, "decoder", None) is not None:
        return 0.0
    if profile is not None and getattr(profile, "seconds", MIN_BLEND_SECONDS) < MIN_BLEND_SECONDS:
        return 0.0
    return float(getattr(decoder.config, "speaker_contrast", 0.0))


def speaker_centre(speaker: PathLike = "speaker", device: str = "cpu") -> Any:
    """(D,) the speaker encoder's centre (the mean raw embedding of its training crops: its
    average voice), which :func:`contrast_for`'s contrast pushes a voice away from. One clear error
    for an encoder that has none."""
    model = load(speaker, device, kind="speaker")
    if not model.module.config.center_embeddings:
        raise ValueError(f"{model.name} has no embedding centre, which a speaker contrast needs: "
                         "give a centred speaker encoder (speaker-16k) or contrast=0")
    return model.module.get_buffer("center")


def pitch_range_for(profile: Any, pitch_range: float | None = None, text: bool = False) -> float:
    """The pitch-range matching (:func:`voicefake.conversion.inference.match_pitch_range`) that runs for
    ``profile``: ``pitch_range`` when given (>= 0), otherwise :data:`DEFAULT_TTS_PITCH_RANGE` for text to
    speech into a zero-shot voice (``text=True``: :func:`clone`) and :data:`DEFAULT_PITCH_RANGE` (0) for
    conversion and for a fine-tuned voice (its figures were measured without it).

    Example:
        >>> pitch_range_for(voice_profile("ceo.wav"), text=True)
        0.5
    """
    if pitch_range is not None:
        if not 0.0 <= pitch_range < float("inf"):
            raise ValueError(f"pitch_range must be >= 0 (0: the source's own intonation), got {pitch_range}")
        return float(pitch_range)
    if not text or getattr(profile, "decoder", None) is not None:
        return DEFAULT_PITCH_RANGE
    return DEFAULT_TTS_PITCH_RANGE


def identity_steps_for(profile: Any, identity_steps: int | None = None) -> int:
    """The embedding-adaptation steps that run for ``profile``: ``identity_steps`` when given,
    otherwise :data:`DEFAULT_IDENTITY_STEPS` for a zero-shot voice and
    :data:`FINETUNED_IDENTITY_STEPS` for a fine-tuned one (a profile with its own decoder).

    Example:
        >>> identity_steps_for(voice_profile("ceo.wav"))
        10
    """
    if identity_steps is not None:
        if identity_steps < 0:
            raise ValueError(f"identity_steps must be >= 0, got {identity_steps}")
        return identity_steps
    return FINETUNED_IDENTITY_STEPS if getattr(profile, "decoder", None) is not None else DEFAULT_IDENTITY_STEPS


def blend_for(profile: Any, blend: float | None = None, text: bool = False) -> float:
    """The kNN blend that runs for ``profile``: ``blend`` when given (0-1), otherwise
    :data:`DEFAULT_BLEND` for a zero-shot voice (:data:`CALL_BLEND` when its reference is a call's:
    :func:`reference_band_hz` up to :data:`CALL_BAND_HZ`; :data:`DEFAULT_TTS_BLEND` for text to
    speech, ``text=True``: :func:`clone`), 0 for a zero-shot voice with less than
    :data:`MIN_BLEND_SECONDS` of reference, and :data:`FINETUNED_BLEND` for a fine-tuned one (a
    profile with its own decoder).

    Example:
        >>> blend_for(voice_profile("ceo.wav"))
        0.1
    """
    if blend is not None:
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {blend}")
        return float(blend)
    if getattr(profile, "decoder", None) is not None:
        return FINETUNED_BLEND
    if profile is not None and getattr(profile, "seconds", MIN_BLEND_SECONDS) < MIN_BLEND_SECONDS:
        return 0.0
    if text:
        return DEFAULT_TTS_BLEND
    band = None if profile is None else reference_band_hz(profile)
    return CALL_BLEND if band is not None and band <= CALL_BAND_HZ else DEFAULT_BLEND


def _one_voice(audio: AudioInput, sample_rate: int, name: str | None = None) -> np.ndarray:
    """A recording of one voice as a mono waveform at ``sample_rate``; a stereo file whose
    channels carry two different signals (the two legs of a recorded call: two people) is one
    clear AudioError instead of a silent mixture of both voices."""
    from voicefake.audio.io import AudioError, load_audio
    from voicefake.audio.legs import plan_channels

    if isinstance(audio, np.ndarray):
        return _as_wave(audio, sample_rate, name)
    frames = load_audio(audio, sample_rate, name=name, mono=False)
    if plan_channels(frames, "auto")[0]:
        label = name or (str(audio) if not isinstance(audio, bytes) else "<bytes>")
        raise AudioError(f"{label}: a stereo recording whose two channels carry different signals (the two legs "
                         "of a call: two people); a voice needs one of them: pass one channel, e.g. in Python "
                         "voicefake.api.load_waveform(path, mono=False)[:, 0] for the left one, or save it with an "
                         "audio editor")
    return frames.mean(axis=1)


def voice_profile(reference: VoiceReference, content: PathLike = "content", speaker: PathLike = "speaker",
                  device: str = "cpu", k: int = 4) -> Any:
    """The target voice, computed once and reusable: a ``VoiceProfile`` (kind ``"voice"``).

    Args:
        reference: one or more recordings of the target (paths, bytes or 16 kHz waveforms;
            3-30 s in all is the zero-shot range, more is better), a saved voice-profile
            directory (:func:`save_voice`, ``voicefake finetune``), a profile, or the JSON line
            of ``voicefake embed --json`` (embedding only: the decoder speaks, no frame matching).
        k: reference frames averaged per output frame in the kNN refinement.

    Raises:
        AudioError: an unreadable reference. ValueError: under 3 s of reference audio.

    Example:
        >>> ceo = voice_profile(["ceo_1.wav", "ceo_2.wav"])
        >>> save_voice(ceo, "voices/ceo")
    """
    from voicefake.conversion.inference import build_profile
    from voicefake.conversion.voice import VoiceProfile

    if isinstance(reference, VoiceProfile):
        return reference
    if isinstance(reference, (list, tuple)) and len(reference) == 1 and isinstance(reference[0], (str, os.PathLike)):
        reference = reference[0]
    if isinstance(reference, (str, os.PathLike)) and (Path(reference) / "config.json").is_file():
        saved = load(reference, device, kind="voice")
        saved.module.content_model = saved.checkpoint.metadata.get("content_model")
        return saved.module
    if isinstance(reference, (str, os.PathLike)) and str(reference).endswith((".json", ".jsonl")):
        return _embedding_profile(Path(reference), content, device)
    clips = [reference] if isinstance(reference, (str, bytes, os.PathLike, np.ndarray)) else list(reference)
    if not clips:
        raise ValueError("no reference given: pass 3-30 s of the target voice (one or more files)")
    encoder = load(content, device, kind="content")
    mel_cfg = encoder.checkpoint.mel_config
    assert mel_cfg is not None
    wavs = [_one_voice(clip, mel_cfg.sample_rate) for clip in clips]
    seconds = sum(len(w) for w in wavs) / mel_cfg.sample_rate
    if seconds < MIN_REFERENCE_S:
        raise ValueError(f"the reference is {seconds:.1f} s long; give at least {MIN_REFERENCE_S:.0f} s "
                         "(3-30 s of clean speech of the target works best)")
    with torch.inference_mode():
        profile = build_profile(wavs, _mel_module(mel_cfg), encoder.module,
                                embed_speaker(wavs, speaker, device, centre=False), k)
    profile.content_model = content_model_id(encoder)
    return profile


@functools.lru_cache(maxsize=8)
def _weights_sha(path: str) -> str:
    from voicefake.audio.io import sha256_file

    return sha256_file(path)[:12] if os.path.isfile(path) else "unknown"


def content_model_id(encoder: Any) -> str:
    """``name@version:sha`` of a loaded content encoder: a voice profile's frames are only
    comparable with features of the encoder that made them."""
    source = encoder.checkpoint.source
    return f"{encoder.name}:{_weights_sha(str(Path(source) / 'model.safetensors')) if source else 'unknown'}"


def _check_profile_encoder(profile: Any, encoder: Any) -> None:
    """A profile's frames made by another content encoder would be matched in the wrong space."""
    made = getattr(profile, "content_model", None)
    if made and profile.config.frames > 0 and made != content_model_id(encoder):
        raise ValueError(f"this voice profile was made with content encoder {made}, but {content_model_id(encoder)} "
                         "is in use: make the profile again from its recordings (voicefake convert "
                         "--save-voice, or voicefake finetune)")


def _embedding_profile(path: Path, content: PathLike, device: str) -> Any:
    """A frame-less profile from ``voicefake embed --json`` output: the decoder alone speaks.

    The decoder is conditioned on raw embeddings: ``cloning_embedding`` when the line has one
    (models that centre their embeddings write it), else ``embedding``.
    """
    import json

    from voicefake.conversion.voice import VoiceConfig, VoiceProfile

    try:
        record = json.loads(path.read_text().strip().splitlines()[0])
        embedding = np.asarray(record.get("cloning_embedding", record["embedding"]), np.float32)
    except (OSError, IndexError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a `voicefake embed --json` line with an 'embedding' ({err})") from None
    encoder = load(content, device, kind="content")
    config = VoiceConfig(frames=0, content_dim=encoder.module.config.content_dim, embedding_dim=len(embedding))
    mel_config = encoder.checkpoint.mel_config
    assert mel_config is not None  # content checkpoints always carry their mel
    profile = VoiceProfile(config, mel_config)
    profile.embedding.copy_(torch.from_numpy(embedding))
    return profile


def save_voice(profile: Any, path: PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Saves a voice profile as a checkpoint directory (kind ``"voice"``); its metadata names the
    content encoder that made its frames (``content_model``).

    Stored in float32, so that a saved voice gives exactly the output of the profile it was saved
    from: the embedding adaptation (``identity_steps``) follows small differences of its inputs
    (float16 storage moved its result by 0.11 log-mel L1 on a test voice, about half of what the
    adaptation itself changes)."""
    made = getattr(profile, "content_model", None)
    meta = {**(metadata or {}), **({"content_model": made} if made else {})}
    return Checkpoint.from_module(profile, "voice", profile.mel, meta).save(path, half=False)


@functools.lru_cache(maxsize=4)
def _cached_profile(key: tuple[tuple[str, float], ...], content: str, device: str) -> Any:
    return voice_profile([p for p, _ in key], content, device=device)


def _profile(reference: VoiceReference, device: str, content: PathLike = "content") -> Any:
    """Profiles of file references are cached by (path, mtime): scenario turns reuse them."""
    paths = [reference] if isinstance(reference, (str, os.PathLike)) else reference
    if isinstance(paths, (list, tuple)) and paths and all(isinstance(p, (str, os.PathLike)) for p in paths):
        if not any((Path(p) / "config.json").is_file() for p in paths):
            key = tuple((str(p), os.path.getmtime(p) if os.path.exists(p) else 0.0) for p in paths)
            return _cached_profile(key, str(content), device)
    return voice_profile(reference, content, device=device)


def convert(source: AudioInput, reference: VoiceReference, blend: float | None = None, checkpoint: PathLike | None = None,
            content: PathLike = "content", vocoder: PathLike = "vocoder", device: str = "cpu",
            name: str | None = None, eq: float = DEFAULT_EQ, identity_steps: int | None = None,
            speaker: PathLike = "speaker", gv: float = DEFAULT_GV,
            phase_iterations: int | None = PHASE_ITERATIONS, contrast: float | None = None,
            pitch_range: float | None = None) -> tuple[np.ndarray, int]:
    """Voice conversion: the source's words, timing and intonation in the reference's voice.

    Args:
        source: the speech to convert (path, bytes or 16 kHz waveform).
        reference: the target voice (see :func:`voice_profile`).
        blend: 0 = the decoder's mel only; 1 = only the target's own matched frames wherever the
            source is voiced (its unvoiced stretches keep the decoder's mel); None:
            :func:`blend_for` the profile (:data:`DEFAULT_BLEND` for a zero-shot voice, 0 for a
            fine-tuned one). An embedding-only profile has no frames to blend.
        eq: 0-1, how far the result is equalised towards the reference's long-term spectrum
            (one fixed gain per mel band: the voice's timbre and the recording's channel move;
            measured: similarity +0.02-0.03, WER +2-4 points; needs a profile with reference
            frames, otherwise it does nothing).
        gv: 0-1, how far each mel band's movement over time is restored towards the
            reference's (a global-variance post-filter against the decoder's over-smoothing;
            see :data:`DEFAULT_GV`; needs a profile with reference frames).
        identity_steps: gradient steps that adapt the target embedding to this source, so that
            the speaker encoder (``speaker``) hears the output as the reference's voice; 0 = off
            (6-9x faster); None: :func:`identity_steps_for` the profile (10 for a zero-shot
            voice, 0 for a fine-tuned one). Needs a profile with reference frames, otherwise it
            does nothing.
        contrast: >= 0, how far the reference's speaker embedding is pushed away from the speaker
            encoder's average voice before it conditions the decoder (a caricature: 0 = off, 1 =
            twice its distance); None: :func:`contrast_for` the decoder (its own default: 1 for
            ``conversion-ref`` and 0.5 for ``conversion-flite`` (clone's flite speech) from
            :data:`MIN_BLEND_SECONDS` of reference; 0 for the others, for shorter references and for
            a fine-tuned voice).
        pitch_range: >= 0, how far the source's intonation is widened or narrowed towards the
            reference's pitch range (0 = the source's own, 1 = the reference's; needs a profile with
            reference frames); None: :func:`pitch_range_for` (0 for conversion).
        phase_iterations: the vocoder's phase refinement (:func:`vocode`); default
            :data:`PHASE_ITERATIONS`, None: the vocoder checkpoint's own default.
        checkpoint: the conversion decoder; default (None): :func:`convert_decoder` of the
            profile (``conversion-ref`` for a voice with reference frames, ``conversion`` for an
            embedding-only one). A voice with its own fine-tuned decoder uses that one.

    Returns:
        ``(wav, 16000)``: float32 waveform, not yet watermarked (:func:`save_generated` marks it).

    Example:
        >>> wav, sample_rate = convert("employee.wav", ["ceo_1.wav", "ceo_2.wav"])
    """
    from voicefake.conversion.inference import convert_mel

    if identity_steps is not None and identity_steps < 0:
        raise ValueError(f"identity_steps must be >= 0, got {identity_steps}")
    _check_phase_iterations(phase_iterations)
    _check_contrast(contrast)
    if pitch_range is not None:
        pitch_range_for(None, pitch_range)

    if blend is not None:
        blend_for(None, blend)  # a bad value is refused before the reference is processed
    profile = _profile(reference, device, content)
    identity_steps = identity_steps_for(profile, identity_steps)
    pitch_range = pitch_range_for(profile, pitch_range)
    blend = blend_for(profile, blend)
    checkpoint = convert_decoder(profile) if checkpoint is None else checkpoint
    encoder = load(content, device, kind="content")
    decoder = load(checkpoint, device, kind="conversion")
    voc = load(vocoder, device, kind="vocoder")
    for other in (encoder, decoder):
        check_same_mel(other.checkpoint, voc.checkpoint)
    _check_profile_encoder(profile, encoder)
    mel_cfg = voc.checkpoint.mel_config
    assert mel_cfg is not None
    wav = _one_voice(source, mel_cfg.sample_rate, name)
    contrast = contrast_for(profile, decoder.module, contrast)
    judge, to_judge, centre = None, None, None
    if identity_steps and profile.config.frames:
        judge = load(speaker, device, kind="speaker")
        assert judge.checkpoint.mel_config is not None
        to_judge = _reanalysis(mel_cfg, judge.checkpoint.mel_config).to(judge.device)
    if contrast:
        centre = speaker_centre(speaker, device)
    with torch.inference_mode():
        mel = convert_mel(wav, profile, _mel_module(mel_cfg), encoder.module, decoder.module, blend, eq,
                          None if judge is None else judge.module, to_judge, identity_steps, gv=gv,
                          contrast=contrast, centre=centre, pitch_range=pitch_range)
    return vocode(mel, vocoder, device, phase_iterations=phase_iterations).numpy(), mel_cfg.sample_rate


@functools.lru_cache(maxsize=4)
def _reanalysis(source: Any, target: Any) -> Any:
    from voicefake.audio.features import MelReanalysis

    return MelReanalysis(source, target)


def clone(text: str, reference: VoiceReference, language: str = "en-us", rate: int = DEFAULT_RATE,
          blend: float | None = None, device: str = "cpu", progress: Any = None,
          checkpoint: PathLike | None = None, content: PathLike = "content",
          vocoder: PathLike = "vocoder", engine: str = "auto", tts_voice: str | None = None,
          eq: float = DEFAULT_EQ, identity_steps: int | None = None,
          speaker: PathLike = "speaker", gv: float = DEFAULT_GV,
          phase_iterations: int | None = PHASE_ITERATIONS, contrast: float | None = None,
          pitch_range: float | None = None) -> tuple[np.ndarray, int]:
    """Text to speech in the reference's voice: a rule-based front end speaks each sentence,
    then :func:`convert` moves it into the target voice; sentences are joined with short pauses.

    Args:
        text: what to say (split into sentences; up to 5000 characters).
        reference: the target voice (see :func:`voice_profile`).
        language: an espeak-ng voice (``en-us``, ``de``, ``fr``, ...); the flite engine
            speaks English only.
        rate: speaking rate in words per minute (default :data:`DEFAULT_RATE`, an unhurried
            conversational pace: slower speech keeps more words through the conversion).
        engine: ``"espeak"`` (espeak-ng, bundled, many languages), ``"flite"`` (English;
            needs the ``flite`` program: ``apt-get install flite``; its clones keep more words),
            or ``"auto"``: flite for English when it is installed, espeak-ng otherwise
            (:func:`tts_engine` says which).
        tts_voice: the flite voice (rms, slt, awb, kal16, kal; default rms); unused by espeak-ng.
        blend / eq / gv / identity_steps / speaker / phase_iterations / contrast: as in :func:`convert` (the steps
            run for each sentence); blend None: :func:`blend_for` with ``text=True``
            (:data:`DEFAULT_TTS_BLEND` for a zero-shot voice).
        pitch_range: as in :func:`convert`; None: :func:`pitch_range_for` with ``text=True``
            (:data:`DEFAULT_TTS_PITCH_RANGE` for a zero-shot voice: each sentence's intonation moved
            halfway, in log terms, towards the reference's range).
        progress: optional ``callable(done, total)`` called after each sentence.
        checkpoint: the conversion decoder; default (None): :func:`tts_decoder` of the engine.
        content / vocoder: the models, as in :func:`convert`.

    Returns:
        ``(wav, 16000)``: float32 waveform, not yet watermarked (:func:`save_generated` marks it).

    Example:
        >>> wav, sample_rate = clone("Please wire the funds today.", "ceo.wav")
    """
    from voicefake.audio.io import resample
    from voicefake.synthesis import espeak, flite
    from voicefake.synthesis.text import split_sentences

    _check_phase_iterations(phase_iterations)  # before any sentence is spoken
    _check_contrast(contrast)
    if blend is not None:
        blend_for(None, blend)
    if pitch_range is not None:
        pitch_range_for(None, pitch_range)
    engine = tts_engine(engine, language)
    if engine == "flite":
        if not _is_english(language):
            raise ValueError(f"the flite engine speaks English only (got language {language!r}); use engine='espeak'")
        flite.require()  # before the reference is processed
        speak = functools.partial(flite.speak, voice=tts_voice or flite.DEFAULT_VOICE, rate=rate)
    elif engine == "espeak":
        speak = functools.partial(espeak.speak, voice=language, rate=rate)
    else:
        raise ValueError(f"unknown text-to-speech engine {engine!r}: choose 'espeak' or 'flite'")
    sentences = split_sentences(text)
    profile = _profile(reference, device, content)
    checkpoint = tts_decoder(engine, profile) if checkpoint is None else checkpoint
    if engine == "espeak" and getattr(profile, "decoder", None) is not None:
        log.info("espeak-ng speech: the voice's own decoder is set aside for %s (zero-shot voice)", checkpoint)
    profile = tts_profile(profile, engine)
    blend = blend_for(profile, blend, text=True)
    pitch_range = pitch_range_for(profile, pitch_range, text=True)
    pieces = []
    for done, sentence in enumerate(sentences, 1):
        spoken, spoken_rate = speak(sentence)
        wav, sample_rate = convert(resample(spoken, spoken_rate, 16000), profile, blend=blend, checkpoint=checkpoint,
                                   content=content, vocoder=vocoder, device=device, eq=eq,
                                   identity_steps=identity_steps, speaker=speaker, gv=gv,
                                   phase_iterations=phase_iterations, contrast=contrast, pitch_range=pitch_range)
        pieces.append(_fade(wav, sample_rate))
        if progress is not None:
            progress(done, len(sentences))
    pause = np.zeros(int(0.25 * sample_rate), np.float32)
    joined = [part for piece in pieces for part in (piece, pause)][:-1]
    return np.concatenate(joined), sample_rate


def convert_decoder(profile: Any = None) -> str:
    """The bundled conversion decoder :func:`convert` uses for recorded speech by default.

    ``conversion-ref`` reads the target's reference frames as well as its embedding: the
    reference-attention decoder of ``conversion-flite`` trained further with ``conversion``'s
    recipe (cross conversions, a mel discriminator and a content term). Measured on 10 unseen
    targets x 8 sources at two threads, both at blend 0 (docs/benchmarks/cloning.md, session 40): WER
    14.5 -> 12.2 %, Resemblyzer similarity 0.735 -> 0.737 against ``conversion``. It needs those frames, so a
    ``profile`` without them (an embedding-only voice, e.g. ``voicefake embed --json``) gets
    ``conversion``.

    A voice whose reference reaches no higher than :data:`CALL_BAND_HZ` (taken from a phone call
    or an 8 kHz recording: :func:`reference_band_hz`) gets ``conversion-call``, the same decoder
    trained further with half its references through a phone line. On 80 conversions with
    references cut from simulated calls it measured 0.673 Resemblyzer similarity and 93.8 % of the
    pairs above their source, against 0.658 / 91.2 % for ``conversion-ref`` (both band-aware; that one a
    Resemblyzer-only probe) and
    0.640 / 90 % before session 41 (docs/benchmarks/cloning.md, session 41). On clean references it
    was not better (0.746 against 0.748), so wideband voices keep ``conversion-ref``.
    """
    if profile is not None and not profile.config.frames:
        return "conversion"
    band = None if profile is None else reference_band_hz(profile)
    if band is not None and band <= CALL_BAND_HZ:
        return "conversion-call"
    return "conversion-ref"


CALL_BAND_HZ = 5000.0
"""A voice whose reference reaches no higher than this (:func:`reference_band_hz`) is a call's:
telephone speech stops near 3.4-4 kHz; wideband codecs (AMR-WB, G.722) reach 7 kHz and keep
``conversion-ref``."""


def reference_band_hz(profile: Any) -> float | None:
    """How high the voice's reference reaches, in Hz: the mel's top (8000 for the 16 kHz mel) for
    wideband speech, about 4.2 kHz (the top of the band that straddles 4 kHz) for a reference taken
    from a phone call or an 8 kHz recording
    (``conversion.inference.signal_bands``); None for a voice known only by its embedding.

    Whatever compares a conversion with the reference's frames (the kNN blend, the equaliser,
    the variance post-filter, the identity steps) uses only this band; the output above it is the
    decoder's. The CLI's ``convert`` / ``clone`` JSON reports it (``reference_band_hz``).

    Example:
        >>> reference_band_hz(voice_profile("ceo_call_8k.wav"))
        4164.4
    """
    from voicefake.audio.features import band_top_hz
    from voicefake.conversion.inference import signal_bands

    if not profile.config.frames:
        return None
    return round(band_top_hz(profile.mel, signal_bands(profile.mels.T)), 1)


def tts_profile(profile: Any, engine: str) -> Any:
    """The voice :func:`clone` speaks ``engine``'s speech with: ``profile`` itself, except that
    espeak-ng's speech sets a voice's own decoder aside (its zero-shot voice). The decoder was tuned
    from conversion-16k on recorded speech; espeak-ng's formant speech keeps more words through
    conversion-espeak-16k with the zero-shot voice (session 20, 2 unseen targets, 4 sentences: WER
    49 / 58 % zero-shot against 62 / 76 % adapted)."""
    if engine == "espeak" and getattr(profile, "decoder", None) is not None:
        from voicefake.conversion.finetune import without_decoder

        return without_decoder(profile)
    return profile


def tts_engine(engine: str = "auto", language: str = "en-us") -> str:
    """The text-to-speech front end :func:`clone` uses: ``engine`` itself, or for ``"auto"``
    flite when the text is English and the ``flite`` program is installed, espeak-ng otherwise."""
    from voicefake.synthesis import flite

    if engine != "auto":
        return engine
    return "flite" if _is_english(language) and flite.available() else "espeak"


def tts_decoder(engine: str, profile: Any = None) -> str:
    """The bundled conversion decoder :func:`clone` uses for an engine's speech by default.

    espeak-ng's formant synthesis gets ``conversion-espeak``: the general decoder fine-tuned on
    espeak-ng renderings time-aligned to real speech saying the same words. Measured on unseen
    targets (docs/benchmarks/cloning.md, session 16): espeak-ng clones' WER 74.9 -> 50.9 %; the
    same fine-tune costs flite's clones 2-4 points.

    flite's speech gets ``conversion-flite``, a decoder that also reads the target's reference
    frames (reference attention; session 33, 120 clips of 10 unseen targets: WER 12.2 -> 9.4 %,
    similarity 0.704 -> 0.706). It needs those frames, so a ``profile`` (a
    :class:`VoiceProfile`) that has none (an embedding-only voice) gets ``conversion``, as in
    :func:`convert_decoder`.
    """
    if engine == "espeak":
        return "conversion-espeak"
    if profile is not None and not profile.config.frames:
        return "conversion"
    return "conversion-flite"


def tts_engine_note(engine: str = "auto", language: str = "en-us") -> str | None:
    """A hint when English text would be spoken by espeak-ng because flite is missing (its clones
    lose far more words: 51 % WER against 14 %, docs/benchmarks/cloning.md, session 16); else None."""
    if engine == "auto" and _is_english(language) and tts_engine(engine, language) == "espeak":
        return ("English text is spoken by espeak-ng because the flite program is not installed; "
                "install it (apt-get install flite) for clones that keep far more of the words")
    return None


def _is_english(language: str) -> bool:
    """Is this espeak-ng voice name English (en, en-us, en-gb-x-rp, ...)?"""
    return language.split("-")[0] == "en"


# Decoder fine-tuning when not told: 300 steps for a minute or more of audio, 200 below (300 overfit
# a 30 s reference: session 20). Either way the voice keeps 70 % of the weight change (``keep``, a
# weight-space ensemble with the multi-speaker decoder). Session 25, 10 unseen targets, conversion /
# flite: on the 30 s reference, 200 steps at 0.7 gave 0.753 / 0.730 similarity with 16.5 / 8.4 % WER,
# against 0.760 / 0.742 with 18.2 / 10.9 % for 100 steps kept whole; on 1-1.4 min of audio, 300 steps
# at 0.7 gave 0.762 / 0.740 with 13.9 / 10.2 %, against 0.778 / 0.759 with 19.3 / 16.9 % kept whole
# (docs/benchmarks/cloning.md). Steps and keep were chosen on conversion-16k; session 27 did not
# re-tune them for FINETUNE_BASE below.
FINETUNE_STEPS = 300
SHORT_AUDIO_FINETUNE_STEPS = 200
SHORT_AUDIO_SECONDS = 60.0
FINETUNE_KEEP = 0.7
# The decoder that fine-tuning starts from (session 27): conversion-adapt-16k, trained like
# conversion-16k with speed-changed copies of its speakers as more voices. Zero-shot it is the
# less similar one (0.711 against 0.724), so convert and clone keep conversion-16k; adapted to the
# 30 s reference it keeps more of the words: 12.1 / 5.5 % WER against 16.5 / 8.4 % (conversion /
# flite), similarity 0.756 / 0.727 against 0.753 / 0.730 (the run's weights; the shipped float16
# export: 0.756 with 12.5 %, 0.727 with 5.1 %; docs/benchmarks/cloning.md).
FINETUNE_BASE = "conversion-adapt"


def default_finetune_steps(seconds: float) -> int:
    """The fine-tuning steps :func:`finetune_voice` runs on ``seconds`` of audio when not told."""
    return SHORT_AUDIO_FINETUNE_STEPS if seconds < SHORT_AUDIO_SECONDS else FINETUNE_STEPS


def finetune_voice(audio: Sequence[AudioInput], output: PathLike, steps: int | None = None, max_minutes: float = 10.0,
                   checkpoint: PathLike = FINETUNE_BASE, content: PathLike = "content",
                   device: str = "cpu", keep: float | None = None,
                   speaker: PathLike = "speaker") -> tuple[Path, dict[str, Any]]:
    """Adapts to one voice from minutes of its audio; writes a voice checkpoint (kind ``"voice"``).

    The checkpoint holds the voice's frames and embedding (as :func:`voice_profile`) and, with
    ``steps > 0``, a copy of the conversion decoder ``checkpoint`` (default :data:`FINETUNE_BASE`,
    the bundled ``conversion-adapt``) fine-tuned on this audio. Pass the folder as
    ``reference`` to :func:`convert` / :func:`clone`. ``steps=None``: 300 for a minute of audio or
    more, 200 below (:func:`default_finetune_steps`). ``keep``: the share of the decoder's weight
    change that the voice keeps, in (0, 1]; the rest is given back to the multi-speaker decoder (a
    weight-space ensemble). None: :data:`FINETUNE_KEEP` (0.7). On a 30 s reference the defaults
    take about 20-30 s on 2 threads; in conversion to unseen voices they raise similarity from
    0.724 (zero-shot) to 0.756 and lower the WER from 16.5 to 12.5 %; on about a minute of audio
    they reach 0.761 with 11.5 % WER (session 27). ``speaker``: the speaker encoder that makes the
    voice's embedding (the one the decoder was trained with).

    Returns:
        ``(path, info)``: info has ``minutes``, ``files``, ``steps``, ``keep``, ``loss_first``,
        ``loss_last``.

    Example:
        >>> path, info = finetune_voice(sorted(Path("ceo_calls").glob("*.wav")), "voices/ceo")
    """
    from voicefake.conversion.finetune import finetune_decoder, with_decoder

    if (steps is not None and steps < 0) or max_minutes <= 0 or (keep is not None and not 0 < keep <= 1):
        raise ValueError(f"steps must be >= 0, max_minutes > 0 and keep in (0, 1] (got {steps}, {max_minutes}, {keep})")
    encoder = load(content, device, kind="content")
    mel_cfg = encoder.checkpoint.mel_config
    assert mel_cfg is not None
    wavs, total = [], 0
    for clip in audio:
        if total >= max_minutes * 60 * mel_cfg.sample_rate:
            break
        wavs.append(_one_voice(clip, mel_cfg.sample_rate))
        total += len(wavs[-1])
    profile = voice_profile(wavs, content, speaker=speaker, device=device)
    if steps is None:
        steps = default_finetune_steps(total / mel_cfg.sample_rate)
    keep = FINETUNE_KEEP if keep is None else keep
    info: dict[str, Any] = {"minutes": round(total / mel_cfg.sample_rate / 60, 2), "files": len(wavs), "steps": steps,
                            "keep": keep}
    if steps > 0:
        decoder = load(checkpoint, device, kind="conversion")
        with torch.inference_mode(False):
            tuned, losses = finetune_decoder(decoder.module, encoder.module, wavs, profile.embedding.clone(),
                                             _mel_module(mel_cfg), steps, keep=keep)
        profile = with_decoder(profile, tuned)
        profile.content_model = content_model_id(encoder)
        info.update(loss_first=round(losses[0], 4), loss_last=round(float(np.mean(losses[-20:])), 4),
                    decoder=decoder.name)
    path = save_voice(profile, output, {"name": "voice", **info})
    return path, info


def _fade(wav: np.ndarray, sample_rate: int, seconds: float = 0.01) -> np.ndarray:
    """10 ms raised-cosine fade in and out, so joined pieces have no clicks."""
    n = min(int(seconds * sample_rate), len(wav) // 2)
    if n == 0:
        return wav
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32))
    out = wav.copy()
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


# ----------------------------------------------------------------------------- scenario


def render_scenario(script_path: PathLike, output: PathLike | None = None, force: bool = False,
                    watermark: bool = True) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Renders a call-scenario script into one phone call and its ground truth.

    Cloned turns are spoken by :func:`clone` with the voice's references; real turns are the
    recordings. See recipes/scenarios/README.md for the script format.

    Args:
        script_path: the YAML script.
        output: write the call here (``.wav``/``.flac``, watermarked unless ``watermark`` is
            False, labelled synthetic) and its ground truth as ``CALL.json`` beside it.
        force: overwrite existing outputs.

    Returns:
        ``(wav, sample_rate, truth)``: the (T,) float32 call (8 kHz after the phone channel;
        (T, 2) for a ``recording: stereo`` script, one leg per party) and its truth: ``truth["segments"]`` is ``[{"start", "end", "speaker", "label", ...}]``
        in seconds, the format of ``voicefake.detection.inference.score_against_truth``.

    Raises:
        ScenarioError: a bad script. FileExistsError: an output exists and ``force`` is False.

    Example:
        >>> wav, sample_rate, truth = render_scenario("ceo_fraud.yaml", "call.wav")
        >>> [(s["speaker"], s["label"]) for s in truth["segments"]][:2]
        [('employee', 'real'), ('ceo', 'fake')]
    """
    from voicefake import scenario

    script = scenario.load_script(script_path)
    if output is not None:
        scenario.check_outputs(output, force)  # fail before minutes of rendering
    wav, sample_rate, truth = scenario.render(script, _scenario_synthesizer(script.sample_rate))
    if output is not None:
        scenario.write_call(output, wav, sample_rate, truth, force=force, watermark=watermark)
    return wav, sample_rate, truth


def _scenario_synthesizer(sample_rate: int) -> Any:
    """A ``voicefake.scenario.Synthesizer`` that speaks through :func:`clone` at ``sample_rate``.

    A voice with ``adapt: true`` is fine-tuned on its references (:func:`finetune_voice`, the
    defaults) before its first line, and the adapted voice speaks all of its lines."""
    import tempfile

    from voicefake.audio.io import resample

    adapted: dict[str, Any] = {}

    def synthesize(voice_name: str, voice: Any, text: str) -> np.ndarray:
        import voicefake.api

        # looked up on the package at run time, so a replaced api.clone (tests, plug-ins) is used
        clone_fn = getattr(voicefake.api, "clone", None)
        if clone_fn is None:
            raise RuntimeError(f"voice {voice_name!r}: this voicefake has no api.clone, so cloned "
                               "turns cannot be rendered; use a recording (audio:) instead")
        references = [str(path) for path in voice.reference]
        reference: Any = references[0] if len(references) == 1 else references
        if voice.adapt:
            if voice_name not in adapted:
                with tempfile.TemporaryDirectory(prefix="voicefake-scenario-") as folder:
                    path, _ = voicefake.api.finetune_voice(references, Path(folder) / voice_name)
                    adapted[voice_name] = voicefake.api.voice_profile(str(path))
            reference = adapted[voice_name]
        wav, rate = clone_fn(text, reference)
        wav = np.asarray(wav, dtype=np.float32)
        return wav if rate == sample_rate else resample(wav, rate, sample_rate)

    return synthesize
