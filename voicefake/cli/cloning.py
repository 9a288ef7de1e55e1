"""``voicefake clone`` (text to speech in a voice), ``convert`` (voice conversion) and
``finetune`` (a voice profile, optionally with a decoder adapted to that voice)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from voicefake import api
from voicefake.cli import common

CONSENT = "Cloning a voice needs its owner's consent."


def _add_voice_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", nargs="+", required=True, metavar="REF",
                   help="3-30 s of the target voice: audio files, or a voice-profile folder (finetune / --save-voice)")
    p.add_argument("--blend", type=common.unit_interval, default=None,
                   help="0 = decoder only (most intelligible), 1 = only the target's matched frames in voiced speech "
                        "(most similar); "
                        f"default for a zero-shot voice {api.DEFAULT_BLEND} (convert; {api.CALL_BLEND} from a call's "
                        f"reference) / {api.DEFAULT_TTS_BLEND} (clone) "
                        f"from {api.MIN_BLEND_SECONDS:g} s of reference (0 under it), "
                        f"{api.FINETUNED_BLEND} for a fine-tuned one")
    p.add_argument("--eq", type=common.unit_interval, default=api.DEFAULT_EQ,
                   help="0-1: equalise the output towards the reference's long-term spectrum (its timbre and "
                        "recording channel: a closer voice for a few more lost words); default %(default)s")
    p.add_argument("--gv", type=common.unit_interval, default=api.DEFAULT_GV,
                   help="0-1: restore the spectral movement the decoder smooths away, towards the "
                        "reference's (a global-variance post-filter); default %(default)s")
    p.add_argument("--contrast", type=_non_negative, default=None, metavar="C",
                   help="push the reference's speaker embedding away from the average voice before it conditions "
                        "the decoder (a caricature: a closer voice by the judges, a few more lost words and a lower "
                        "DNSMOS; 0 = off); default: the decoder's own (1 for conversion-ref from "
                        f"{api.MIN_BLEND_SECONDS:g} s of reference, 0.5 for conversion-flite (clone); 0 for the others, "
                        "shorter references and a "
                        "fine-tuned voice)")
    p.add_argument("--pitch-range", type=_non_negative, default=None, metavar="S",
                   help="widen or narrow the source's intonation towards the reference's pitch range (0 = the "
                        "source's own, 1 = the reference's); default "
                        f"{api.DEFAULT_TTS_PITCH_RANGE:g} for text to speech into a zero-shot voice (clone), "
                        f"{api.DEFAULT_PITCH_RANGE:g} for conversion and a fine-tuned voice")
    p.add_argument("--identity-steps", type=_steps, default=None, metavar="N",
                   help="gradient steps that adapt the target embedding to each input so that the speaker "
                        "encoder hears the reference's voice (a closer voice; 0 = off, 6-9x faster); default "
                        f"{api.DEFAULT_IDENTITY_STEPS}, or {api.FINETUNED_IDENTITY_STEPS} for a fine-tuned voice")
    p.add_argument("--adapt", action="store_true",
                   help="first fine-tune a copy of the decoder on the reference recordings (about 20 s on 2 "
                        "threads for 30 s of audio; the bundled conversion-adapt decoder, or --checkpoint): a "
                        "closer voice that keeps more words (what `voicefake finetune` saves for reuse)")
    p.add_argument("--no-watermark", action="store_true",
                   help="do not watermark the output (logged, and stated in its metadata)")
    common.add_common(p)


def _voice(args: argparse.Namespace, save_to: str | None = None) -> Any:
    """The reference's voice: zero-shot, or with --adapt a decoder fine-tuned on the reference
    recordings (api.finetune_voice with its defaults); ``save_to``: also saved there."""
    reference = args.reference if len(args.reference) > 1 else args.reference[0]
    if not args.adapt:
        profile = api.voice_profile(reference, device=args.device)
        if save_to:
            api.save_voice(profile, save_to, {"name": "voice", "references": list(args.reference)})
        return profile
    folders = [r for r in args.reference if Path(r).is_dir()]
    if folders:
        raise common.UsageError(f"{folders[0]}: --adapt fine-tunes on recordings and this is a folder (a saved "
                                "voice?); pass the recordings as --reference, or drop --adapt")
    print(f"adapting the voice to {len(args.reference)} reference file(s)...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="voicefake-adapt-") as folder:
        path, _ = api.finetune_voice(list(args.reference), save_to or Path(folder) / "voice", device=args.device,
                                     checkpoint=args.checkpoint or api.FINETUNE_BASE)
        return api.voice_profile(str(path), device=args.device)


def _non_negative(text: str) -> float:
    """argparse ``type=`` for a speaker contrast or a pitch range: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"{value:g} is below 0")
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _contrast_run(profile: Any, decoder: str, contrast: float | None, device: str) -> float:
    """The speaker contrast api.convert runs for this voice through ``decoder`` (for the JSON record)."""
    return api.contrast_for(profile, api.load(decoder, device, kind="conversion").module, contrast)


