"""Trains the synthetic-speech detector.

    nice -n 5 python recipes/detection/train.py --config recipes/detection/configs/bundled.yaml \
        --run runs/detection/bundled [section.key=value ...]

Leave-one-generator-out fold: add ``data.exclude_family=<family>`` (see
``recipes/detection/prepare_shared.py`` for the families); leave-one-chain-out fold:
``data.exclude_corpus=<corpus>`` (``librispeech``, ``vctk``, ...: ``ManifestRow.corpus``). Multi-GPU:
``torchrun --nproc_per_node=N recipes/detection/train.py --config configs/full.yaml --run ...``.
Fine-tuning: ``--init detection`` starts from the bundled weights. Re-running the same
command resumes from the run's last complete step. Calibration, fusion
with the Benford branch and the threshold are fitted afterwards by ``calibrate.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from voicefake.audio.io import load_audio
from voicefake.checkpoint import Checkpoint
from voicefake.config import load_sections, recipe_parser, run_recipe
from voicefake.data.manifests import ManifestRow, read_manifest
from voicefake.detection.model import DetectorConfig
from voicefake.detection.training import (
    DetectionCropDataset,
    LazyWaves,
    TrainConfig,
    build_task,
    copy_sources,
)
from voicefake.train.loop import LoopConfig, fit


@dataclass(frozen=True)
class DataConfig:
    """Where the audio comes from.

    Attributes:
        manifest: manifest CSV written by a prepare script (paths relative to its folder),
            or "synthetic" for generated stand-in audio (tiny config).
        exclude_family: generator family left out of training (LOGO folds); "" keeps all.
        exclude_corpus: corpus left out of training, its reals and every fake made from them
            (``ManifestRow.corpus``; leave-one-chain-out folds); "" keeps all.
        pairs: a manifest of pair-only rows (``prepare_shared.py --stage pairs``: copy-synthesis
            fakes and their sources through one shared channel each), drawn only as pairs by
            ``train.p_pair``; "" for none. The exclusions apply to it too.
        max_seconds: clips are cut to this length in memory.
        dev_items: fixed dev crops evaluated during training.
        lazy: read each training clip from disk when it is drawn (:class:`LazyWaves`) instead of
            loading the split into memory first: for corpora larger than RAM (``configs/full.yaml``,
            whose manifests ``prepare_corpora.py`` writes). Only the ``dev_items`` dev crops are
            read up front. Costs a decode per crop, so give the loader workers (``loop.num_workers``).
    """

    manifest: str = "synthetic"
    exclude_family: str = ""
    exclude_corpus: str = ""
    pairs: str = ""
    max_seconds: float = 10.0
    dev_items: int = 200
    lazy: bool = False



def synthetic(count: int, sample_rate: int, seed: int) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Stand-in data: 'real' tones with breath noise, and each one's 'fake' copy, the same tone
    without the noise. Returns waveforms, labels and each fake's source (:func:`copy_sources`)."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * sample_rate) / sample_rate
    waves, labels, sources = [], [], []
    for index in range(0, count, 2):
        phase = 2 * np.pi * np.cumsum(rng.uniform(90, 250) * (1 + 0.05 * np.sin(7 * t))) / sample_rate
        tone = 0.1 * sum(np.sin(k * phase) / k for k in range(1, 10))
        waves += [(tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32), tone.astype(np.float32)]
        labels += [0, 1]
        sources += [-1, index]
    return waves, labels, sources


def kept_rows(data: DataConfig, path: Path, split: str) -> list[ManifestRow]:
    """The manifest's rows of one split, without the excluded family or corpus."""
    return [row for row in read_manifest(path)
            if row.tags.get("split") == split and not (data.exclude_family and row.folder == data.exclude_family)
            and not (data.exclude_corpus and row.corpus == data.exclude_corpus)]


