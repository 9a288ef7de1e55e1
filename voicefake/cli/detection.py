"""``voicefake detect``: is this speech synthetic? One JSON line per file with --json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voicefake import api
from voicefake.api.analysis import DETECT_MAX_SECONDS
from voicefake.audio.io import sha256_file
from voicefake.audio.legs import CHANNEL_MODES
from voicefake.cli import common


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the detect subcommand."""
    p = sub.add_parser(
        "detect", help="score recordings for synthetic speech (p_fake, decision, timeline, evidence)",
        description="Scores each recording: calibrated probability that the speech is synthetic, "
        "a decision at the model's documented threshold (narrowband calls and wideband audio each have "
        "their own, chosen at the same false-alarm rate; the report's evidence.bandwidth says which applied), "
        "a timeline of windows and the evidence (saliency bands/spans, Benford statistics). "
        "Folders are searched recursively.")
    p.add_argument("inputs", nargs="+", help="audio or video files, or folders")
    p.add_argument("--window", type=float, default=1.5, help="timeline window, seconds (default 1.5)")
    p.add_argument("--hop", type=float, default=0.5, help="timeline hop, seconds (default 0.5)")
    p.add_argument("--threshold", type=float, default=None, metavar="P",
                   help="decide every file at this p_fake instead of the model's threshold for its bandwidth "
                        "(e.g. 0.97 for fewer false alarms on unknown callers, at the cost of missed fakes; "
                        "see the detector's model card)")
    p.add_argument("--channels", choices=CHANNEL_MODES, default="auto",
                   help="auto (default): score the two legs of a stereo call recording apart, unless they carry "
                        "one signal or one is silent; split: score every channel apart; mix: average them. Scored "
                        "apart, a file is fake when any channel is, each channel is decided at the false-alarm rate "
                        "divided by their number (so the file keeps the stated rate), and its JSON has a "
                        "'channels' list")
    p.add_argument("--max-duration", type=float, default=DETECT_MAX_SECONDS, metavar="SECONDS",
                   help=f"refuse files longer than this (default {DETECT_MAX_SECONDS:g}: 3 hours); recordings over "
                        "10 minutes are scored in 10-minute pieces")
    p.add_argument("--no-evidence", action="store_true", help="skip saliency (faster)")
    p.add_argument("--no-watermark-check", action="store_true",
                   help="skip looking for voicefake's watermark (faster)")
    common.add_common(p)
    p.set_defaults(run=run_detect)

    e = sub.add_parser(
        "detect-eval", help="score a scenario call's timeline against its ground-truth JSON",
        description="Runs detect on CALL and compares its timeline with TRUTH, a JSON file with "
        '"segments": [{"start", "end", "speaker", "label": "real"|"fake"}] (seconds). Reports fake '
        "seconds found at the model's segment threshold and false-alarm seconds per minute of real speech.")
    e.add_argument("call", help="the call recording")
    e.add_argument("truth", help="ground-truth JSON")
    common.add_common(e)
    e.set_defaults(run=run_detect_eval)


def run_detect(args: argparse.Namespace) -> int:
    if args.window <= 0 or args.hop <= 0:
        raise common.UsageError(f"--window and --hop must be > 0, got {args.window} and {args.hop}")
    if not args.max_duration > 0:
        raise common.UsageError(f"--max-duration must be > 0 seconds, got {args.max_duration}")
    if args.threshold is not None:
        from voicefake.detection.inference import check_threshold

        try:
            check_threshold(args.threshold)
        except ValueError as err:
            raise common.UsageError(f"--threshold: {err}") from err
    checkpoint = args.checkpoint or "detection"
    api.load(checkpoint, args.device, kind="detection")  # a missing model fails the whole call
    items = list(common.expand_inputs(args.inputs))
    progress = _Progress(len(items))

    def handle(label: str, path: Path) -> tuple[dict, str]:
        progress.step(label)
        report = api.detect(path, checkpoint, args.device, name=label, window=args.window,
                            hop=args.hop, evidence=not args.no_evidence, threshold=args.threshold,
                            channels=args.channels, max_duration=args.max_duration)
        record = {"sha256": sha256_file(path), **report.to_dict()}
        band = report.evidence.get("bandwidth", {})
        which = f" for {band['condition']} audio" if band.get("narrowband_below_db") is not None else ""
        which = ", set by you" if args.threshold is not None else which
        if report.evidence.get("threshold_set_by") == "legs":
            which += f", held for each of its {len(report.channels or [])} legs"
        text = f"{label}: {report.label} (p_fake {report.p_fake:.3f}, threshold {report.threshold:.3f}{which})"
        if "caution" in report.evidence:
            text += f"; caution: only {report.evidence['speech_seconds']:.1f} s of speech (see evidence.caution)"
        if report.channels:
            legs = ", ".join(f"{c.evidence['channel']} {c.label} {c.p_fake:.3f}" for c in report.channels)
            text += f"; channels scored apart, channel {report.evidence['channels']['deciding']} decided ({legs})"
        if not args.no_watermark_check:
            mark = api.watermark_detect(path).to_dict()
            record["watermark"] = {k: mark[k] for k in ("watermarked", "p", "payload") if k in mark}
            text += "; voicefake watermark found" if mark.get("watermarked") else ""
        return record, text

    status = common.per_file(args, args.inputs, handle)
    progress.close()
    return status


def run_detect_eval(args: argparse.Namespace) -> int:
    import json

    from voicefake.detection.inference import score_against_truth

    truth_path = Path(args.truth)
    if not truth_path.is_file():
        raise FileNotFoundError(f"{truth_path}: no such ground-truth file")
    try:
        truth = json.loads(truth_path.read_text())["segments"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise common.UsageError(f"{truth_path}: expected JSON with a 'segments' list ({err})") from err
    checkpoint = args.checkpoint or "detection"
    report = api.detect(args.call, checkpoint, args.device, name=args.call, evidence=False)
    figures = score_against_truth(report, truth)
    record = {"file": args.call, "truth": str(truth_path), **figures, "p_fake": report.p_fake, "model": report.model}
    own = figures.get("found_fake_seconds_on_its_channel")
    leg = "" if own is None else f" ({own:.1f} on the fake party's own leg)"
    text = (f"{args.call}: found {figures['found_fake_seconds']:.1f} of {figures['fake_seconds']:.1f} fake s{leg}, "
            f"{figures['false_alarm_seconds_per_minute']:.2f} false-alarm s per minute of real speech; "
            f"file label {report.label} (truth {figures['file_truth']})")
    common.emit(args, record, text)
    return 0


class _Progress:
    """A one-line progress bar on stderr for batches (stdout stays machine-readable)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def step(self, label: str) -> None:
        if self.total > 1:
            self.done += 1
            bar = "#" * int(20 * self.done / self.total)
            print(f"\r[{bar:<20}] {self.done}/{self.total} {label[-40:]:<40}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.total > 1:
            print(file=sys.stderr)