def _steps(text: str) -> int:
    """argparse ``type=`` for a count >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the clone, convert and finetune subcommands."""
    c = sub.add_parser("clone", help="text to speech in a target voice", epilog=CONSENT,
                       description="Speaks TEXT in the reference's voice (a rule-based front end, then voice "
                       "conversion and the GAN vocoder). The output is watermarked and labelled synthetic.")
    c.add_argument("--text", help="what to say (or --text-file)")
    c.add_argument("--text-file", help="a UTF-8 text file to speak")
    c.add_argument("--language", default="en-us", help="espeak-ng voice (default en-us)")
    c.add_argument("--engine", choices=["auto", "espeak", "flite"], default="auto",
                   help="front end: espeak-ng (bundled, many languages) or flite (English, more natural and "
                   "more intelligible after conversion; needs `apt-get install flite`); auto (default): "
                   "flite for English when installed, espeak-ng otherwise")
    c.add_argument("--tts-voice", help="flite voice: rms (default), slt, awb, kal16, kal")
    c.add_argument("--rate", type=int, default=api.DEFAULT_RATE,
                   help="speaking rate in words per minute (default %(default)s)")
    c.add_argument("-o", "--output", required=True, help="output audio file (.wav or .flac)")
    _add_voice_options(c)
    c.set_defaults(run=run_clone)

    v = sub.add_parser("convert", help="voice conversion: source speech in a target voice", epilog=CONSENT,
                       description="Converts each SOURCE (same words, timing, intonation) into the reference's "
                       "voice. Writes <source>.converted.wav beside each input unless -o is given.")
    v.add_argument("inputs", nargs="+", metavar="SOURCE", help="audio or video files, or folders")
    v.add_argument("-o", "--output", help="output file (one input) or folder")
    v.add_argument("--save-voice", help="also save the reference's voice profile to this folder (reuse it with --reference)")
    _add_voice_options(v)
    v.set_defaults(run=run_convert)

    f = sub.add_parser("finetune", help="a voice profile from minutes of one voice", epilog=CONSENT,
                       description="Builds a voice checkpoint (kind 'voice') from every recording in --audio: "
                       "its frames for matching, its embedding, and a copy of the conversion decoder "
                       "fine-tuned on that voice for --steps steps (from the bundled conversion-adapt "
                       "decoder unless --checkpoint names another). Use it as --reference.")
    f.add_argument("--audio", required=True, help="folder (or file) with minutes of the target voice")
    f.add_argument("-o", "--output", required=True, help="output checkpoint folder")
    f.add_argument("--steps", type=int, default=None,
                   help="decoder fine-tuning steps (0 = profile only; default: 300 for a minute of audio or "
                        "more, 200 below)")
    f.add_argument("--keep", type=common.share, default=None,
                   help="share of the decoder's weight change the voice keeps, in (0, 1]; lower keeps more "
                        "words and less of the voice (default: 0.7)")
    f.add_argument("--max-minutes", type=float, default=10.0, help="use at most this much audio")
    common.add_common(f)
    f.set_defaults(run=run_finetune)


def _model(args: argparse.Namespace, default: str = "conversion", voice_decoder: bool = True) -> str:
    """The decoder's name and version. With --adapt, or a saved voice that carries its own
    decoder (``voice_decoder``: the command uses it), the base that the voice's copy was tuned from."""
    if args.adapt:
        base = api.load(args.checkpoint or api.FINETUNE_BASE, args.device, kind="conversion")
        return f"{base.name} (adapted to the reference)"
    folder = Path(args.reference[0])
    if voice_decoder and len(args.reference) == 1 and (folder / "config.json").is_file():
        saved = api.load(folder, args.device, kind="voice").checkpoint
        if saved.model.get("decoder") is not None:
            return f"{saved.metadata.get('decoder', 'a fine-tuned decoder')} (adapted to the voice)"
    return api.load(args.checkpoint or default, args.device, kind="conversion").name


