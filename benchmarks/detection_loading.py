"""What reading training clips from disk when drawn (``data.lazy``) costs against holding them in memory,
and what channels drawn on the fly (``train.p_channel``) cost per crop.

    VOICEFAKE_DATA=../shared/data python benchmarks/detection_loading.py \
        --manifest runs/detection/data/manifest.csv --crops 2000 --json runs/bench/detection_loading.json

Both arms draw the same number of training crops (``train.segment_seconds`` long, class-balanced,
with the recipe's augmentation) from one split of a manifest, one after the other in one process
on one thread: in memory (every clip decoded first, as ``recipes/detection/train.py`` does by
default; that load is timed too and the float32 bytes it holds are counted) and lazy (each drawn
clip decoded from its file: :class:`voicefake.detection.training.LazyWaves`). The figure that
matters for ``configs/full.yaml`` is crops per second per loader worker against what the GPU
consumes (``loop.batch_size`` crops a step).

``--channel-crops N`` adds one arm per chain kind of ``train.p_channel`` (in memory, every crop
through a freshly drawn "phone" or "recording" chain, N crops each, the same seed): its milliseconds
a crop, less the in-memory arm's, is what one crop through that kind of chain adds, so
``p_channel`` times their mean is the loader's extra work per crop.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from voicefake.audio.io import load_audio
from voicefake.data.manifests import read_manifest
from voicefake.detection.training import DetectionCropDataset, LazyWaves, TrainConfig


def draw(dataset: DetectionCropDataset, crops: int) -> float:
    """Seconds to draw ``crops`` items."""
    torch.manual_seed(0)
    start = time.perf_counter()
    for index in range(crops):
        dataset[index]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--crops", type=int, default=2000)
    parser.add_argument("--segment-seconds", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--channel-crops", type=int, default=0,
                        help="crops per chain kind of train.p_channel (0: skip those arms)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [r for r in read_manifest(args.manifest) if r.tags.get("split") == args.split]
    if not rows:
        raise SystemExit(f"{args.manifest}: no rows with split={args.split}")
    paths = [str(args.manifest.parent / r.path) for r in rows]
    labels = [int(r.is_fake) for r in rows]
    rate, limit = 16000, int(args.max_seconds * 16000)
    cfg = TrainConfig(segment_seconds=args.segment_seconds)
    segment = int(args.segment_seconds * rate)
    start = time.perf_counter()
    waves = [load_audio(p, rate, allow_silence=True)[:limit] for p in paths]
    load_s = time.perf_counter() - start
    memory = DetectionCropDataset(waves, labels, segment, cfg, rate, length=args.crops)
    lazy = DetectionCropDataset(LazyWaves(paths, rate, limit), labels, segment, cfg, rate, length=args.crops)
    memory_s, lazy_s = draw(memory, args.crops), draw(lazy, args.crops)
    result = {
        "manifest": str(args.manifest), "split": args.split, "clips": len(rows),
        "hours": round(sum(w.size for w in waves) / rate / 3600, 3), "crops": args.crops,
        "segment_seconds": args.segment_seconds, "threads": 1,
        "in_memory_load_seconds": round(load_s, 1), "in_memory_mbytes": round(sum(w.nbytes for w in waves) / 2**20, 1),
        "in_memory_crops_per_second": round(args.crops / memory_s, 1),
        "lazy_crops_per_second": round(args.crops / lazy_s, 1),
        "lazy_ms_per_crop": round(1000 * lazy_s / args.crops, 2),
        "lazy_over_in_memory_time": round(lazy_s / memory_s, 2),
    }
    base_ms = 1000 * memory_s / args.crops
    for kind in ("phone", "recording") if args.channel_crops > 0 else ():
        channel_cfg = TrainConfig(segment_seconds=args.segment_seconds, p_channel=1.0, channel_kinds=(kind,))
        arm = DetectionCropDataset(waves, labels, segment, channel_cfg, rate, length=args.channel_crops)
        ms = 1000 * draw(arm, args.channel_crops) / args.channel_crops
        result[f"channel_{kind}_ms_per_crop"] = round(ms, 2)
        result[f"channel_{kind}_added_ms_per_crop"] = round(ms - base_ms, 2)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
