"""The public verbs of voicefake: the only module the CLI and the demo import.

Every verb runs on the bundled default model unless given ``checkpoint`` (a bundled name
such as ``"vocoder"`` or a checkpoint directory) and ``device`` (default ``"cpu"``).
Models are loaded once per (checkpoint, device) and cached. Inference runs under
``torch.inference_mode()`` with modules in ``eval()``.

The verbs live in four modules, all re-exported here (use ``voicefake.api.<verb>``):
:mod:`~voicefake.api.core` (loading, audio inputs), :mod:`~voicefake.api.generation`
(vocoding, labelled saving, the watermark), :mod:`~voicefake.api.analysis` (speaker,
detection, lip-sync) and :mod:`~voicefake.api.cloning` (voice profiles, conversion, text to
speech, fine-tuning, call scenarios).
"""

from __future__ import annotations

from voicefake.api.analysis import (
    LIPSYNC_MODEL,
    Verification,
    align,
    detect,
    detection_operating_point,
    embed,
    embed_speaker,
    similarity,
    sync_offset,
    verify,
    verify_embedding,
)
from voicefake.api.cloning import (
    CALL_BAND_HZ,
    CALL_BLEND,
    DEFAULT_BLEND,
    DEFAULT_EQ,
    DEFAULT_GV,
    DEFAULT_IDENTITY_STEPS,
    DEFAULT_PITCH_RANGE,
    DEFAULT_RATE,
    DEFAULT_TTS_BLEND,
    DEFAULT_TTS_PITCH_RANGE,
    FINETUNE_BASE,
    FINETUNE_KEEP,
    FINETUNE_STEPS,
    FINETUNED_BLEND,
    FINETUNED_IDENTITY_STEPS,
    MIN_BLEND_SECONDS,
    MIN_REFERENCE_S,
    SHORT_AUDIO_FINETUNE_STEPS,
    VoiceReference,
    blend_for,
    clone,
    contrast_for,
    convert,
    convert_decoder,
    default_finetune_steps,
    finetune_voice,
    identity_steps_for,
    pitch_range_for,
    reference_band_hz,
    render_scenario,
    save_voice,
    speaker_centre,
    tts_decoder,
    tts_engine,
    tts_engine_note,
    tts_profile,
    voice_profile,
)
from voicefake.api.core import (
    AudioInput,
    Loaded,
    PathLike,
    display_spectrogram,
    file_sha256,
    load,
    load_waveform,
)
from voicefake.api.generation import (
    resynthesize,
    save_generated,
    synthetic_metadata,
    vocode,
    watermark_detect,
    watermark_embed,
    watermark_generated,
)

__all__ = [
    "CALL_BAND_HZ", "CALL_BLEND", "DEFAULT_BLEND", "DEFAULT_EQ", "DEFAULT_GV", "DEFAULT_IDENTITY_STEPS", "DEFAULT_RATE", "DEFAULT_TTS_BLEND", "DEFAULT_PITCH_RANGE", "DEFAULT_TTS_PITCH_RANGE", "FINETUNE_BASE", "FINETUNE_KEEP", "FINETUNE_STEPS", "FINETUNED_BLEND", "FINETUNED_IDENTITY_STEPS", "SHORT_AUDIO_FINETUNE_STEPS", "LIPSYNC_MODEL", "MIN_BLEND_SECONDS", "MIN_REFERENCE_S", "AudioInput", "Loaded", "PathLike",
    "Verification", "VoiceReference", "align", "blend_for", "clone", "contrast_for", "convert", "detect",
    "default_finetune_steps", "detection_operating_point", "display_spectrogram", "embed", "embed_speaker", "file_sha256", "identity_steps_for", "pitch_range_for",
    "convert_decoder", "reference_band_hz", "finetune_voice", "load", "load_waveform", "render_scenario", "resynthesize", "save_generated",
    "save_voice", "similarity", "speaker_centre", "sync_offset", "synthetic_metadata", "tts_decoder", "tts_engine", "tts_engine_note", "tts_profile", "verify",
    "verify_embedding", "vocode", "voice_profile", "watermark_detect", "watermark_embed", "watermark_generated",
]
