"""Call scenarios: a YAML script of turns rendered into one phone call plus its ground truth.

Turns are text in a cloned voice (``fake``), recordings (``real``) or pauses; the whole call
goes through one time-preserving :mod:`voicefake.channel` chain (or, for ``recording: stereo``,
each leg of a PBX-style two-channel recording through its own), and the truth uses the segment
format of :func:`voicefake.detection.inference.score_against_truth`. Script format and scoring:
recipes/scenarios/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from voicefake import __version__
from voicefake.audio.io import AudioError, load_audio, loudness_normalize, resample, trim_silence
from voicefake.channel import ChannelStep, apply_chain, phone_call

FORMAT_VERSION = 1
FADE_S = 0.01  # raised-cosine fade at each turn's edges: no clicks where audio meets a pause
TRIM_PAD_S = 0.05  # silence kept around a turn's speech when trimming
PAUSE_S = (0.01, 60.0)  # shortest and longest pause, seconds
OVERLAP_S = (0.01, 30.0)  # shortest and longest barge-in, seconds
RATES = (8000, 48000)  # sample_rate and output_rate range, Hz
_TOP_KEYS = ("description", "sample_rate", "output_rate", "channel", "seed", "trim",
             "loudness_db", "recording", "voices", "turns")
LEGS = ("left", "right")  # the channels of a stereo recording, in file order
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ScenarioError(ValueError):
    """A script that cannot be used; the message names the file, the place and the fix."""


@dataclass(frozen=True)
class Voice:
    """Cloned from ``reference`` (audio files or voice-profile checkpoint folders), or with
    none a real person whose turns are all recordings; ``leg`` ("left"/"right") is the channel
    of a stereo recording this voice is heard on ("" in a mono one); ``adapt``: the cloned voice
    is first fine-tuned on its reference, once per render (``api.finetune_voice``)."""

    name: str
    reference: tuple[Path, ...] = ()
    leg: str = ""
    adapt: bool = False


@dataclass(frozen=True)
class Turn:
    """Turn ``number`` (from 1): a ``pause`` in seconds, a recording ``audio`` of ``speaker``
    (``source``: its path as written in the script; ``text``: an optional transcript), or
    ``text`` said in ``speaker``'s cloned voice. ``overlap``: seconds this speech turn starts
    before the previous speech turn ends (barge-in; 0: after it)."""

    number: int
    speaker: str = ""
    text: str = ""
    audio: Path | None = None
    source: str = ""
    pause: float = 0.0
    overlap: float = 0.0

    @property
    def label(self) -> str:
        """``"real"`` for a recording, ``"fake"`` for synthesised text, ``""`` for a pause."""
        return "" if self.pause else "real" if self.audio else "fake"


@dataclass(frozen=True)
class Script:
    """A checked scenario script (see :func:`load_script`); rates in Hz, levels in dBFS."""

    path: Path
    sha256: str
    voices: tuple[Voice, ...]
    turns: tuple[Turn, ...]
    description: str = ""
    sample_rate: int = 16000
    output_rate: int = 8000
    channel: str | tuple[ChannelStep, ...] = "phone"
    seed: int = 0
    trim: bool = True
    loudness_db: float | None = -23.0
    recording: str = "mono"

    def voice(self, name: str) -> Voice:
        """The voice called ``name``."""
        return next(voice for voice in self.voices if voice.name == name)


# synthesize(voice_name, voice, text) -> (T,) float32 waveform at the script's sample_rate
Synthesizer = Callable[[str, Voice, str], np.ndarray]


# ----------------------------------------------------------------------------- parsing
# Helpers raise ScenarioError("<where>: <problem>; <fix>"); load_script adds the file name.


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses duplicate keys (a silently dropped turn is worse than an error)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = sorted({str(key) for key in keys if keys.count(key) > 1})
        if duplicates:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {duplicates}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _bad(where: str, problem: str, fix: str) -> ScenarioError:
    return ScenarioError(f"{where}: {problem}; {fix}")


def _mapping(where: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, f"expected a mapping, got {value!r}", f"write {{{allowed[0]}: ...}}")
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise _bad(where, f"unknown keys {unknown}", f"use only {list(allowed)}")
    return value


def _typed(where: str, value: Any, kind: type | tuple[type, ...], fix: str) -> Any:
    # bool is an int in Python, but `seed: true` or `pause: yes` is a mistake
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise _bad(where, f"expected {getattr(kind, '__name__', 'a number')}, got {value!r}", fix)
    return value


def _in_range(where: str, value: Any, low: float, high: float, kind: Any = int) -> Any:
    _typed(where, value, kind, f"give {'an integer' if kind is int else 'a number'}")
    if not low <= value <= high:  # also refuses NaN
        raise _bad(where, f"{value} is out of range", f"use {low} ... {high}")
    return value


def _file(folder: Path, where: str, written: Any, folder_ok: bool = False) -> Path:
    """Expands ``${VAR}`` and ``~``, resolves relative to the script, and checks it exists.

    A variable holding a relative path (``export VOICEFAKE_DATA=../shared/data``) means it
    relative to the current directory, as in the shell that set it, not to the script.
    """
    written = _typed(where, written, str, "give a path as a string")
    for var in _VAR.findall(written):
        if var not in os.environ:
            raise _bad(where, f"{written!r} uses ${{{var}}}, which is not set",
                       f"export {var}=... (VOICEFAKE_DATA: the shared data folder)")
    expanded = Path(_VAR.sub(lambda match: os.path.abspath(os.environ[match.group(1)])
                             if written.startswith(match.group(0)) else os.environ[match.group(1)],
                             written)).expanduser()
    resolved = folder / expanded  # an absolute `expanded` replaces `folder`
    if not (resolved.is_file() or folder_ok and resolved.is_dir()):
        raise _bad(where, f"{resolved} does not exist", "fix the path (relative to the script)")
    return resolved


def _voice(folder: Path, name: Any, spec: Any) -> Voice:
    where = f"voice {name!r}"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _bad(where, "bad voice name", "use letters, digits, '_', '-', '.'")
    spec = _mapping(where, spec, ("reference", "recording", "leg", "adapt"))
    if ("reference" in spec) == (spec.get("recording") is True):
        raise _bad(where, f"got {spec!r}", "give either reference: [files] (a cloned voice) "
                   "or recording: true (a real person who speaks recordings)")
    refs = spec.get("reference", [])
    refs = [refs] if isinstance(refs, str) else _typed(where, refs, list, "list the files")
    if "reference" in spec and not refs:
        raise _bad(where, "empty reference list", "list at least one file or folder")
    leg = spec.get("leg", "")
    if leg not in ("", *LEGS):
        raise _bad(where, f"leg {leg!r} is not a channel", "use leg: left or leg: right")
    adapt = _typed(f"{where} adapt", spec.get("adapt", False), bool, "use true or false")
    if adapt and "reference" not in spec:
        raise _bad(where, "adapt: true on a recorded voice", "adapt only a cloned voice (one with reference:)")
    paths = tuple(_file(folder, f"{where} reference", ref, True) for ref in refs)
    if adapt and any(path.is_dir() for path in paths):
        raise _bad(where, "adapt: true with a voice-profile folder as reference",
                   "give the reference recordings, or remove adapt: (a saved voice is used as it is)")
    return Voice(name, paths, leg, adapt)


def _turn(folder: Path, number: int, spec: Any, voices: dict[str, Voice]) -> Turn:
    where = f"turn {number}"
    if isinstance(spec, dict) and "pause" in spec:
        pause = _mapping(where, spec, ("pause",))["pause"]
        return Turn(number, pause=float(_in_range(f"{where} pause", pause, *PAUSE_S, (int, float))))
    spec = _mapping(where, spec, ("speaker", "text", "audio", "overlap"))
    speaker = spec.get("speaker")
    if not isinstance(speaker, str) or speaker not in voices:
        raise _bad(where, f"speaker {speaker!r} is not a voice", f"use one of {sorted(voices)}")
    text = _typed(where, spec.get("text", ""), str, 'quote the text: text: "..."').strip()
    overlap = float(_in_range(f"{where} overlap", spec["overlap"], *OVERLAP_S, (int, float))) if "overlap" in spec else 0.0
    if "audio" in spec:
        audio = _file(folder, f"{where} audio", spec["audio"])
        return Turn(number, speaker, text, audio=audio, source=spec["audio"], overlap=overlap)
    if not text:
        raise _bad(where, "no text and no audio", "give text: (cloned) or audio: (recording)")
    if not voices[speaker].reference:
        raise _bad(where, f"{speaker!r} is a recorded voice and cannot say text",
                   f"give this turn an audio: file, or give {speaker!r} a reference: to clone")
    return Turn(number, speaker, text, overlap=overlap)


def _channel(value: Any) -> str | tuple[ChannelStep, ...]:
    if value in ("phone", "none"):
        return value
    fix = 'use "phone", "none" or a list of {name: ..., params: {...}} steps'
    steps = []
    for number, item in enumerate(_typed("channel", value, list, fix), 1):
        where = f"channel step {number}"
        try:
            step = ChannelStep.from_dict(_mapping(where, item, ("name", "params")))
        except (ValueError, TypeError) as err:
            raise _bad(where, str(err), fix) from None
        if step.name == "speed":
            raise _bad(where, "speed changes the call's length and would move every segment",
                       "remove it (or apply speed to a turn's file)")
        steps.append(step)
    return tuple(steps)


def _parse(path: Path, raw: bytes) -> Script:
    try:
        data = yaml.load(raw, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise _bad("YAML", " ".join(str(err).split()), "fix the syntax") from None
    data = _mapping("top level", data, _TOP_KEYS)
    if missing := [key for key in ("voices", "turns") if not data.get(key)]:
        raise _bad("top level", f"no {' or '.join(missing)}", "add non-empty sections")
    specs = _typed("voices", data["voices"], dict, "map names to voices").items()
    voices = {name: _voice(path.parent, name, spec) for name, spec in specs}
    turns = tuple(_turn(path.parent, number, spec, voices) for number, spec
                  in enumerate(_typed("turns", data["turns"], list, "list the turns"), 1))
    if all(turn.pause for turn in turns):
        raise _bad("turns", "only pauses", "add at least one speech turn")
    for before, turn in zip((None, *turns[:-1]), turns, strict=True):
        if turn.overlap and (before is None or before.pause or before.speaker == turn.speaker):
            raise _bad(f"turn {turn.number} overlap", "a barge-in must follow another speaker's speech turn",
                       "remove overlap:, or put it on a turn right after another speaker's line")
    channel = _channel(data.get("channel", "phone"))
    recording = data.get("recording", "mono")
    if recording not in ("mono", "stereo"):
        raise _bad("recording", f"{recording!r} is not a layout", "use mono (one channel) or stereo (one leg per party)")
    speakers = {turn.speaker for turn in turns if not turn.pause}
    for voice in voices.values():
        if recording == "stereo" and voice.name in speakers and not voice.leg:
            raise _bad(f"voice {voice.name!r}", "has no leg in a stereo recording", "give it leg: left or leg: right")
        if recording == "mono" and voice.leg:
            raise _bad(f"voice {voice.name!r}", "has a leg, but the recording is mono",
                       "add recording: stereo at the top, or remove the leg")
    sample_rate = _in_range("sample_rate", data.get("sample_rate", 16000), *RATES)
    output_rate = data.get("output_rate", 8000 if channel == "phone" else sample_rate)
    loudness = data.get("loudness_db", -23.0)
    return Script(
        path, hashlib.sha256(raw).hexdigest(), tuple(voices.values()), turns,
        description=_typed("description", data.get("description", ""), str, "quote it"),
        sample_rate=sample_rate, output_rate=_in_range("output_rate", output_rate, *RATES),
        channel=channel, seed=_in_range("seed", data.get("seed", 0), 0, 2**32 - 1),
        trim=_typed("trim", data.get("trim", True), bool, "use true or false"),
        loudness_db=None if loudness is None else float(
            _in_range("loudness_db", loudness, -60.0, 0.0, (int, float))), recording=recording)


def load_script(path: str | os.PathLike[str]) -> Script:
    """Reads and checks a scenario script (format: recipes/scenarios/README.md).

    Raises:
        ScenarioError: bad YAML, unknown keys, bad types or values, unknown speakers, missing
            files, unset ``${VARS}``: one line naming the script, the turn or voice, the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"{path}: no such file; check the script's path")
    raw = path.read_bytes()
    try:
        return _parse(path, raw)
    except ScenarioError as err:
        raise ScenarioError(f"{path}: {err}") from None


