"""voicefake's Gradio page: a fraud analyst's workbench and a red team's studio.

    python demo/app.py [--host 127.0.0.1] [--port 7860] [--auth user:password]

Every action is a call into :mod:`voicefake.api`; models load once and are cached there.
Safe by default: binds 127.0.0.1, no public share link, optional login, upload size and
duration limits, a queue for concurrent users, and errors shown in the page.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import studio  # noqa: E402
import views  # noqa: E402

from voicefake import __version__, api  # noqa: E402
from voicefake.audio.io import AudioError  # noqa: E402

log = logging.getLogger("voicefake.demo")
LIMITS = {"max_seconds": 3600.0, "max_file_mb": 100}
RATE = views.SAMPLE_RATE
TABLE_HEADERS = ["file", "verdict", "p_fake", "watermark", "speaker check", "error"]


def _path(item: Any) -> str:
    return item if isinstance(item, str) else getattr(item, "name", str(item))


def _load(path: str, mono: bool = True) -> np.ndarray:
    return api.load_waveform(path, RATE, max_duration=LIMITS["max_seconds"], name=Path(path).name, mono=mono)


def analyze_one(path: str, threshold: float | None, enrolled: np.ndarray | None) -> dict[str, Any]:
    """Everything the page shows for one recording (raises AudioError for unusable files)."""
    frames = _load(path, mono=False)  # (T, channels): the legs of a stereo call are scored apart
    wav = frames.mean(axis=1)
    # the analyst's threshold (if any) replaces the model's
    report = api.detect(frames, name=Path(path).name, threshold=None if threshold is None else float(threshold)).to_dict()
    threshold = report["threshold"]
    item: dict[str, Any] = {"file": Path(path).name, "sha256": api.file_sha256(path),
                            "threshold": threshold, "report": report}
    mark = getattr(api, "watermark_detect", None)
    if mark is not None:
        found = mark(wav)
        item["watermark"] = found.to_dict() if hasattr(found, "to_dict") else found
    if enrolled is not None:  # a stereo call's legs are two people: each is checked
        check = api.verify_embedding(enrolled, frames, timeline=True)
        item["speaker"] = {"cosine": round(check.cosine, 3), "score": round(check.score, 3), "p_same": round(check.p_same, 3),
                           "same": check.same,
                           "matching_windows": [[seg["start"], seg["end"]] for seg in check.segments if seg["same"]]}
        if check.channels:
            item["speaker"]["channel"] = check.channel
            item["speaker"]["channels"] = [{"channel": c.channel, "cosine": round(c.cosine, 3), "same": c.same}
                                           for c in check.channels]
    item["timeline_png"] = views.figure_png(views.timeline_figure(frames, report, threshold))
    start, part = _evidence_view(wav, report)
    item["evidence_png"] = views.figure_png(views.evidence_figure(api.display_spectrogram(part), report, start))
    return item


def _evidence_view(wav: np.ndarray, report: dict[str, Any]) -> tuple[float, np.ndarray]:
    """(start s, audio) to draw under the evidence: all of it, or a long call's 30 s around its
    first saliency span (the detector's saliency looks at 30 s too)."""
    spans = report["evidence"].get("saliency", {}).get("spans", [])
    if wav.size <= 60 * RATE or not spans:
        return 0.0, wav
    start = min(max(0.0, spans[0]["start"] - 15.0), wav.size / RATE - 30.0)
    return start, wav[int(start * RATE): int((start + 30.0) * RATE)]


def _row(item: dict[str, Any]) -> list[Any]:
    if "error" in item:
        return [item["file"], "error", None, "", "", item["error"]]
    report = item["report"]
    mark = item.get("watermark")
    mark_text = "" if mark is None else ("voicefake mark found" if _marked(mark) else "none")
    speaker = item.get("speaker")
    speaker_text = "" if speaker is None else f"{'same' if speaker['same'] else 'DIFFERENT'} (cos {speaker['cosine']})"
    if speaker is not None and "channel" in speaker:
        speaker_text += f" on {views.channel_name(speaker['channel'], len(speaker['channels']))}"
    return [item["file"], report["label"], round(report["p_fake"], 4), mark_text, speaker_text, ""]


def _marked(mark: Any) -> bool:
    return bool(mark.get("watermarked")) if isinstance(mark, dict) else bool(mark)


def analyze(files: list[Any] | None, threshold: float, enroll: list[Any] | None, automatic: bool = True,
            progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008 (gradio injects progress this way)
    """Detect tab: scores every upload; returns table, details of the top file and reports.

    With ``automatic`` each file is decided at the model's own threshold for its bandwidth
    (narrowband call or wideband), and the slider's ``threshold`` is not used.
    """
    chosen = None if automatic else threshold
    if not files:
        raise gr.Error("Upload one or more recordings (wav, mp3, m4a, ogg, amr, flac, Asterisk gsm/ulaw/alaw/sln) or videos.")
    enrolled = None
    if enroll:
        try:
            enrolled = api.embed_speaker([_load(_path(f)) for f in enroll])
        except (AudioError, ValueError) as err:
            raise gr.Error(f"Enrolled voice: {err}") from None
    items = []
    for path in progress.tqdm([_path(f) for f in files], desc="analysing"):
        try:
            items.append(analyze_one(path, chosen, enrolled))
        except (AudioError, ValueError) as err:
            gr.Warning(str(err))
            items.append({"file": Path(path).name, "error": str(err)})
    good = [i for i in items if "error" not in i]
    first = max(good, key=lambda i: i["report"]["p_fake"]) if good else None
    reports = _write_reports(good, "model's (per file)" if chosen is None else chosen) if good else (None, None)
    choices = [i["file"] for i in good]
    return ([_row(i) for i in items], *detail(first), *reports,
            gr.update(choices=choices, value=first["file"] if first else None), items)


def detail(item: dict[str, Any] | None) -> tuple:
    """(verdict markdown, timeline image, evidence image, raw JSON) for one analysed file."""
    if item is None:
        return "No file could be analysed.", None, None, None
    extra = {}
    if "watermark" in item:
        extra["watermark"] = "voicefake watermark FOUND" if _marked(item["watermark"]) else "no voicefake watermark"
    if "speaker" in item:
        s = item["speaker"]
        extra["speaker check"] = (f"{'matches' if s['same'] else 'does NOT match'} the enrolled voice "
                                  f"(cosine {s['cosine']}, p_same {s['p_same']})")
        if "channels" in s:
            legs = "; ".join(f"{views.channel_name(c['channel'], len(s['channels']))}: "
                             f"{'matches' if c['same'] else 'does not match'} (cosine {c['cosine']})" for c in s["channels"])
            extra["speaker check"] += f", best on the {views.channel_name(s['channel'], len(s['channels']))} ({legs})"
        windows = s.get("matching_windows", [])
        extra["speaker check"] += (f"; 3 s windows matching it: {', '.join(f'{a:.1f}-{b:.1f} s' for a, b in windows[:8])}"
                                   f"{' ...' if len(windows) > 8 else ''}" if windows else "; no 3 s window matches it")
    md = views.verdict_markdown(item["file"], item["report"], extra)
    return md, _png_file(item["timeline_png"]), _png_file(item["evidence_png"]), item["report"]


def _png_file(encoded: str) -> str:
    import base64

    handle, path = tempfile.mkstemp(suffix=".png", prefix="voicefake-")
    with os.fdopen(handle, "wb") as f:
        f.write(base64.b64decode(encoded))
    return path


def show(choice: str, items: list[dict[str, Any]]) -> tuple:
    """Shows the details of another file of the batch."""
    return detail(next((i for i in items or [] if i["file"] == choice and "error" not in i), None))


def _write_reports(items: list[dict[str, Any]], threshold: float | str) -> tuple[str, str]:
    settings = {"threshold": threshold, "voicefake": __version__, "limits": LIMITS}
    folder = Path(tempfile.mkdtemp(prefix="voicefake-report-"))
    plain = [{k: v for k, v in i.items() if not k.endswith("_png")} for i in items]
    (folder / "report.json").write_text(json.dumps({"settings": settings, "files": plain}, indent=1))
    (folder / "report.html").write_text(views.report_html(items, settings))
    return str(folder / "report.json"), str(folder / "report.html")


def operating_point(threshold: float) -> str:
    """False-alarm and miss rates on the detector's dev data at ``threshold``."""
    rates = api.detection_operating_point(threshold) if hasattr(api, "detection_operating_point") else None
    if rates is None:
        return f"Threshold {threshold:.2f}."
    text = (f"At threshold **{threshold:.2f}**: false alarms on dev real speech **{100 * rates['far']:.1f}%**, "
            f"missed fakes **{100 * rates['miss']:.1f}%** (dev data: {rates['description']}).")
    calls = api.detection_operating_point(threshold, condition="narrowband")
    if calls is not None and "far_rerecorded" in calls:
        text += (f" Dev calls re-recorded through simulated microphones and phone lines (a stand-in for callers' "
                 f"equipment): **{100 * calls['far_rerecorded']:.1f}%** flagged.")
    return text


def model_thresholds() -> str:
    """The detector's own thresholds and their dev operating points (what the tick box applies)."""
    try:
        meta = api.load("detection").checkpoint.metadata
        calibration, dev = meta["calibration"], meta.get("dev", {})
    except (KeyError, TypeError):
        return ""
    pairs = [("narrowband calls", "narrowband", calibration.get("narrowband_threshold")),
             ("wideband audio", "wideband", calibration.get("threshold"))]
    if pairs[0][2] is None:
        return f"The model's threshold: **{calibration['threshold']:.2f}**."
    parts = []
    for label, condition, threshold in pairs:
        far, miss = dev.get(f"dev_{condition}_false_alarm_rate"), dev.get(f"dev_{condition}_miss_rate")
        detail = "" if far is None or miss is None else \
            f" (dev: {100 * far:.1f}% false alarms, {100 * miss:.1f}% missed fakes)"
        parts.append(f"{label} **{float(threshold):.2f}**{detail}")
    return "The model's thresholds: " + "; ".join(parts) + "."


def check_speaker(enroll: list[Any] | None, test: Any) -> str:
    """Speaker tab: is the test recording the enrolled voice?"""
    if not enroll or test is None:
        raise gr.Error("Upload at least one known-genuine clip to enroll, and a recording to check.")
    try:
        result = api.verify([_load(_path(f)) for f in enroll], _load(_path(test)))
    except (AudioError, ValueError) as err:
        raise gr.Error(str(err)) from None
    verdict = "✅ same speaker" if result.same else "⚠️ different speaker"
    return (f"### {verdict}\n\nscore **{result.score:.3f}** (threshold {result.threshold:.3f}, 1% false "
            f"accepts on dev trials) · cosine {result.cosine:.3f} · calibrated p_same **{result.p_same:.3f}**")


def resynthesize(source: Any, phase_iterations: float | None = None) -> tuple[tuple[int, np.ndarray], str]:
    """Vocoder tab: copy-synthesis of an upload; the result is synthetic speech."""
    if source is None:
        raise gr.Error("Upload a recording to re-synthesise.")
    iterations = None if phase_iterations is None else int(phase_iterations)
    try:
        wav, rate = api.resynthesize(_load(_path(source)), phase_iterations=iterations)
    except (AudioError, ValueError) as err:
        raise gr.Error(str(err)) from None
    from voicefake.nn.precision import compute_dtype, dtype_name

    loaded = api.load("vocoder")
    used = loaded.module.phase_iterations(iterations)
    return (rate, wav), (f"**SYNTHETIC SPEECH** generated by voicefake {__version__} ({loaded.name}, "
                         f"{used} phase-refinement iteration{'s' if used != 1 else ''}, "
                         f"{dtype_name(compute_dtype('auto'))} network).")


def lipsync(video: Any, speech: Any) -> tuple[str, str]:
    """Lip-sync tab: aligns new speech to the face and returns the dubbed video with offsets."""
    if video is None or speech is None:
        raise gr.Error("Upload a talking-face video and the speech to put on it.")
    out = Path(tempfile.mkdtemp(prefix="voicefake-lipsync-")) / "lipsynced.mp4"
    try:
        result = api.align(_path(video), _load(_path(speech)), output=out)
    except (AudioError, ValueError, RuntimeError) as err:
        raise gr.Error(str(err)) from None
    before, after = result.before, result.after
    return str(out), (f"Offset before: **{before.offset_frames} frames ({before.offset_ms:.0f} ms)**, "
                      f"sync score {before.sync_score:.2f} · after: **{after.offset_frames} frames "
                      f"({after.offset_ms:.0f} ms)**, sync score {after.sync_score:.2f} "
                      f"({'in sync' if after.in_sync else 'NOT in sync'}) · stretch "
                      f"{result.stretch_min:.2f}-{result.stretch_max:.2f}. The audio is SYNTHETIC-labelled "
                      "and watermarked.")


def _clone(references: Any, microphone: Any, saved: Any, mode: str, text: str, source: Any, consent: bool,
           blend: float, eq: float, gv: float, identity_steps: float, save_as: str, adapt: bool = False,
           contrast: float = studio.CONTRAST_SLIDER_DEFAULT, pitch_range: float = studio.PITCH_SLIDER_DEFAULT,
           mode_defaults: bool = True, progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Clone tab (see studio.clone_voice), with a per-sentence progress bar. With ``mode_defaults``
    the blend, contrast and pitch-range sliders are not read: the API picks them for the voice and
    mode; without it each runs at exactly its slider's value."""
    own = (None, None, None) if mode_defaults else (blend, contrast, pitch_range)
    return studio.clone_voice(references, microphone, saved, mode, text, source, consent, own[0], save_as,
                              load=_load, progress=lambda done, total: progress(done / total, desc="sentences"), eq=eq,
                              identity_steps=int(identity_steps or 0), gv=gv, adapt=bool(adapt), contrast=own[1],
                              pitch_range=own[2])


def build_app() -> gr.Blocks:
    """The whole page."""
    default_threshold = _default_threshold()
    with gr.Blocks(title="voicefake", delete_cache=(3600, 3600)) as app:
        gr.Markdown("# voicefake\nDetect synthetic speech in recorded calls, check speakers, and study "
                    "generated speech. Cloning a voice needs its owner's consent; everything generated "
                    "here is labelled as synthetic.")
        with gr.Tab("Detect"):
            with gr.Row():
                files = gr.File(label="Recordings or videos", file_count="multiple", elem_id="detect-files")
                enroll = gr.File(label="Optional: known-genuine clips of the claimed speaker", file_count="multiple")
            with gr.Row():
                automatic = gr.Checkbox(value=True, label="The model's thresholds (one for narrowband calls, one for "
                                        "wideband audio, each at 1% false alarms on its dev recordings)")
                threshold = gr.Slider(0.0, 1.0, value=default_threshold, step=0.01,
                                      label="Or one decision threshold on p_fake for every file (untick the box)")
            gr.Markdown(model_thresholds())
            point = gr.Markdown(operating_point(default_threshold))
            run = gr.Button("Analyse", variant="primary", elem_id="detect-run")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Batch (click a column to sort)", interactive=False,
                                 elem_id="detect-table")
            pick = gr.Dropdown(label="Details for", choices=[])
            verdict = gr.Markdown(elem_id="detect-verdict")
            timeline = gr.Image(label="Timeline: waveform and p_fake per window", type="filepath",
                                elem_id="detect-timeline")
            evidence = gr.Image(label="Evidence: spectrogram, time spans and bands that drove the score", type="filepath")
            raw = gr.JSON(label="Report (JSON)")
            with gr.Row():
                json_file = gr.File(label="Report (JSON)")
                html_file = gr.File(label="Report (printable HTML)")
            state = gr.State([])
            threshold.change(operating_point, threshold, point)
            run.click(analyze, [files, threshold, enroll, automatic],
                      [table, verdict, timeline, evidence, raw, json_file, html_file, pick, state],
                      api_name="analyze")
            pick.change(show, [pick, state], [verdict, timeline, evidence, raw], api_name=False)
        with gr.Tab("Speaker check"):
            enroll2 = gr.File(label="Known-genuine clips (enrollment)", file_count="multiple")
            test = gr.File(label="Recording to check")
            gr.Button("Check", variant="primary").click(check_speaker, [enroll2, test], gr.Markdown(),
                                                         api_name="check_speaker")
        with gr.Tab("Vocoder"):
            source = gr.File(label="Recording to re-synthesise through the GAN vocoder")
            iterations = gr.Slider(0, 16, value=api.load("vocoder").module.phase_iterations(), step=1,
                                   label="Phase refinement iterations (default 12: PESQ-WB 3.75 on unseen "
                                   "speakers, above Griffin-Lim-64; 1: about 2.5x faster, 3.19; 0: the network alone)")
            out_audio = gr.Audio(label="Output (SYNTHETIC)", type="numpy")
            gr.Button("Re-synthesise", variant="primary").click(resynthesize, [source, iterations],
                                                                 [out_audio, gr.Markdown()],
                                                                 api_name="resynthesize")
        with gr.Tab("Clone"):
            gr.Markdown("Speak any text, or re-voice a recording, in a target voice from 3-30 s of reference. "
                        "**Only clone a voice with its owner's consent.** Output is watermarked and labelled synthetic.")
            with gr.Row():
                with gr.Column():
                    refs = gr.File(label="Reference clips of the target voice (3-30 s in all)", file_count="multiple",
                                   elem_id="clone-refs")
                    mic = gr.Audio(sources=["microphone"], type="filepath", label="Or record the reference")
                    saved = gr.Dropdown(label="Or use a voice saved earlier", choices=[], allow_custom_value=False)
                with gr.Column():
                    mode = gr.Radio(list(studio.MODES), value=studio.MODES[0], label="Mode")
                    text = gr.Textbox(label="Text to speak", lines=3, elem_id="clone-text")
                    src = gr.File(label="Recording to convert (Convert mode)")
            with gr.Row():
                mode_defaults = gr.Checkbox(value=True, elem_id="clone-mode-defaults",
                                            label="Mode defaults: blend, contrast and pitch range picked for the "
                                                  "voice and mode (moving one of those sliders unticks this; the "
                                                  "output line says what ran)")
                blend = gr.Slider(0.0, 1.0, value=api.DEFAULT_BLEND, step=0.05, elem_id="clone-blend",
                                  label="Blend: 0 = decoder (clearest words), 1 = the reference's own frames in voiced speech (closest voice); "
                                        f"mode defaults: {api.DEFAULT_BLEND} for Convert ({api.CALL_BLEND} from a call's reference), "
                                        f"{api.DEFAULT_TTS_BLEND} for text, "
                                        f"{api.FINETUNED_BLEND} for an adapted voice")
                eq = gr.Slider(0.0, 1.0, value=api.DEFAULT_EQ, step=0.05,
                               label="EQ: match the reference's overall timbre and recording channel (0 = off)")
                gv = gr.Slider(0.0, 1.0, value=api.DEFAULT_GV, step=0.05,
                               label="GV: give back the spectral movement the decoder smooths away (0 = off)")
                identity = gr.Slider(0, 20, value=api.DEFAULT_IDENTITY_STEPS, step=1,
                                     label="Identity steps: adapt the voice to each sentence (closer voice; "
                                           "0 = off, faster)")
                contrast = gr.Slider(0.0, 2.0, value=studio.CONTRAST_SLIDER_DEFAULT, step=0.1,
                                     label="Contrast: push the voice away from the average voice (a caricature: "
                                           "closer by the judges, a few more lost words; 0 = off); mode defaults: "
                                           "1 for Convert, 0.5 for text, from 30 s of reference; 0 for shorter "
                                           "references and adapted voices")
                pitch = gr.Slider(0.0, 1.0, value=studio.PITCH_SLIDER_DEFAULT, step=0.1,
                                  label="Pitch range: move the intonation towards the reference's (0 = the source's "
                                        f"own, 1 = the reference's); mode defaults: "
                                        f"{api.DEFAULT_TTS_PITCH_RANGE:g} for text, {api.DEFAULT_PITCH_RANGE:g} for "
                                        "Convert and adapted voices")
                save_as = gr.Textbox(label="Save this voice as (optional name)")
                adapt = gr.Checkbox(label="Adapt to the reference first (~20-30 s once; closer voice, no identity "
                                          "steps needed; save it to reuse)", elem_id="clone-adapt")
                consent = gr.Checkbox(label="I have the voice owner's consent", elem_id="clone-consent")
            cloned = gr.Audio(label="Output (SYNTHETIC)", type="numpy")
            clone_info = gr.Markdown()
            gr.Button("Generate", variant="primary", elem_id="clone-run").click(
                _clone, [refs, mic, saved, mode, text, src, consent, blend, eq, gv, identity, save_as, adapt, contrast,
                         pitch, mode_defaults],
                [cloned, clone_info, saved], api_name="clone")
            for slider in (blend, contrast, pitch):  # a slider the user moves is meant: run at its value
                slider.input(None, None, mode_defaults, js="() => false", api_visibility="private")
        with gr.Tab("Call scenario"):
            gr.Markdown("A call script (YAML, see recipes/scenarios/README.md): who speaks, cloned lines and real "
                        "recordings, pauses; rendered through a phone line with ground truth of which segments are fake.")
            with gr.Row():
                script = gr.Code(value=studio.example_script(), language="yaml", label="Scenario script", lines=18)
                with gr.Column():
                    script_file = gr.File(label="Upload a script (.yaml)")
                    assets = gr.File(label="Audio the script names (references, recordings), by file name",
                                     file_count="multiple")
            render = gr.Button("Render the call", variant="primary")
            call_audio = gr.Audio(label="Rendered call (contains SYNTHETIC speech)", type="numpy")
            downloads = gr.File(label="Call and ground truth", file_count="multiple")
            call_info = gr.Markdown()
            call_state = gr.State(None)
            score = gr.Button("Score it with the detector")
            score_info = gr.Markdown()
            score_plot = gr.Plot(label="Detector timeline on the call")
            score_json = gr.JSON(label="Localisation against the ground truth")
            script_file.change(studio.load_script_file, script_file, script, api_name=False)
            render.click(studio.render_call, [script, assets], [call_audio, downloads, call_info, call_state],
                         api_name="render_call")
            score.click(lambda st: studio.score_call(st, views.timeline_figure), call_state,
                        [score_info, score_plot, score_json], api_name="score_call")
        with gr.Tab("Lip-sync"):
            with gr.Row():
                video = gr.File(label="Talking-face video (mp4, avi, mpg, ...)")
                speech = gr.File(label="New speech (e.g. a cloned voice)")
            synced = gr.Video(label="Lip-synced video (audio is synthetic)")
            gr.Button("Align and render", variant="primary").click(lipsync, [video, speech], [synced, gr.Markdown()],
                                                                    api_name="lipsync")
    return app


def _default_threshold() -> float:
    try:
        calibration = api.load("detection").checkpoint.metadata["calibration"]
        # calls are what this page is for: start the slider at the narrowband threshold
        return round(float(calibration.get("narrowband_threshold") or calibration["threshold"]), 2)
    except (KeyError, TypeError, ValueError):
        return 0.5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", default=os.environ.get("VOICEFAKE_DEMO_AUTH"),
                        help="user:password to require a login (or $VOICEFAKE_DEMO_AUTH)")
    parser.add_argument("--max-file-mb", type=int, default=LIMITS["max_file_mb"])
    parser.add_argument("--max-seconds", type=float, default=LIMITS["max_seconds"])
    parser.add_argument("--concurrency", type=int, default=2, help="requests processed at once; others queue")
    args = parser.parse_args(argv)
    LIMITS.update(max_seconds=args.max_seconds, max_file_mb=args.max_file_mb)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    app = build_app().queue(default_concurrency_limit=args.concurrency, max_size=64)
    app.launch(server_name=args.host, server_port=args.port, share=False, auth=auth,
               max_file_size=f"{args.max_file_mb}mb", show_error=True)


if __name__ == "__main__":
    main()