def _progress(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    def show(done: int, total: int) -> None:
        print(f"\rsentence {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    return show


def run_clone(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.text_file is None):
        raise common.UsageError("give the text with exactly one of --text or --text-file")
    text = args.text if args.text is not None else Path(args.text_file).read_text(encoding="utf-8")
    target = Path(args.output)
    common.check_writable(target, args.force)
    engine = api.tts_engine(args.engine, args.language)
    if args.adapt and engine == "espeak":
        raise common.UsageError("--adapt does not apply to espeak-ng's speech, which keeps the zero-shot voice "
                                "(its own decoder, conversion-espeak); use --engine flite for English, or drop --adapt")
    note = api.tts_engine_note(args.engine, args.language)
    if note:
        print(f"note: {note}", file=sys.stderr)
    start = time.perf_counter()
    profile = _voice(args)
    model = _model(args, api.tts_decoder(engine, profile), voice_decoder=engine != "espeak")  # espeak-ng: zero-shot voice
    wav, rate = api.clone(text, profile, language=args.language, rate=args.rate, blend=args.blend, eq=args.eq,
                          device=args.device, progress=_progress(args), checkpoint=args.checkpoint,
                          engine=args.engine, tts_voice=args.tts_voice, identity_steps=args.identity_steps,
                          gv=args.gv, contrast=args.contrast, pitch_range=args.pitch_range)
    steps = api.identity_steps_for(profile, args.identity_steps)
    spoken = api.tts_profile(profile, engine)
    blend = api.blend_for(spoken, args.blend, text=True)  # the blend clone() ran
    pitch_range = api.pitch_range_for(spoken, args.pitch_range, text=True)
    contrast = _contrast_run(spoken, args.checkpoint or api.tts_decoder(engine, profile), args.contrast, args.device)
    seconds = time.perf_counter() - start
    api.save_generated(target, wav, rate, model, force=args.force, watermark=not args.no_watermark)
    duration = len(wav) / rate
    record = {"file": str(target), "output": str(target), "duration": round(duration, 3),
              "seconds": round(seconds, 3), "x_real_time": round(duration / max(seconds, 1e-9), 2),
              "reference": args.reference, "reference_band_hz": api.reference_band_hz(profile),
              "model": model, "engine": engine, "blend": blend, "eq": args.eq, "gv": args.gv, "identity_steps": steps,
              "contrast": contrast, "pitch_range": pitch_range, "adapted": args.adapt,
              "watermark": not args.no_watermark}
    common.emit(args, record, f"-> {target} ({duration:.2f} s of speech in {seconds:.2f} s)")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    if args.checkpoint:
        _model(args)  # a bad --checkpoint is one error before the voice is built or saved
    if args.save_voice:
        common.check_writable(Path(args.save_voice), args.force)
    profile = _voice(args, args.save_voice)
    model = _model(args, api.convert_decoder(profile))
    multiple = len(args.inputs) > 1 or Path(args.inputs[0]).is_dir()
    steps = api.identity_steps_for(profile, args.identity_steps)
    blend = api.blend_for(profile, args.blend)
    band = api.reference_band_hz(profile)
    contrast = _contrast_run(profile, args.checkpoint or api.convert_decoder(profile), args.contrast, args.device)
    pitch_range = api.pitch_range_for(profile, args.pitch_range)

    def handle(label: str, path: Path) -> tuple[dict, str]:
        target = common.output_path(args.output, path, ".converted.wav", multiple)
        common.check_writable(target, args.force)
        start = time.perf_counter()
        wav, rate = api.convert(path, profile, blend=args.blend, eq=args.eq, checkpoint=args.checkpoint,
                                device=args.device, name=label, identity_steps=args.identity_steps, gv=args.gv,
                                contrast=args.contrast, pitch_range=args.pitch_range)
        seconds = time.perf_counter() - start
        api.save_generated(target, wav, rate, model, force=args.force, watermark=not args.no_watermark)
        duration = len(wav) / rate
        record = {"output": str(target), "duration": round(duration, 3), "seconds": round(seconds, 3),
                  "x_real_time": round(duration / max(seconds, 1e-9), 2), "model": model,
                  "reference_band_hz": band, "blend": blend, "eq": args.eq, "gv": args.gv, "identity_steps": steps,
                  "contrast": contrast, "pitch_range": pitch_range, "adapted": args.adapt,
                  "watermark": not args.no_watermark}
        return record, f"{label} -> {target} ({duration:.2f} s in {seconds:.2f} s)"

    return common.per_file(args, args.inputs, handle)


def run_finetune(args: argparse.Namespace) -> int:
    from voicefake.audio.io import iter_media_files

    out = Path(args.output)
    common.check_writable(out, args.force)
    files = list(iter_media_files([args.audio]))
    if not files:
        raise common.UsageError(f"{args.audio}: no audio files found")
    start = time.perf_counter()
    path, info = api.finetune_voice(files, out, steps=args.steps, max_minutes=args.max_minutes,
                                    checkpoint=args.checkpoint or api.FINETUNE_BASE, device=args.device, keep=args.keep)
    record = {"file": args.audio, "output": str(path), "seconds": round(time.perf_counter() - start, 1), **info}
    common.emit(args, record, f"voice checkpoint -> {path} ({info['minutes']:.1f} min of audio, {info['steps']} steps)")
    return 0
