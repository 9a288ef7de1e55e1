"""Lip-sync benchmark: offset recovery, sync-confidence AUC, alignment, speed (CPU).

Usage (from the repository root)::

    VOICEFAKE_DATA=../shared/data PYTHONPATH=. python benchmarks/lipsync.py --threads 2 \
        --out runs/bench_lipsync.json

Talking-face videos: every ``*.mpg``/``*.mp4`` under ``$VOICEFAKE_DATA/grid_lipnet``. The
measurement has no learned weights, so every clip is "unseen". Audio shifts are applied to the
waveform (delay by d frames = d * 40 ms at 25 fps, zero-padded, same length).
"""

from __future__ import annotations

import argparse
import os
import sys

# BLAS pools are sized at import, so set them before numpy loads. The search does thousands
# of tiny (<= 75 x 16) solves: one BLAS thread is fastest (spinning threads only contend);
# torch (mel, decoding) gets the --threads budget.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from voicefake import api  # noqa: E402
from voicefake.audio.io import load_audio  # noqa: E402
from voicefake.lipsync.align import AlignConfig, align_speech, time_stretch  # noqa: E402
from voicefake.lipsync.mouth import track_mouth  # noqa: E402
from voicefake.lipsync.sync import SyncConfig, audio_envelope, measure_sync  # noqa: E402

RATE = 16000


def shift_audio(wav: np.ndarray, samples: int) -> np.ndarray:
    """Delays (samples > 0) or advances the waveform, zero-padded, same length."""
    out = np.zeros_like(wav)
    if samples >= 0:
        out[samples:] = wav[: len(wav) - samples]
    else:
        out[:samples] = wav[-samples:]
    return out


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def offsets(clips: dict, max_shift: int) -> dict:
    rows, hits = {}, []
    for name, (openings, fps, wav) in clips.items():
        per_frame = int(round(RATE / fps))
        errors = []
        for shift in range(-max_shift, max_shift + 1):
            moved = shift_audio(wav, shift * per_frame)
            found = measure_sync(openings, audio_envelope(moved, RATE, fps), fps).offset_frames
            errors.append(found - shift)
        hits += [abs(e) <= 1 for e in errors]
        rows[name] = {"within_1": float(np.mean(np.abs(errors) <= 1)),
                      "exact": float(np.mean(np.asarray(errors) == 0)),
                      "worst_error": int(np.max(np.abs(errors)))}
    return {"within_1_frame": float(np.mean(hits)), "trials": len(hits), "per_clip": rows}


def confidence_auc(clips: dict, config: SyncConfig | None = None) -> dict:
    """Own soundtrack (positive) vs. the soundtrack of every other clip (negative) per face."""
    config = config or SyncConfig()
    names = list(clips)
    scores: dict[str, tuple[list[float], list[float]]] = {"confidence": ([], []), "sync_score": ([], [])}
    decisions: tuple[list[bool], list[bool]] = ([], [])
    offs = []
    for face in names:
        openings, fps, _ = clips[face]
        for voice in names:
            wav = clips[voice][2]
            result = measure_sync(openings, audio_envelope(wav, RATE, fps), fps, config)
            side = 0 if face == voice else 1
            scores["confidence"][side].append(result.confidence)
            scores["sync_score"][side].append(result.sync_score)
            decisions[side].append(result.in_sync)
            if face == voice:
                offs.append(result.offset_frames)
    report: dict = {"positives": len(decisions[0]), "negatives": len(decisions[1]),
                    "original_offsets": offs, "threshold": config.threshold,
                    "in_sync_true_positive_rate": float(np.mean(decisions[0])),
                    "in_sync_false_positive_rate": float(np.mean(decisions[1]))}
    for key, (pos, neg) in scores.items():
        report[key] = {"auc": auc(pos, neg), "positives": [round(p, 3) for p in pos],
                       "negatives_p50_p90_max": np.percentile(neg, [50, 90, 100]).round(3).tolist()}
    return report