# ----------------------------------------------------------------------------- rendering


def _fade(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``FADE_S`` (at most half the turn) each."""
    length = min(round(FADE_S * sample_rate), len(wav) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / max(length, 1))
    out = wav.astype(np.float32, copy=True)
    out[:length] *= ramp
    out[len(out) - length:] *= ramp[::-1]
    return out


def _turn_audio(script: Script, turn: Turn, synthesize: Synthesizer) -> np.ndarray:
    """The (T,) float32 waveform of one speech turn at ``script.sample_rate``."""
    rate = script.sample_rate
    if turn.audio is not None:
        wav = load_audio(turn.audio, rate, name=str(turn.audio))
    else:
        wav = np.asarray(synthesize(turn.speaker, script.voice(turn.speaker), turn.text))
        if wav.ndim != 1 or wav.size == 0 or not np.all(np.isfinite(wav)):
            raise ScenarioError(f"the synthesizer returned shape {wav.shape}; it must return "
                                "a non-empty finite (T,) waveform")
    if script.trim:
        wav = trim_silence(wav, rate, pad_s=TRIM_PAD_S)
        if wav.size == 0:
            raise ScenarioError("no speech found; check the audio, or set trim: false")
    if script.loudness_db is not None:
        wav = loudness_normalize(wav, rate, script.loudness_db)
    return _fade(wav, rate)


def _apply_channel(script: Script, wav: np.ndarray, seed: int) -> tuple[np.ndarray, list[ChannelStep]]:
    """Runs the script's channel over the whole call (or leg); same length, so no segment moves."""
    if script.channel == "none":
        return wav, []
    if isinstance(script.channel, str):  # "phone": a random realistic call drawn from the seed
        out, steps = phone_call(wav, script.sample_rate, seed)
    else:
        steps = list(script.channel)
        out = apply_chain(wav, script.sample_rate, steps, seed)
    if len(out) != len(wav):  # only speed changes the length; load_script refuses it
        raise ScenarioError(f"{script.path}: channel: it changed the call's length; remove speed")
    return out, steps


def _segment(turn: Turn, start: int, end: int, sample_rate: int) -> dict[str, Any]:
    """A ground-truth segment in the detector's format, plus where it came from."""
    extra = {"text": turn.text, "source": turn.source}
    return {"start": start / sample_rate, "end": end / sample_rate, "speaker": turn.speaker,
            "label": turn.label, "turn": turn.number, **{k: v for k, v in extra.items() if v}}


def render_turns(script: Script,
                 synthesize: Synthesizer) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The call before the channel, (T,) float32 at ``script.sample_rate``, and its segments.

    Speech turns are loaded or synthesised, trimmed, levelled and faded; pauses are silence.
    A turn with ``overlap`` starts that long before the previous turn ends, and the two are
    added where they overlap. Every piece is padded to whole samples at ``script.output_rate``
    too, so segment times are exact at both rates. Raises ScenarioError: unreadable recording,
    no speech, bad synthesis, an overlap longer than the turn it cuts into.
    """
    length, placed, segments = _place_turns(script, synthesize)
    call = np.zeros(length, np.float32)
    for start, wav in placed:
        call[start : start + len(wav)] += wav
    return call, segments


def _place_turns(script: Script,
                 synthesize: Synthesizer) -> tuple[int, list[tuple[int, np.ndarray]], list[dict[str, Any]]]:
    """(call length, [(start sample, turn audio)] of the speech turns, segments): see
    :func:`render_turns`."""
    rate = script.sample_rate
    step = rate // gcd(rate, script.output_rate)  # samples per whole output-rate sample
    placed: list[tuple[int, np.ndarray]] = []
    segments: list[dict[str, Any]] = []
    offset = 0
    for turn in script.turns:
        if turn.pause:
            offset += step * max(1, round(turn.pause * rate / step))
            continue
        try:
            wav = _turn_audio(script, turn, synthesize)
        except (ScenarioError, AudioError) as err:
            raise ScenarioError(f"{script.path}: turn {turn.number}: {err}") from None
        wav = np.pad(wav, (0, -len(wav) % step))
        start = offset - step * round(turn.overlap * rate / step)
        if turn.overlap and start < segments[-1]["start"] * rate:
            raise ScenarioError(f"{script.path}: turn {turn.number} overlap: {turn.overlap:g} s is longer than the "
                                f"turn it cuts into ({offset / rate - segments[-1]['start']:.2f} s); shorten it")
        segments.append(_segment(turn, start, start + len(wav), rate))
        placed.append((start, wav))
        offset = max(offset, start + len(wav))
    return offset, placed, segments


def render(script: Script, synthesize: Synthesizer,
           model: str = f"scenario@{__version__}") -> tuple[np.ndarray, int, dict[str, Any]]:
    """Renders a script into one call recording and its ground truth.

    :func:`render_turns`, then the channel over the whole call, then resampling to
    ``script.output_rate``. ``model`` names the generator (in the truth and the watermark).
    A ``recording: stereo`` script puts each voice's turns on its leg (silence there while the
    other side speaks) and runs each leg through its own line: the phone channel drawn from
    ``seed`` on the left and ``seed + 1`` on the right, as a PBX records the two parties.

    Returns:
        ``(wav, sample_rate, truth)``: the (T,) float32 call ((T, 2) for stereo: left, right),
        its rate, and ``segments`` (``[{"start", "end", "speaker", "label", "turn", "text"?,
        "source"?}]``, seconds, no pauses; stereo adds ``channel``: 0 left, 1 right),
        ``duration``, ``channel`` (steps as dicts; for stereo ``{"left": [...], "right": [...]}``),
        ``recording``, ``seed``, ``script_sha256``...
    """
    length, placed, segments = _place_turns(script, synthesize)
    num_samples = length * script.output_rate // script.sample_rate
    chain: list[dict[str, Any]] | dict[str, list[dict[str, Any]]]
    if script.recording == "stereo":  # each turn on its voice's leg, so a barge-in stays on its own
        legs = np.zeros((len(LEGS), length), np.float32)
        for (start, wav), segment in zip(placed, segments, strict=True):
            side = LEGS.index(script.voice(segment["speaker"]).leg)
            legs[side, start : start + len(wav)] += wav
            segment["channel"] = side
        outputs, chain = [], {}
        for side, leg in enumerate(legs):
            out, steps = _apply_channel(script, leg, script.seed + side)
            outputs.append(np.pad(resample(out, script.sample_rate, script.output_rate), (0, num_samples))[:num_samples])
            chain[LEGS[side]] = [step.to_dict() for step in steps]
        call = np.stack(outputs, axis=1)
    else:
        clean = np.zeros(length, np.float32)
        for start, wav in placed:
            clean[start : start + len(wav)] += wav
        out, steps = _apply_channel(script, clean, script.seed)
        call = np.pad(resample(out, script.sample_rate, script.output_rate), (0, num_samples))[:num_samples]
        chain = [step.to_dict() for step in steps]
    truth = {
        "format": "voicefake-scenario", "format_version": FORMAT_VERSION,
        "script": script.path.name, "script_sha256": script.sha256,
        "description": script.description, "model": model, "voicefake_version": __version__,
        "sample_rate": script.output_rate, "render_sample_rate": script.sample_rate,
        "duration": num_samples / script.output_rate, "seed": script.seed, "recording": script.recording,
        "channel": chain, "segments": segments,
    }
    return call, script.output_rate, truth


# ----------------------------------------------------------------------------- writing


def truth_path(path: str | os.PathLike[str]) -> Path:
    """Where the ground truth of the call ``path`` goes: ``CALL.json`` beside ``CALL.wav``."""
    return Path(path).with_suffix(".json")


def check_outputs(path: str | os.PathLike[str], force: bool) -> None:
    """Raises (before any work) unless ``path`` is a .wav/.flac and it and its JSON are free."""
    path = Path(path)
    if path.suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"{path}: a call is written as .wav or .flac; use CALL.wav")
    for target in (path, truth_path(path)):
        if target.exists() and not force:
            raise FileExistsError(f"{target}: already exists; pass force=True (CLI: --force)")


def write_call(path: str | os.PathLike[str], wav: np.ndarray, sample_rate: int,
               truth: dict[str, Any], force: bool = False,
               watermark: bool = True) -> tuple[Path, Path]:
    """Writes the call and ``CALL.json`` beside it, both atomically; returns both paths.

    The whole call is generated audio, so it goes through :func:`voicefake.api.save_generated`
    (watermarked unless ``watermark=False``, labelled synthetic); the JSON says which spans
    are real. Raises FileExistsError (no ``force``) or ValueError (not .wav/.flac).
    """
    from voicefake.api import save_generated  # lazy: the API is the layer above this module

    path, json_path = Path(path), truth_path(path)
    check_outputs(path, force)
    note = f"call scenario {truth['script']}; real and synthetic spans in {json_path.name}"
    save_generated(path, wav, sample_rate, truth["model"], force=force, extra=note,
                   watermark=watermark)
    record = {"audio": path.name, "watermark": watermark, **truth}
    tmp = json_path.with_name(f".{json_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, json_path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, json_path
