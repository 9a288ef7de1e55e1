"""Trains the speaker-conditioned conversion decoder (on the source's cepstrum, or on a frozen
content encoder's features: ``model.content_input``).

    python recipes/conversion/build_decoder_cache.py --data runs/data/conversion
    python recipes/conversion/train_decoder.py --config recipes/conversion/configs/decoder_cepstral.yaml \
        --run runs/decoder-ceps [section.key=value ...]

Multi-GPU: torchrun --nproc_per_node=N recipes/conversion/train_decoder.py --config ... --run ...
Re-running the same command resumes from the run's last complete step. ``--init conversion``
(or a checkpoint folder) starts from trained weights: fine-tuning, e.g. after the speaker
encoder that makes the decoder's speaker embeddings changed (rebuild the decoder cache first).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from voicefake import api
from voicefake.audio.features import MelConfig, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.config import load_sections, recipe_parser
from voicefake.conversion.decoder_training import DecoderCrops, TrainConfig, build_task
from voicefake.conversion.model import ContentEncoder, DecoderConfig
from voicefake.data.datasets import OneItem
from voicefake.train.loop import LoopConfig, fit


@dataclass(frozen=True)
class DataConfig:
    """Where the training data comes from.

    Attributes:
        content: the frozen content encoder (checkpoint directory or bundled name); unused,
            and not loaded, for a decoder that reads the cepstrum (``model.content_input``).
        cache / decoder_cache: written by build_cache.py and build_decoder_cache.py, or
            "synthetic" (random tones, for tests).
        crop_frames: training crop length in mel frames.
        epoch_items: crops per epoch (a cadence only; crops are random).
        extra_share: share of the crops drawn from the decoder cache's extra utterances
            (build_decoder_cache.py --extra), whatever their number.
    """

    content: str = "content"
    cache: str = "synthetic"
    decoder_cache: str = "synthetic"
    crop_frames: int = 200
    epoch_items: int = 10000
    extra_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.extra_share < 1.0:
            raise ValueError(f"data.extra_share must be in [0, 1), got {self.extra_share}")


SECTIONS = {"model": DecoderConfig, "mel": MelConfig, "train": TrainConfig, "loop": LoopConfig, "data": DataConfig}


def synthetic(mel: MelConfig, speaker_dim: int, frames: int) -> tuple[DecoderCrops, OneItem]:
    gen = torch.Generator().manual_seed(0)
    features = MelSpectrogram(mel)
    mels = [torch.stack([features(torch.randn((frames - 1) * mel.hop_length, generator=gen))] * 2) for _ in range(4)]
    f0 = [torch.rand(frames, generator=gen) + 4 for _ in range(4)]
    table = torch.nn.functional.normalize(torch.randn(2, speaker_dim, generator=gen), dim=-1)
    train = DecoderCrops(mels, f0, torch.tensor([0, 1, 0, 1]), table, frames, 16)
    dev = {"mel": torch.stack([m[0] for m in mels[:2]]), "log_f0": torch.stack(f0[:2]), "speaker": table}
    return train, OneItem(dev)


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--init", help="start the decoder from this checkpoint (fine-tuning)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configs, resolved = load_sections(args.config, args.overrides, SECTIONS)
    model, mel, train_cfg, loop, data = (configs[k] for k in ("model", "mel", "train", "loop", "data"))
    # a cepstrum decoder reads the source's mel: the content encoder is loaded only for the others
    content = None if model.content_input == "cepstrum" else api.load(data.content, kind="content")
    assert content is None or isinstance(content.module, ContentEncoder)
    more: list = []
    if data.cache == "synthetic":
        train, dev = synthetic(mel, model.speaker_dim, data.crop_frames)
    else:
        cache, extra = torch.load(data.cache, weights_only=True), torch.load(data.decoder_cache, weights_only=True)
        t = extra["train"]
        base, more = cache["train"]["mels"], t.get("extra_mels", [])
        weights = None
        if more:  # per-utterance weights so that the long-enough extra crops get extra_share of the draws
            fits = [sum(m.shape[-1] >= data.crop_frames for m in group) for group in (base, more)]
            weights = torch.cat([torch.full((len(base),), (1 - data.extra_share) / max(fits[0], 1)),
                                 torch.full((len(more),), data.extra_share / max(fits[1], 1))])
        train = DecoderCrops(base + more, t["log_f0"], t["speaker"], t["embeddings"], data.crop_frames,
                             data.epoch_items, bins=t.get("bins"), weights=weights)
        dev = OneItem({k: v.float() for k, v in extra["dev"].items()})
    task = build_task(model, mel, train_cfg, None if content is None else content.module, metadata={
        "name": "conversion", "content": "cepstrum" if content is None else content.checkpoint.name,
        "cache": data.cache,
        "train_utterances": len(train.mels), "train_speakers": len(train.embeddings),
        "extra_utterances": len(more), "extra_share": data.extra_share if more else 0.0,
        **({"init": str(args.init)} if args.init else {}),
    })
    if args.init:
        task.modules["decoder"].load_state_dict(Checkpoint.load(args.init).state_dict, strict=True)
    fit(task, loop, train, args.run, eval_data=dev, resolved_config=resolved)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {args.run}")


if __name__ == "__main__":
    main()
