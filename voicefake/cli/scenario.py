"""``voicefake scenario``: render a call-scenario script into one phone call and its truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicefake import api
from voicefake.cli import common


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the scenario subcommand."""
    p = sub.add_parser(
        "scenario", help="render a call script (cloned and real turns) into one phone call + truth",
        description="Renders SCRIPT.yaml (format: recipes/scenarios/README.md) into one call "
        "recording through the telephone channel, and writes its ground truth (every turn's "
        "start, end, speaker and real/fake) as CALL.json beside CALL.wav. Score a detector on "
        "it with: voicefake detect-eval CALL.wav CALL.json")
    p.add_argument("script", help="scenario script (YAML)")
    p.add_argument("-o", "--output", help="call recording, .wav or .flac (default: <script>.wav)")
    p.add_argument("--no-watermark", action="store_true",
                   help="do not watermark the call (logged, and stated in its metadata)")
    common.add_common(p, checkpoint=False)
    p.set_defaults(run=run_scenario)


def run_scenario(args: argparse.Namespace) -> int:
    from voicefake.scenario import truth_path  # imports the channel (librosa, PyAV): slow

    script = Path(args.script)
    target = common.output_path(args.output, script, ".wav", multiple=False)
    _, sample_rate, truth = api.render_scenario(script, target, force=args.force,
                                                watermark=not args.no_watermark)
    seconds = {label: sum(s["end"] - s["start"] for s in truth["segments"] if s["label"] == label)
               for label in ("fake", "real")}
    record = {"file": args.script, "output": str(target), "truth": str(truth_path(target)),
              "duration": round(truth["duration"], 3), "sample_rate": sample_rate,
              "segments": len(truth["segments"]), "fake_seconds": round(seconds["fake"], 3),
              "real_seconds": round(seconds["real"], 3), "recording": truth["recording"], "model": truth["model"],
              "watermark": not args.no_watermark}
    text = (f"{args.script} -> {target} ({truth['duration']:.1f} s, {record['segments']} "
            f"segments: {seconds['fake']:.1f} s fake, {seconds['real']:.1f} s real; "
            f"truth in {record['truth']})")
    common.emit(args, record, text)
    return 0
