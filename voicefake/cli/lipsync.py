"""``voicefake sync`` (measure audio-video offset) and ``voicefake lipsync`` (align new speech)."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicefake import api
from voicefake.cli import common


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the sync and lipsync subcommands."""
    p = sub.add_parser("sync", help="measure the audio-video offset of talking-face videos",
                       description="Measures how far each video's soundtrack is from its lips "
                       "(offset_frames > 0: audio late), how distinct that offset is (confidence) and "
                       "how well the lips follow the audio as it is (sync_score; in_sync false flags "
                       "audio that is shifted or may not belong to the face).")
    p.add_argument("inputs", nargs="+", help="video files, or folders")
    p.add_argument("--audio", help="test this speech against the faces instead of their own audio")
    common.add_common(p, checkpoint=False)
    p.set_defaults(run=run_sync)

    s = sub.add_parser("lipsync", help="align new speech to a face's lips and write the video",
                       description="Shifts (and with --warp time-warps, pitch kept) SPEECH to "
                       "follow the mouth in VIDEO and writes the video with it as the soundtrack "
                       "(mp4, labelled synthetic). Writes <video>.lipsync.mp4 unless -o is given.")
    s.add_argument("video", help="video with one talking face")
    s.add_argument("--audio", required=True, help="speech to put on the video (e.g. a cloned voice)")
    s.add_argument("-o", "--output", help="output .mp4")
    s.add_argument("--warp", action="store_true",
                   help="also time-warp the speech (DTW, stretch clamped to 0.8-1.25)")
    common.add_common(s, checkpoint=False)
    s.set_defaults(run=run_lipsync)


def run_sync(args: argparse.Namespace) -> int:
    def handle(label: str, path: Path) -> tuple[dict, str]:
        result = api.sync_offset(path, audio=args.audio, name=label)
        record = {**result.to_dict(), "model": api.LIPSYNC_MODEL}
        verdict = "in sync" if result.in_sync else "NOT in sync"
        return record, (f"{label}: offset {result.offset_frames:+d} frames ({result.offset_ms:+.0f} ms), "
                        f"confidence {result.confidence:.2f}, sync score {result.sync_score:.2f}: {verdict}")

    return common.per_file(args, args.inputs, handle)


def run_lipsync(args: argparse.Namespace) -> int:
    source = Path(args.video)
    target = common.output_path(args.output, source, ".lipsync.mp4", multiple=False)
    common.check_writable(target, args.force)

    def handle(label: str, path: Path) -> tuple[dict, str]:
        result = api.align(path, args.audio, output=target, force=args.force, warp=args.warp)
        record = {"output": str(target), "before": result.before.to_dict(),
                  "after": result.after.to_dict(),
                  "stretch_range": [round(result.stretch_min, 3), round(result.stretch_max, 3)],
                  "model": api.LIPSYNC_MODEL}
        return record, (f"{label} -> {target}: offset {result.before.offset_frames:+d} -> "
                        f"{result.after.offset_frames:+d} frames, stretch "
                        f"{result.stretch_min:.2f}-{result.stretch_max:.2f}")

    return common.per_file(args, [args.video], handle)
