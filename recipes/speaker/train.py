"""Trains the speaker encoder (distillation from Resemblyzer + AAM-softmax).

    python recipes/speaker/prepare_shared.py --out runs/data/speaker
    python recipes/speaker/build_cache.py --train runs/data/speaker/train.csv \
        --dev runs/data/speaker/dev.csv --out runs/data/speaker/cache.pt
    python recipes/speaker/train.py --config recipes/speaker/configs/bundled.yaml \
        --run runs/speaker-bundled [section.key=value ...]

Fine-tuning: ``--init speaker`` (or a checkpoint directory) starts the encoder from those weights.
A model with ``model.spectral_shape=true`` can start from one without it: the head's new input
columns start at zero, so training begins from the old model's embeddings.

Multi-GPU: torchrun --nproc_per_node=N recipes/speaker/train.py --config ... --run ...
Re-running the same command resumes from the run's last complete step.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from voicefake.audio.features import MelConfig, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.config import load_sections, recipe_parser, run_recipe
from voicefake.data.datasets import OneItem
from voicefake.speaker.model import SpeakerEncoderConfig
from voicefake.speaker.training import MelCropDataset, TrainConfig, build_task
from voicefake.train.loop import LoopConfig, fit


@dataclass(frozen=True)
class DataConfig:
    """Where the training crops come from.

    Attributes:
        cache: a cache written by build_cache.py, or "synthetic" (generated tone "speakers").
        synthetic_speakers: speakers in the synthetic set.
        center_teacher: distil towards the teacher embeddings minus their mean over the training
            crops. Resemblyzer's embeddings are ReLU outputs sharing a large common component
            (each crop's cosine to the mean direction averages 0.67), which a cosine loss on raw
            targets rewards the student for copying; centred, the targets keep only what tells
            voices apart (the centred teacher's dev EER: 0.01 % clean vs 0.44 % raw).
        clean_share: how often a training item is the clean version of its crop (the rest are
            phone-line / noisy / speed-perturbed versions); empty: all versions equally often.
    """

    cache: str = "synthetic"
    synthetic_speakers: int = 4
    center_teacher: bool = False
    clean_share: float | None = None



def synthetic(mel: MelConfig, speakers: int, per_speaker: int, frames: int, seed: int) -> dict:
    """Harmonic tones whose pitch and timbre depend on the "speaker": a stand-in for speech."""
    rng = np.random.default_rng(seed)
    features = MelSpectrogram(mel)
    num = (frames - 1) * mel.hop_length
    t = np.arange(num) / mel.sample_rate
    mels, labels = [], []
    for spk in range(speakers):
        for _ in range(per_speaker):
            f0 = (100 + 40 * spk) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
            phase = 2 * np.pi * np.cumsum(f0) / mel.sample_rate
            wav = sum(np.sin(k * phase) / k ** (1 + 0.3 * spk) for k in range(1, 10)) * 0.1
            wav = wav + 0.01 * rng.standard_normal(num)
            mels.append(features(torch.from_numpy(wav.astype(np.float32))))
            labels.append(spk)
    return {"mels": torch.stack(mels)[:, None], "speaker": torch.tensor(labels)}


SECTIONS = {"model": SpeakerEncoderConfig, "mel": MelConfig, "train": TrainConfig, "loop": LoopConfig,
            "data": DataConfig}


def datasets(data: DataConfig, mel: MelConfig, seed: int) -> tuple[MelCropDataset, OneItem, int]:
    """(train dataset, dev item, number of training speakers)."""
    if data.cache == "synthetic":
        train = synthetic(mel, data.synthetic_speakers, 4, 81, seed)
        dev = synthetic(mel, data.synthetic_speakers, 2, 121, seed + 1)
        dev_item = {"clean": dev["mels"][:, 0], "phone": dev["mels"][:, 0], "speaker": dev["speaker"]}
        return MelCropDataset(train["mels"], None, train["speaker"]), OneItem(dev_item), data.synthetic_speakers
    cache = torch.load(data.cache, weights_only=True)
    dev = {k: v.float() if v.is_floating_point() else v for k, v in cache["dev"].items()}
    teacher = cache["teacher"] - cache["teacher"].mean(dim=0) if data.center_teacher else cache["teacher"]
    train = MelCropDataset(cache["mels"], teacher, cache["speaker"], data.clean_share)
    return train, OneItem(dev), len(cache["speakers"])


# what a released encoder holds beyond its weights: set after training by center.py, not trained
POST_TRAINING = ("center", "cohort")


def init_encoder(encoder: nn.Module, source: str) -> list[str]:
    """Loads ``source``'s encoder weights into ``encoder``; returns the parameters left as they
    were (a spectral-shape branch the source lacks). The head keeps its new input columns at
    zero, so the model starts from the source's embeddings. Other mismatches are an error."""
    state = {k: v for k, v in Checkpoint.load(source).state_dict.items() if k not in POST_TRAINING}
    own = encoder.state_dict()
    head = state.get("head.weight")
    if head is not None and "head.weight" in own and head.shape[1] < own["head.weight"].shape[1] \
            and head.shape[0] == own["head.weight"].shape[0]:
        widened = own["head.weight"].clone()
        widened[:, : head.shape[1]] = head
        widened[:, head.shape[1]:] = 0
        state["head.weight"] = widened
    def misfit(problem: str) -> SystemExit:
        return SystemExit(f"--init {source}: its weights do not fit this config's model ({problem}); "
                          "use the config it was trained with")

    try:
        missing, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a size mismatch
        raise misfit(str(err).splitlines()[-1].strip()) from None
    if unexpected or any(not k.startswith("shape_norm.") for k in missing):
        raise misfit(f"missing {missing}, unexpected {unexpected}")
    return list(missing)


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--init", help="start the encoder from this checkpoint (fine-tuning; 'speaker' for the "
                        "bundled model); run center.py on the result")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configs, resolved = load_sections(args.config, args.overrides, SECTIONS)
    model, mel, train_cfg = configs["model"], configs["mel"], configs["train"]
    loop, data = configs["loop"], configs["data"]
    train, dev, num_speakers = datasets(data, mel, loop.seed)
    task = build_task(model, mel, train_cfg, num_speakers, metadata={
        "name": "speaker", "cache": data.cache, "train_crops": len(train), "train_speakers": num_speakers,
        "init": args.init,
    })
    if args.init:
        new = init_encoder(task.modules["encoder"], args.init)
        logging.info("--init %s: encoder loaded%s", args.init, f"; new: {', '.join(new)}" if new else "")
    fit(task, loop, train, args.run, eval_data=dev, resolved_config=resolved)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {args.run}")


if __name__ == "__main__":
    run_recipe(main)
