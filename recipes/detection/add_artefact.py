"""Gives a trained detector the artefact branch: a Whisper student and a linear frame probe.

    python recipes/detection/add_artefact.py --detector detection \
        --student runs/detection/student_real/best/encoder --data runs/detection/data \
        --weight 2.0 --out runs/detection/with_artefact
    python recipes/detection/calibrate.py --checkpoint runs/detection/with_artefact \
        --manifest runs/detection/data/manifest.csv --out voicefake/models/detector-16k --version X

The student (recipes/detection/prepare_student.py, then recipes/detection/train_student.py with
configs/student.yaml) maps the toolkit's log-mel to Whisper-like frames. The probe is a
class-balanced L2 logistic regression (inverse strength ``--c`` on standardised inputs, as in
benchmarks/detection_features.py) on the mean of those frames over each train-split recording's
first 10 s. A mean of frames is linear in the frames, so the probe becomes a frame logit: the
standardisation is folded into its weights, and a window's logit is the mean of its frames'.

The detector's network logit becomes its own frame logits plus ``--weight`` times the branch's
(averaged over each 40 ms network frame). The weight is chosen on the leave-one-generator-out
folds (benchmarks/detection_features.py, ``alpha_all_folds``), not on in-distribution dev data,
which favours the network. Calibrate afterwards: the network logit has changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from voicefake.audio.features import MEL_16K_80
from voicefake.audio.io import load_audio
from voicefake.checkpoint import Checkpoint, resolve
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, read_manifest
from voicefake.detection.inference import fit_logistic, prepare
from voicefake.detection.model import Detector, artefact_config

log = logging.getLogger("add_artefact")
MAX_SECONDS = 10.0


def split_of(row: ManifestRow) -> str:
    return row.tags.get("split", "train")


def mean_frames(module: Detector, wav: np.ndarray) -> np.ndarray:
    """(teacher_dim,) mean of the branch's Whisper-like frames over one prepared waveform."""
    assert module.artefact is not None
    with torch.inference_mode():
        mel = module.artefact_mel(torch.from_numpy(wav)[None])
        return module.artefact.head(module.artefact.features(mel))[0].mean(dim=0).numpy().astype(np.float64)


def fit_probe(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Standardised, class-balanced L2 logistic regression with inverse strength ``c`` (the
    penalty of sklearn's ``C`` per recording); returns weights and bias on the raw inputs."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
    weights, bias = fit_logistic((x - mean) / std, y, l2=1.0 / (c * len(x)))
    return weights / std, float(bias - np.sum(weights * mean / std))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="detection", help="the detector checkpoint to extend")
    parser.add_argument("--student", type=Path, required=True, help="the artefact encoder (a 'content' checkpoint)")
    parser.add_argument("--data", type=Path, default=Path("runs/detection/data"),
                        help="recipes/detection/prepare_shared.py output: the probe is fitted on its train split")
    parser.add_argument("--weight", type=float, required=True, help="weight of the branch's logits")
    parser.add_argument("--c", type=float, default=0.01, help="inverse L2 strength of the probe")
    parser.add_argument("--exclude-family", default="", help="leave this generator family out of the probe's data")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    base, student = Checkpoint.load(resolve(args.detector)), Checkpoint.load(args.student)
    if base.kind != "detection" or student.kind != "content":
        raise SystemExit(f"--detector must be a detection checkpoint and --student a content one "
                         f"(got {base.kind!r} and {student.kind!r})")
    old = base.build("cpu")
    assert isinstance(old, Detector)
    encoder = student.build("cpu")
    config = dataclasses.replace(old.config, artefact_channels=encoder.config.channels,
                                 artefact_dilations=tuple(encoder.config.dilations), artefact_weight=args.weight)
    if dataclasses.replace(encoder.config, phones=0, dropout=0.0) != artefact_config(config) or student.mel_config != MEL_16K_80:
        raise SystemExit(f"--student {args.student}: not an artefact encoder ({encoder.config}); train it with "
                         "recipes/detection/configs/student.yaml")
    module = Detector(config).eval()
    missing, unexpected = module.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("artefact") for k in missing), (missing, unexpected)
    assert module.artefact is not None
    module.artefact.load_state_dict({k: v for k, v in encoder.state_dict().items() if not k.startswith("phone_head.")})
    rows = [r for r in read_manifest(args.data / "manifest.csv")
            if split_of(r) == "train" and r.folder != args.exclude_family]
    x = np.stack([mean_frames(module, prepare(load_audio(args.data / r.path, 16000, allow_silence=True), 16000)
                              [: int(MAX_SECONDS * 16000)]) for r in rows])
    y = np.array([int(r.is_fake) for r in rows])
    weights, bias = fit_probe(x, y, args.c)
    with torch.no_grad():
        module.artefact_probe.weight.copy_(torch.from_numpy(weights)[None].float())
        module.artefact_probe.bias.fill_(bias)
    meta = {**base.metadata, "artefact": {
        "student": str(args.student), "student_metadata": student.metadata, "probe_rows": len(rows),
        "probe_fakes": int(y.sum()), "probe_c": args.c, "weight": args.weight,
        "excluded_family": args.exclude_family}}
    meta.pop("calibration", None)  # the network logit has changed: calibrate.py fits a new one
    Checkpoint.from_module(module, "detection", metadata=meta).save(args.out)
    log.info("probe fitted on %d recordings (%d synthetic); wrote %s (uncalibrated)", len(rows), int(y.sum()), args.out)


if __name__ == "__main__":
    run_recipe(main)