def sensitivity(clips: dict) -> dict:
    """AUCs under other high-pass widths: how much the chosen setting matters."""
    rows = {}
    for widths in [(9,), (11,), (7, 9, 11), (9, 11, 13), (11, 13, 15)]:
        result = confidence_auc(clips, SyncConfig(highpass_frames=widths))
        rows[",".join(map(str, widths))] = {key: round(result[key]["auc"], 3) for key in ("confidence", "sync_score")}
    return rows


def alignment(clips: dict, warp: bool) -> dict:
    cases = {"delay_+8": (8, 1.0), "advance_-8": (-8, 1.0), "delay_+12": (12, 1.0),
             "slow_1.08_delay_+4": (4, 1.08)}
    rows = []
    for name, (openings, fps, wav) in clips.items():
        per_frame = int(round(RATE / fps))
        for case, (shift, stretch) in cases.items():
            speech = wav if stretch == 1.0 else time_stretch(wav, RATE, stretch)[: len(wav)]
            speech = shift_audio(speech, shift * per_frame)
            result = align_speech(openings, fps, speech, RATE, config=AlignConfig(warp=warp))
            rows.append({"clip": name, "case": case, "before": result.before.offset_frames,
                         "after": result.after.offset_frames,
                         "sync_score_before": round(result.before.sync_score, 3),
                         "sync_score_after": round(result.after.sync_score, 3),
                         "stretch_min": round(result.stretch_min, 3),
                         "stretch_max": round(result.stretch_max, 3)})
    fixed = [abs(r["after"]) <= 1 for r in rows]
    return {"after_within_1_frame": float(np.mean(fixed)), "trials": len(rows),
            "stretch_range": [min(r["stretch_min"] for r in rows), max(r["stretch_max"] for r in rows)],
            "rows": rows}


def speed(paths: list[Path], out_dir: Path) -> dict:
    sync_x, align_x = [], []
    for path in paths:
        duration = len(load_audio(path, RATE)) / RATE
        start = time.perf_counter()
        api.sync_offset(path)
        sync_x.append(duration / (time.perf_counter() - start))
        start = time.perf_counter()
        api.align(path, path, output=out_dir / f"{path.stem}.mp4", force=True)
        align_x.append(duration / (time.perf_counter() - start))
    return {"sync_x_real_time_median": float(np.median(sync_x)), "sync_x_real_time_min": float(np.min(sync_x)),
            "lipsync_x_real_time_median": float(np.median(align_x)),
            "note": "end to end from the file: decode, face tracking, landmarks, audio, search "
                    "(+ WSOLA, watermark, H.264/AAC mux)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch + BLAS)")
    parser.add_argument("--max-shift", type=int, default=15, help="largest shift tested, frames")
    parser.add_argument("--out", help="write the JSON results here")
    parser.add_argument("--sections", nargs="*", help="run only these sections (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(os.environ.get("VOICEFAKE_DATA", "../shared/data")) / "grid_lipnet"
    paths = sorted([*root.glob("*.mpg"), *root.glob("*.mp4")])
    if not paths:
        sys.exit(f"no videos under {root}; set VOICEFAKE_DATA")
    clips = {}
    for path in paths:
        track = track_mouth(path)
        clips[path.stem] = (track.openings, track.fps, load_audio(path, RATE))
    out_dir = Path(args.out).parent / "lipsync_videos" if args.out else Path("runs/bench_lipsync_videos")
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"videos": len(paths), "threads": args.threads}
    for key, run in [("speed", lambda: speed(paths, out_dir)),
                     ("offset_recovery", lambda: offsets(clips, args.max_shift)),
                     ("sync_confidence", lambda: confidence_auc(clips)),
                     ("sensitivity", lambda: sensitivity(clips)),
                     ("alignment_shift_only", lambda: alignment(clips, warp=False)),
                     ("alignment_shift_and_warp", lambda: alignment(clips, warp=True))]:
        if args.sections and key not in args.sections:
            continue
        start = time.perf_counter()
        report[key] = run()
        print(f"{key}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
