"""Trains the mel-spectrogram GAN vocoder.

    python recipes/vocoder/train.py --config recipes/vocoder/configs/small.yaml \
        --run runs/vocoder-small [section.key=value ...]

Multi-GPU: torchrun --nproc_per_node=N recipes/vocoder/train.py --config ... --run-dir ...
(under torchrun spell it ``--run-dir``: torchrun's own parser rejects ``--run`` as an
ambiguous abbreviation of its ``--run-path``).
Re-running the same command resumes from the run's last complete step. To fine-tune from the
bundled model, add ``--init vocoder`` (or a checkpoint directory).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voicefake.audio.features import MelConfig
from voicefake.checkpoint import Checkpoint
from voicefake.config import load_sections, recipe_parser, run_recipe
from voicefake.data.datasets import FixedCropDataset, RandomCropDataset, load_waveforms
from voicefake.data.manifests import data_root, read_manifest
from voicefake.train.loop import LoopConfig, fit
from voicefake.vocoder.model import VocoderConfig
from voicefake.vocoder.training import TrainConfig, build_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Where the audio comes from.

    Attributes:
        train_manifest / dev_manifest: manifest CSVs, or "synthetic" for generated tones.
        root: folder the manifest paths are relative to ("" = $VOICEFAKE_DATA, or the
            manifest's own folder when the manifest lives outside it).
        crops_per_item: random crops drawn from each file per epoch.
        eval_seconds: length of the fixed dev crops.
    """

    train_manifest: str = "synthetic"
    dev_manifest: str = "synthetic"
    root: str = ""
    crops_per_item: int = 8
    eval_seconds: float = 3.0


SECTIONS = {"model": VocoderConfig, "mel": MelConfig, "train": TrainConfig, "loop": LoopConfig, "data": DataConfig}


def synthetic_waves(count: int, seconds: float, sample_rate: int, seed: int) -> list[np.ndarray]:
    """Harmonic tones with vibrato and noise bursts: stand-in audio for the tiny config."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    waves = []
    for _ in range(count):
        f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        wav = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.1
        wav += 0.01 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.5)
        waves.append(wav.astype(np.float32))
    return waves


def read_waves(manifest: str, data: DataConfig, mel: MelConfig, seed: int) -> list[np.ndarray]:
    if manifest == "synthetic":
        return synthetic_waves(8, 2.0, mel.sample_rate, seed)
    path = Path(manifest)
    root = Path(data.root) if data.root else path.parent if (path.parent / "audio").is_dir() else data_root()
    return load_waveforms(read_manifest(path), root, mel.sample_rate)


def init_generator(generator: torch.nn.Module, source: str) -> None:
    """Loads a checkpoint's weights into ``generator``; the one part it may lack is an
    accumulating phase head's advance layer (zero-initialised, so the model starts out as the
    checkpoint's "frame" head and learns the advance from there)."""
    missing, unexpected = generator.load_state_dict(Checkpoint.load(source).state_dict, strict=False)
    allowed = [k for k in missing if k.startswith("generator.advance.")]
    if unexpected or len(allowed) != len(missing):
        raise SystemExit(f"--init {source}: weights do not fit this model config "
                         f"(missing {sorted(set(missing) - set(allowed))}, unexpected {sorted(unexpected)})")
    if allowed:
        log.info("--init %s: new zero-initialised phase-advance layer (%s)", source, ", ".join(allowed))


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--init", help="start the generator from this checkpoint (fine-tuning)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configs, resolved = load_sections(args.config, args.overrides, SECTIONS)
    model, mel, train_cfg = configs["model"], configs["mel"], configs["train"]
    loop, data = configs["loop"], configs["data"]
    train_waves = read_waves(data.train_manifest, data, mel, loop.seed)
    dev_waves = read_waves(data.dev_manifest, data, mel, loop.seed + 1)
    task = build_task(model, mel, train_cfg, metadata={
        "name": "vocoder", "train_manifest": data.train_manifest, "train_files": len(train_waves),
        "train_minutes": round(sum(len(w) for w in train_waves) / mel.sample_rate / 60, 2),
    })
    if args.init:
        init_generator(task.modules["generator"], args.init)
    eval_len = int(data.eval_seconds * mel.sample_rate) // mel.hop_length * mel.hop_length
    fit(
        task, loop,
        RandomCropDataset(train_waves, train_cfg.segment_samples, data.crops_per_item),
        args.run,
        eval_data=FixedCropDataset(dev_waves, eval_len),
        resolved_config=resolved,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {args.run}")


if __name__ == "__main__":
    run_recipe(main)
