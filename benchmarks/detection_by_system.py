"""Share of one split's recordings flagged at a detector's own thresholds, per system and channel.

    VOICEFAKE_DATA=../shared/data python benchmarks/detection_by_system.py \
        --manifest runs/detection/data/manifest_clones2.csv --checkpoint detection runs/detector-XYZ \
        --json runs/bench/by_system.json

For a generator's fakes the share is the detection rate; for reals it is the false-alarm rate.
Each recording is decided at the threshold for its bandwidth (narrowband or wideband), as
``voicefake detect`` decides a mono file (``benchmarks.detection.decide``). Systems are grouped
by their first ``--group`` ``-``-separated parts (3 by default, so that the settings at the end of
``voicefake-adapted-convert-s200k0.7`` do not split it; 0 keeps the whole name).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from benchmarks.detection import decide, eer_or_none
from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.data.manifests import read_manifest
from voicefake.detection.inference import Calibration


def flagged(manifest: Path, checkpoint: str, split: str, parts: int, by_family: bool = False) -> dict[str, dict[str, dict]]:
    """``{system group: {channel: {"n", "flagged", "mean_p", "eer"}}}`` for ``split``'s rows of
    ``manifest`` (``by_family``: grouped by the manifest's ``folder`` column, the generator family,
    instead). ``eer`` is each group's against the reals (system ``human``) of the same channel;
    group ``all synthetic`` pools every other group."""
    loaded = api.load(checkpoint, kind="detection")
    calibration = Calibration.from_metadata(loaded.checkpoint.metadata)
    found: dict = defaultdict(lambda: defaultdict(list))
    rows = [row for row in read_manifest(manifest) if row.tags.get("split") == split]
    start = time.perf_counter()
    for done, row in enumerate(rows, 1):
        notes = row.tags
        if done % 1000 == 0 or done == len(rows):  # big eval sets (ASVspoof 2021 DF: 611 k files) take hours
            rate = done / (time.perf_counter() - start)
            print(f"{checkpoint}: {done}/{len(rows)} scored, {rate:.1f}/s, about {(len(rows) - done) / rate / 60:.0f} min "
                  "left", file=sys.stderr, flush=True)
        p, flag, _ = decide(loaded.module, calibration, load_audio(manifest.parent / row.path, 16000, allow_silence=True))
        group = row.folder if by_family else "-".join(row.system.split("-")[:parts]) if parts else row.system
        found[group][notes.get("channel", "")].append((p, flag))
    for group in [g for g in found if g != "human"]:
        for channel, v in found[group].items():
            found["all synthetic"][channel].extend(v)
    real = {channel: [p for p, _ in v] for channel, v in found.get("human", {}).items()}
    report: dict = {}
    for group, channels in sorted(found.items()):
        report[group] = {}
        for channel, v in sorted(channels.items()):
            scores = [p for p, _ in v]
            against = real.get(channel, []) if group != "human" else []
            report[group][channel] = {
                "n": len(v), "flagged": round(float(np.mean([f for _, f in v])), 4),
                "mean_p": round(float(np.mean(scores)), 4),
                # threshold-free: these fakes against the split's reals (system "human") of the same channel
                "eer": eer_or_none(against + scores, [0] * len(against) + [1] * len(scores)) if against else None}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--checkpoint", nargs="+", default=["detection"], help="detector checkpoints to compare")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--group", type=int, default=3, help="system name parts that name the group (0: whole name)")
    parser.add_argument("--family", action="store_true", help="group by generator family (column folder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {ckpt: flagged(args.manifest, ckpt, args.split, args.group, args.family) for ckpt in args.checkpoint}
    for ckpt, groups in report.items():
        for group, channels in groups.items():
            for channel, v in channels.items():
                eer = "" if v["eer"] is None else f"\teer={v['eer']:.3f}"
                print(f"{ckpt}\t{group}\t{channel}\tn={v['n']}\tflagged={v['flagged']:.3f}\tmean_p={v['mean_p']:.3f}{eer}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
