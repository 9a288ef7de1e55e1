"""The red team's studio tabs: Clone (text or speech in a target voice) and Call scenario.

Handlers only; the page layout is in app.py and every number comes from voicefake.api.
Voice profiles are cached by the SHA-256 of their reference files, so the same reference
uploaded again (or a voice saved under a name) is not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr

from voicefake import __version__, api
from voicefake.audio.io import AudioError

MODES = ("Text to speech", "Convert a recording")
EXAMPLE = Path(__file__).resolve().parents[1] / "recipes" / "scenarios" / "ceo_fraud.yaml"
_PROFILES: OrderedDict[str, Any] = OrderedDict()  # sha256 of the references -> profile (LRU, 16)
SAVED: dict[str, Any] = {}  # voices saved under a name in this server's lifetime


def _profile(paths: list[str], load: Any, adapt: bool = False) -> Any:
    """The voice of ``paths``: zero-shot, or with ``adapt`` a decoder fine-tuned on these clips
    alone (``api.finetune_voice``, about 20 s on 2 threads once; cached like the profiles)."""
    key = ("adapt:" if adapt else "") + hashlib.sha256("".join(api.file_sha256(p) for p in paths).encode()).hexdigest()
    if key not in _PROFILES:
        if adapt:
            folder = Path(tempfile.mkdtemp(prefix="voicefake-voice-"))
            path, _ = api.finetune_voice([load(p) for p in paths], folder / "voice")
            _PROFILES[key] = api.voice_profile(str(path))
        else:
            _PROFILES[key] = api.voice_profile([load(p) for p in paths])
        while len(_PROFILES) > 16:
            _PROFILES.popitem(last=False)
    _PROFILES.move_to_end(key)
    return _PROFILES[key]


# where the Clone tab's contrast and pitch-range sliders start. While its "mode defaults" box is ticked
# they are not read: the API picks for the voice and mode (api.contrast_for: 1 for conversion-ref, what
# Convert uses, and 0.5 for conversion-flite, what text uses, from 30 s of reference, 0 for shorter
# references and adapted voices; api.pitch_range_for: 0.5 for text into a zero-shot voice, 0 otherwise)
CONTRAST_SLIDER_DEFAULT = 1.0
PITCH_SLIDER_DEFAULT = api.DEFAULT_TTS_PITCH_RANGE


def clone_voice(references: list[Any] | None, microphone: str | None, saved: str | None, mode: str, text: str,
                source: Any, consent: bool, blend: float | None, save_as: str, load: Any, progress: Any = None,
                eq: float = api.DEFAULT_EQ, identity_steps: int | None = None, gv: float = api.DEFAULT_GV,
                adapt: bool = False, contrast: float | None = None, pitch_range: float | None = None) -> tuple:
    """Clone tab: returns ((rate, wav), info markdown, saved-voices dropdown update).

    ``blend``, ``contrast`` and ``pitch_range``: None lets the API pick for this voice and mode
    (``api.blend_for``, ``api.contrast_for``, ``api.pitch_range_for``: what the tab's "mode defaults"
    box does); a number runs exactly that, whatever it is. The info line says what ran.

    ``adapt``: fine-tune a copy of the decoder on the uploaded reference first (the API's defaults,
    session 27: similarity 0.756 and WER 12.5 % against 0.724 and 16.5 % zero-shot on 10 unseen voices). An adapted voice runs without identity
    steps, as every fine-tuned voice does by default (they cost it words).
    """
    if not consent:
        raise gr.Error("Cloning a voice needs its owner's consent: tick the box to confirm you have it.")
    paths = [r if isinstance(r, str) else r.name for r in references or []] + ([microphone] if microphone else [])
    if not paths and not saved:
        raise gr.Error("Give the target voice: upload or record 3-30 s of it, or pick a saved voice.")
    if adapt and not paths:
        raise gr.Error("Adapting needs the reference clips: upload or record them (a saved voice keeps "
                       "the adaptation it was saved with).")
    try:
        profile = _profile(paths, load, adapt) if paths else SAVED[saved]
        # an adapted voice (its own decoder), unless espeak-ng speaks: clone() sets the decoder aside then
        tuned = (api.identity_steps_for(profile) == api.FINETUNED_IDENTITY_STEPS
                 and not (mode == MODES[0] and api.tts_engine() == "espeak"))
        if tuned:
            identity_steps = api.FINETUNED_IDENTITY_STEPS
        speaks = mode == MODES[0]
        if speaks:
            if not (text or "").strip():
                raise gr.Error("Type the text the cloned voice should say.")
            wav, rate = api.clone(text, profile, blend=blend, progress=progress, eq=eq, identity_steps=identity_steps,
                                  gv=gv, contrast=contrast, pitch_range=pitch_range)
        else:
            if source is None:
                raise gr.Error("Upload the recording to convert into the target voice.")
            wav, rate = api.convert(load(source if isinstance(source, str) else source.name), profile, blend=blend, eq=eq,
                                    identity_steps=identity_steps, gv=gv, contrast=contrast, pitch_range=pitch_range)
        decoder = api.load(api.tts_decoder(api.tts_engine(), profile) if speaks else api.convert_decoder(profile))
        voice = api.tts_profile(profile, api.tts_engine()) if speaks else profile  # as clone() sees it
        ran = (f"blend {api.blend_for(voice, blend, text=speaks):g}, "
               f"contrast {api.contrast_for(voice, decoder.module, contrast):g}, "
               f"pitch range {api.pitch_range_for(voice, pitch_range, text=speaks):g}"
               f"{' (mode defaults)' if blend is None and contrast is None and pitch_range is None else ''}")
    except (AudioError, ValueError, RuntimeError, KeyError) as err:
        raise gr.Error(str(err)) from None
    if save_as and save_as.strip():
        SAVED[save_as.strip()] = profile
    model = decoder.name
    marked, note = api.watermark_generated(wav, rate, model)
    similarity = api.similarity(api.embed(marked, centre=False), profile.embedding.numpy()) if profile.config.embedding_dim else float("nan")
    front = f" · text front end: {api.tts_engine()}" if mode == MODES[0] else ""
    hint = api.tts_engine_note() if mode == MODES[0] else None
    front += f" ({hint})" if hint else ""
    band = api.reference_band_hz(profile)
    if band is not None and band <= api.CALL_BAND_HZ:
        front += (f" · the reference reaches only {band / 1000:.1f} kHz (a call or an 8 kHz recording): it is "
                  "matched on that band only, and the voice above it is the decoder's")
    info = (f"**SYNTHETIC SPEECH** generated by voicefake {__version__} ({model}); {note}. "
            f"{len(marked) / rate:.1f} s · speaker similarity to the reference (speaker-16k cosine) "
            f"**{similarity:.2f}** from {profile.seconds:.1f} s of reference"
            f"{' (decoder adapted to it)' if tuned else ''}{front} · {ran}.")
    return (rate, marked), info, gr.update(choices=sorted(SAVED), value=None)


def example_script() -> str:
    return EXAMPLE.read_text() if EXAMPLE.exists() else ""


def load_script_file(upload: Any) -> str:
    """Puts an uploaded script into the editor."""
    if upload is None:
        return gr.update()
    path = Path(upload if isinstance(upload, str) else upload.name)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise gr.Error(f"{path.name}: not a UTF-8 text file ({err})") from None


def render_call(script_text: str, assets: list[Any] | None) -> tuple:
    """Scenario tab: renders the script; uploaded assets are found by their file names."""
    if not (script_text or "").strip():
        raise gr.Error("Write or upload a scenario script first.")
    folder = Path(tempfile.mkdtemp(prefix="voicefake-scenario-"))
    for asset in assets or []:
        src = Path(asset if isinstance(asset, str) else asset.name)
        shutil.copy(src, folder / src.name)
    script = folder / "scenario.yaml"
    script.write_text(script_text, encoding="utf-8")
    try:
        wav, rate, truth = api.render_scenario(script, folder / "call.wav")
    except (AudioError, ValueError, RuntimeError) as err:
        raise gr.Error(str(err).replace(str(folder) + "/", "")) from None
    fakes = sum(1 for s in truth["segments"] if s["label"] == "fake")
    layout = " stereo (one leg per party)" if truth.get("recording") == "stereo" else ""
    info = (f"Rendered **{truth['duration']:.1f} s**{layout} at {rate} Hz: {len(truth['segments'])} segments, "
            f"{fakes} synthetic (watermarked, labelled synthetic). Ground truth in call.json.")
    state = {"call": str(folder / "call.wav"), "truth": truth}
    return (rate, wav), [str(folder / "call.wav"), str(folder / "call.json")], info, state


def score_call(state: dict[str, Any] | None, timeline: Any) -> tuple:
    """Scenario tab: runs the detector on the rendered call and scores its timeline against the truth."""
    from voicefake.detection.inference import score_against_truth

    if not state:
        raise gr.Error("Render a call first.")
    frames = api.load_waveform(state["call"], 16000, mono=False)  # a stereo call's legs are scored apart
    report = api.detect(frames)
    score = score_against_truth(report, state["truth"]["segments"])
    figure = timeline(frames, report.to_dict(), report.threshold)
    md = (f"Detector verdict for the call: **{report.label}** (p_fake {report.p_fake:.3f}, threshold "
          f"{report.threshold:.3f}). Synthetic seconds found: **{score['found_fake_seconds']:.1f} of "
          f"{score['fake_seconds']:.1f}** (recall {100 * score['fake_recall']:.0f}%); false alarms on real "
          f"speech: **{score['false_alarm_seconds']:.1f} s** ({score['false_alarm_seconds_per_minute']:.1f} s/min).")
    return md, figure, json.loads(json.dumps(score))
