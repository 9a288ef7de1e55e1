"""Fits the detector's calibration (Benford fusion, Platt scaling, thresholds) on dev data.

    nice -n 5 python recipes/detection/calibrate.py --run runs/detection/bundled \
        --manifest runs/detection/data/manifest.csv --out voicefake/models/detector-16k

Scores every dev recording of the manifest (``notes`` split=dev, all channels) with the run's
latest detector, fits :func:`voicefake.detection.inference.fit_calibration` (thresholds at
``--far`` false alarms on dev real speech) and writes a release checkpoint (float16) whose
metadata holds the calibration and the dev figures. ``--exclude-family`` drops that
generator family from the dev fakes (leave-one-generator-out folds).

``--chain-reals K`` adds a check (detector 0.4.0): every clean dev real recording is
re-recorded K times through a random recording chain (:func:`voicefake.channel.recording_chain`:
microphone response, original rate, level, noise floor, file format) and then a simulated
phone line (:func:`voicefake.channel.phone_call`), and each threshold is raised, where needed,
until at most ``--far`` of these recordings (or their windows) of its band are flagged too. They
stand in for the recording chains of real callers, which no dev corpus has; they take no part in
the fusion or the Platt scaling.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from voicefake.audio.io import load_audio
from voicefake.channel import phone_call, recording_chain
from voicefake.checkpoint import Checkpoint, resolve
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, read_manifest
from voicefake.detection.inference import (
    NARROWBAND_BELOW_DB,
    Calibration,
    Scored,
    calibrate_scored,
    score_recording,
    threshold_for_far,
)
from voicefake.metrics import compute_eer, expected_calibration_error
from voicefake.train import state as run_state

log = logging.getLogger("calibrate")



def score_rows(module, rows: list[ManifestRow], root: Path) -> list[Scored]:
    return [score_recording(module, load_audio(root / row.path, module.config.sample_rate, allow_silence=True))
            for row in rows]


def chain_reals(module, rows: list[ManifestRow], root: Path, per_row: int) -> list[Scored]:
    """``per_row`` re-recordings of each clean dev real row: a drawn recording chain, then a
    drawn phone line (seeded by the row's position and the copy's number: reproducible)."""
    rate = module.config.sample_rate
    clean = [r for r in rows if not r.is_fake and r.tags.get("channel") == "clean"]
    out = []
    for i, row in enumerate(clean):
        wav = load_audio(root / row.path, rate, allow_silence=True)
        for k in range(per_row):
            rng = np.random.default_rng([46, i, k])
            out.append(score_recording(module, phone_call(recording_chain(wav, rate, rng)[0], rate, rng)[0]))
    log.info("scored %d chain re-recordings of %d clean dev real recordings", len(out), len(clean))
    return out


def roc_table(probs: np.ndarray, labels: np.ndarray, points: int = 101) -> dict[str, list[float]]:
    """False-alarm and miss rates of the calibrated p_fake at thresholds 0, 0.01, ..., 1 (dev data)."""
    grid = np.linspace(0.0, 1.0, points)
    real, fake = probs[labels == 0], probs[labels == 1]
    table = {"thresholds": [round(float(t), 2) for t in grid], "far": [round(float(np.mean(real >= t)), 4) for t in grid]}
    if fake.size:  # reals alone (the re-recordings): false alarms only
        table["miss"] = [round(float(np.mean(fake < t)), 4) for t in grid]
    return table


def add_roc(args: argparse.Namespace) -> None:
    """--roc-only: adds the dev operating-point table to an existing release checkpoint."""
    ckpt = Checkpoint.load(args.out)
    module = ckpt.build("cpu").eval()
    calibration = Calibration.from_metadata(ckpt.metadata)
    rows = [r for r in read_manifest(args.manifest) if r.tags.get("split") == "dev"]
    scored = score_rows(module, rows, args.manifest.parent)
    labels = np.array([int(r.is_fake) for r in rows])
    probs = np.array([calibration.file_probability(s.logit, s.benford) for s in scored])
    dev = {**ckpt.metadata.get("dev", {}), "roc": roc_table(probs, labels),
           "roc_description": f"{len(rows)} dev recordings ({int((labels == 0).sum())} real, "
                              f"{int(labels.sum())} synthetic; clean, wideband-codec and phone-line versions)"}
    Checkpoint(ckpt.kind, ckpt.model, ckpt.state_dict, ckpt.mel, {**ckpt.metadata, "dev": dev}).save(args.out, half=True)
    log.info("added the dev operating-point table to %s", args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="training run: its last step is calibrated")
    source.add_argument("--checkpoint", help="a detector checkpoint instead (e.g. 'detection', the bundled one, "
                        "to re-calibrate it on other dev data)")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="release checkpoint directory")
    parser.add_argument("--far", type=float, default=0.01, help="false-alarm rate for the thresholds")
    parser.add_argument("--narrowband-below-db", type=float, default=NARROWBAND_BELOW_DB,
                        help="inputs with less energy above 4.2 kHz than this (dB of the total) get their own "
                             "thresholds, fitted on the narrowband dev recordings")
    parser.add_argument("--one-threshold", action="store_true",
                        help="one pair of thresholds for every input (as before detector 0.3.1)")
    parser.add_argument("--exclude-family", default="")
    parser.add_argument("--chain-reals", type=int, default=0, metavar="K",
                        help="re-record each clean dev real K times through a random recording chain and a phone "
                             "line; every threshold then also holds --far on them (0: off, as before 0.4.0)")
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument("--roc-only", action="store_true",
                        help="only add the dev operating-point table to the existing checkpoint at --out")
    args = parser.parse_args()
    if args.chain_reals < 0:
        parser.error(f"--chain-reals must be 0 or more, got {args.chain_reals}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.roc_only:
        add_roc(args)
        return
    ckpt = run_state.last_step_checkpoint(args.run, "detector") if args.run else Checkpoint.load(resolve(args.checkpoint))
    module = ckpt.build("cpu").eval()
    rows = [r for r in read_manifest(args.manifest)
            if r.tags.get("split") == "dev" and r.folder != args.exclude_family]
    scored = score_rows(module, rows, args.manifest.parent)
    labels = np.array([int(r.is_fake) for r in rows])
    check = chain_reals(module, rows, args.manifest.parent, args.chain_reals) if args.chain_reals else None
    calibration = calibrate_scored(module, scored, labels, args.far,
                                   narrowband_below_db=None if args.one_threshold else args.narrowband_below_db,
                                   check_real=check)
    probs = np.array([calibration.file_probability(s.logit, s.benford) for s in scored])
    thresholds = np.array([calibration.thresholds(s.high_band)[0] for s in scored])
    narrow = np.array([calibration.is_narrowband(s.high_band) for s in scored])
    eer, _ = compute_eer(probs, labels)
    net_eer, _ = compute_eer([s.logit for s in scored], labels)
    figures = {"dev_items": len(rows), "dev_eer_fused": round(eer, 4), "dev_eer_network": round(net_eer, 4),
               "dev_ece": round(expected_calibration_error(probs, labels), 4),
               "dev_false_alarm_rate": round(float(np.mean(probs[labels == 0] >= thresholds[labels == 0])), 4),
               "dev_miss_rate": round(float(np.mean(probs[labels == 1] < thresholds[labels == 1])), 4),
               **{f"dev_{name}_{what}": round(float(np.mean(rate)), 4) if rate.size else None
                  for name, mask in (("narrowband", narrow), ("wideband", ~narrow))
                  for what, rate in (("false_alarm_rate", probs[mask & (labels == 0)] >= thresholds[mask & (labels == 0)]),
                                     ("miss_rate", probs[mask & (labels == 1)] < thresholds[mask & (labels == 1)]))},
               "dev_narrowband_items": int(narrow.sum()),
               "roc": roc_table(probs, labels),
               "roc_description": f"{len(rows)} dev recordings ({int((labels == 0).sum())} real, "
                                  f"{int(labels.sum())} synthetic; clean, wideband-codec and phone-line versions)"}
    if check:
        plain = calibrate_scored(module, scored, labels, args.far,
                                 narrowband_below_db=None if args.one_threshold else args.narrowband_below_db)
        check_p = np.array([calibration.file_probability(s.logit, s.benford) for s in check])
        check_narrow = np.array([calibration.is_narrowband(s.high_band) for s in check])
        figures["chain_reals"] = {
            "recordings": len(check), "per_clean_dev_real": args.chain_reals, "narrowband": int(check_narrow.sum()),
            "false_alarm_rate": round(float(np.mean([p >= calibration.thresholds(s.high_band)[0]
                                                     for p, s in zip(check_p, check, strict=True)])), 4),
            "false_alarm_rate_at_dev_thresholds": round(float(np.mean([p >= plain.thresholds(s.high_band)[0]
                                                                       for p, s in zip(check_p, check, strict=True)])), 4),
            "dev_thresholds": {"threshold": plain.threshold, "narrowband_threshold": plain.narrowband_threshold,
                               "segment_threshold": plain.segment_threshold,
                               "narrowband_segment_threshold": plain.narrowband_segment_threshold},
            "own_1pct_point_narrowband": round(threshold_for_far(check_p[check_narrow], args.far), 4)
            if check_narrow.any() else None}
        for band, mask in (("narrowband", check_narrow), ("wideband", ~check_narrow)):
            if mask.sum() >= 100:  # their false alarms at 0, 0.01, ..., 1 (the legs of stereo calls read it)
                figures["chain_reals"][f"roc_{band}"] = roc_table(check_p[mask], np.zeros(int(mask.sum()), int))
    if calibration.narrowband_threshold is not None:  # per-bandwidth tables for the per-bandwidth thresholds
        figures["roc_narrowband"] = roc_table(probs[narrow], labels[narrow])
        figures["roc_wideband"] = roc_table(probs[~narrow], labels[~narrow])
    log.info("dev figures: %s", figures)
    meta = {**ckpt.metadata, "name": "detector-16k", "version": args.version,
            "calibration": calibration.to_dict(), "dev": figures}
    Checkpoint(ckpt.kind, ckpt.model, ckpt.state_dict, ckpt.mel, meta).save(args.out, half=True)
    if args.run:
        (args.run / "calibration.json").write_text(json.dumps({"calibration": calibration.to_dict(), "dev": figures}, indent=1))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_recipe(main)