def load_split(data: DataConfig, split: str, sample_rate: int) -> tuple[list[np.ndarray] | LazyWaves, list[int],
                                                                        list[int], list[bool], list[float]]:
    """Waveforms, labels, copy-synthesis sources (:func:`copy_sources`), pair-only flags and
    seconds (up to ``data.max_seconds``; the manifest's durations when lazy) of one split,
    without the excluded family or corpus. The training split also takes ``data.pairs``' rows
    (pair-only) whose fake and source are both kept. With ``data.lazy`` the waveforms are a
    :class:`LazyWaves` over the files (read when drawn). A split with no rows, or with files
    that are gone, stops the recipe with one line."""
    path = Path(data.manifest)
    rows = kept_rows(data, path, split)
    folders = [path.parent] * len(rows)
    if data.pairs and split == "train":
        pool = kept_rows(data, Path(data.pairs), split)
        fakes = {row.tags.get("pair") for row in pool if row.is_fake}
        whole = fakes & {row.tags.get("pair") for row in pool if not row.is_fake}
        pool = [row for row in pool if row.tags.get("pair") in whole]
        rows += pool
        folders += [Path(data.pairs).parent] * len(pool)
    if not rows:
        raise SystemExit(f"{path}: no {split} rows (notes split={split}) after the exclusions; "
                         "check data.manifest, data.exclude_family and data.exclude_corpus")
    limit = int(data.max_seconds * sample_rate)
    files = [folder / row.path for folder, row in zip(folders, rows, strict=True)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"{path}: {len(missing)} of its {split} files are missing (first: {missing[0]}); "
                         "paths are relative to the manifest's folder: re-run the prepare script that wrote it")
    waves: list[np.ndarray] | LazyWaves = (
        LazyWaves([str(f) for f in files], sample_rate, limit) if data.lazy
        else [load_audio(f, sample_rate, allow_silence=True)[:limit] for f in files])
    seconds = ([min(row.duration_s, data.max_seconds) for row in rows] if data.lazy
               else [len(w) / sample_rate for w in waves])
    return waves, [int(row.is_fake) for row in rows], copy_sources(rows), ["pair" in row.tags for row in rows], seconds


class FixedDev(Dataset):
    """Deterministic 4 s crops (tiled when short) of a class-balanced dev subset."""

    def __init__(self, waves: Sequence[np.ndarray] | LazyWaves, labels: list[int], samples: int, count: int) -> None:
        rng = np.random.default_rng(0)
        picks = [i for k in (0, 1) for i in rng.permutation([j for j, y in enumerate(labels) if y == k])[: count // 2]]
        self.items = [(np.resize(np.asarray(waves[i]), samples).astype(np.float32), float(labels[i])) for i in picks]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        wav, label = self.items[index]
        return torch.from_numpy(wav), torch.tensor(label)


SECTIONS = {"model": DetectorConfig, "train": TrainConfig, "loop": LoopConfig, "data": DataConfig}


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--init", help="start from this detector checkpoint (fine-tuning; e.g. 'detection' for "
                        "the bundled model); calibrate.py re-fits its calibration afterwards")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configs, resolved = load_sections(args.config, args.overrides, SECTIONS)
    model, train, loop, data = configs["model"], configs["train"], configs["loop"], configs["data"]
    rate = model.sample_rate
    if data.pairs and train.p_pair <= 0:
        raise SystemExit(f"data.pairs={data.pairs}: its rows are drawn only as pairs; set train.p_pair (e.g. 0.5 "
                         "with loop.batch_size=8) or drop data.pairs")
    if data.manifest == "synthetic":
        (train_waves, train_labels, sources), (dev_waves, dev_labels, _) = synthetic(16, rate, 0), synthetic(8, rate, 1)
        pair_only, seconds = [False] * len(train_waves), [len(w) / rate for w in train_waves]
    else:
        train_waves, train_labels, sources, pair_only, seconds = load_split(data, "train", rate)
        dev_waves, dev_labels, _, _, _ = load_split(data, "dev", rate)
    segment = int(train.segment_seconds * rate)
    dataset = DetectionCropDataset(train_waves, train_labels, segment, train, rate,
                                   length=max(len(train_waves), loop.batch_size * 50), sources=sources,
                                   pair_only=pair_only)
    dev = FixedDev(dev_waves, dev_labels, segment, data.dev_items)
    summary = {"train_items": len(train_waves) - sum(pair_only),
               "train_fake": sum(y for y, only in zip(train_labels, pair_only, strict=True) if not only),
               "train_hours": round(sum(s for s, only in zip(seconds, pair_only, strict=True) if not only) / 3600, 3),
               "train_copies_with_source": len(dataset.copies),
               "train_pair_only": sum(pair_only),
               "excluded_family": data.exclude_family,
               "excluded_corpus": data.exclude_corpus}
    logging.info("data: %s", summary)
    task = build_task(model, train, metadata={"name": "detector-16k", "data": summary, "init": args.init})
    if args.init:
        try:
            task.modules["detector"].load_state_dict(Checkpoint.load(args.init).state_dict, strict=True)
        except RuntimeError as err:
            raise SystemExit(f"--init {args.init}: its weights do not fit this config's model "
                             f"({str(err).splitlines()[0]}); use the config it was trained with") from None
    fit(task, loop, dataset, args.run, eval_data=dev, resolved_config=resolved)


if __name__ == "__main__":
    run_recipe(main)
