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
from voicefake.config import load_sections, recipe_parser, run_recipe
from voicefake.conversion.decoder_training import (
    DecoderCrops,
    TrainConfig,
    build_task,
    repeat_to,
    widen_for_pitch_level,
)
from voicefake.conversion.model import ContentEncoder, ConversionDecoder, DecoderConfig
from voicefake.data.datasets import OneItem
from voicefake.train.loop import LoopConfig, fit


@dataclass(frozen=True)
class DataConfig:
    """Where the training data comes from.

    Attributes:
        content: the frozen content encoder (checkpoint directory or bundled name); unused,
            and not loaded, for a decoder that reads the cepstrum (``model.content_input``),
            unless ``train.content_loss`` listens with it.
        cache / decoder_cache: written by build_cache.py and build_decoder_cache.py, or
            "synthetic" (random tones, for tests).
        crop_frames: training crop length in mel frames.
        epoch_items: crops per epoch (a cadence only; crops are random).
        extra_share: share of the crops drawn from the decoder cache's extra utterances
            (build_decoder_cache.py --extra), whatever their number.
        paired: text-to-speech renderings time-aligned to real utterances (build_paired.py's
            paired.pt; "" = none). A paired crop's source is the rendering (or, as often as
            each rendering, the real utterance itself) and its target the real mel, so the
            decoder learns to turn espeak-ng's and flite's envelopes into a real voice.
        paired_share: share of the crops drawn from ``paired``.
        paired_engines: use only these engines' renderings (``espeak``, ``flite``); empty = all.
        reference_frames: length of each crop's reference (the same speaker's other utterances,
            see ``DecoderCrops``) for a decoder with reference attention (``model.reference_heads``);
            0 = no reference (every other decoder). Dev crops then read the other dev crops of
            their speaker, and those with none are left out of the dev set.
        reference_phone: share of the training crops whose reference is the phone-line copy of
            that speech (``DecoderCrops``), so that the decoder learns to read a voice from a
            reference taken from a recorded call (0 = always the clean recording).
        speaker: the frozen speaker encoder that ``train.speaker_loss`` / ``train.cycle_loss``
            listen with (checkpoint directory or bundled name); it should be the one whose
            embeddings the decoder cache holds. Not loaded when both are 0.
    """

    content: str = "content"
    cache: str = "synthetic"
    decoder_cache: str = "synthetic"
    crop_frames: int = 200
    epoch_items: int = 10000
    extra_share: float = 0.5
    paired: str = ""
    paired_share: float = 0.3
    paired_engines: tuple[str, ...] = ()
    reference_frames: int = 0
    reference_phone: float = 0.0
    speaker: str = "speaker"

    def __post_init__(self) -> None:
        if not 0.0 <= self.extra_share < 1.0:
            raise ValueError(f"data.extra_share must be in [0, 1), got {self.extra_share}")
        if not 0.0 <= self.paired_share < 1.0:
            raise ValueError(f"data.paired_share must be in [0, 1), got {self.paired_share}")
        if self.reference_frames < 0:
            raise ValueError(f"data.reference_frames must be >= 0, got {self.reference_frames}")
        if not 0.0 <= self.reference_phone <= 1.0:
            raise ValueError(f"data.reference_phone must be in [0, 1], got {self.reference_phone}")
        if self.reference_phone and not self.reference_frames:
            raise ValueError("data.reference_phone needs data.reference_frames > 0 (a decoder that reads a reference)")
        if self.reference_frames and self.paired:
            raise ValueError("data.paired and data.reference_frames cannot be combined (paired items have no "
                             "reference utterances)")


SECTIONS = {"model": DecoderConfig, "mel": MelConfig, "train": TrainConfig, "loop": LoopConfig, "data": DataConfig}


def synthetic(mel: MelConfig, speaker_dim: int, frames: int, reference_frames: int = 0,
              reference_phone: float = 0.0) -> tuple[DecoderCrops, OneItem]:
    gen = torch.Generator().manual_seed(0)
    features = MelSpectrogram(mel)
    mels = [torch.stack([features(torch.randn((frames - 1) * mel.hop_length, generator=gen))] * 2) for _ in range(4)]
    f0 = [torch.rand(frames, generator=gen) + 4 for _ in range(4)]
    table = torch.nn.functional.normalize(torch.randn(2, speaker_dim, generator=gen), dim=-1)
    speakers = torch.tensor([0, 1, 0, 1])
    train = DecoderCrops(mels, f0, speakers, table, frames, 16, reference_frames=reference_frames,
                         reference_phone=reference_phone)
    dev = {"mel": torch.stack([m[0] for m in mels]), "log_f0": torch.stack(f0), "speaker": table[speakers]}
    return train, OneItem(dev_references(dev, reference_frames) if reference_frames else dev)


def dev_references(dev: dict[str, torch.Tensor], frames: int) -> dict[str, torch.Tensor]:
    """The dev crops that have another crop of their speaker (the same embedding row), each with
    ``reference``: (N, M, frames), those other crops joined (repeated if shorter)."""
    same = (dev["speaker"][:, None, :] == dev["speaker"][None, :, :]).all(dim=-1)
    keep, refs = [], []
    for i in range(len(same)):
        others = [dev["mel"][j] for j in range(len(same)) if same[i, j] and j != i]
        if others:
            keep.append(i)
            refs.append(repeat_to(others, frames)[:, :frames])
    if not keep:
        raise ValueError("no dev crop has another crop of its speaker to read as its reference")
    return {**{k: v[keep] for k, v in dev.items()}, "reference": torch.stack(refs)}


def real_data(cache: dict, extra: dict, paired: dict, data: DataConfig) -> tuple[DecoderCrops, dict]:
    """Training crops and the dev batch from the caches (and build_paired.py's pairs, if any).

    Each group of utterances (the content cache's, the decoder cache's extra ones, the paired
    ones) gets its share of the draws whatever its size. Paired items bring their own speakers:
    their indices follow the cache's in the joint embedding table.
    """
    t = extra["train"]
    groups = [cache["train"]["mels"], t.get("extra_mels", [])]
    f0, speaker, table = list(t["log_f0"]), t["speaker"], t["embeddings"]
    bins = t.get("bins", torch.full((len(f0),), groups[0][0].shape[-2]))  # caches before session 6: all bands
    shares = [1.0 - (data.extra_share if groups[1] else 0.0) - (data.paired_share if paired else 0.0),
              data.extra_share]
    if groups[1] and paired and shares[0] <= 0:
        raise ValueError(f"data.extra_share + data.paired_share must be below 1 with extra utterances, got "
                         f"{data.extra_share} + {data.paired_share}")
    if paired:
        p = paired["train"]
        if not p["mels"]:
            raise ValueError(f"{data.paired}: no paired training item"
                             + (f" with a rendering by {', '.join(data.paired_engines)}" if data.paired_engines else ""))
        if p["embeddings"].shape[-1] != table.shape[-1]:
            raise ValueError(f"{data.paired}: {p['embeddings'].shape[-1]}-d speaker embeddings, the decoder cache has "
                             f"{table.shape[-1]}-d: rebuild it with the same speaker encoder")
        groups.append(p["mels"])
        shares.append(data.paired_share)
        f0 += list(p["log_f0"])
        speaker = torch.cat([speaker, p["speaker"] + len(table)])
        table = torch.cat([table, p["embeddings"]])
        bins = torch.cat([bins, p["bins"]])
    fits = [sum(m.shape[-1] >= data.crop_frames for m in group) for group in groups]
    weights = torch.cat([torch.full((len(group),), share / max(fit, 1))
                         for group, share, fit in zip(groups, shares, fits, strict=True)])
    train = DecoderCrops([m for group in groups for m in group], f0, speaker, table, data.crop_frames,
                         data.epoch_items, bins=bins, weights=weights, reference_frames=data.reference_frames,
                         reference_phone=data.reference_phone)
    dev = {k: v.float() for k, v in extra["dev"].items()}
    if data.reference_frames:
        dev = dev_references(dev, data.reference_frames)
    if paired and paired["dev"]["mels"]:
        dev.update(paired_dev(paired["dev"], data.crop_frames))
    return train, dev


def select_engines(items: dict, engines: tuple[str, ...]) -> dict:
    """The paired items with only the renderings of ``engines`` (items left with none are dropped;
    no engines: all of them)."""
    if not engines:
        return items
    out: dict = {"mels": [], "log_f0": [], "speaker": [], "bins": [], "engines": [], "embeddings": items["embeddings"]}
    for number, (mels, names) in enumerate(zip(items["mels"], items["engines"], strict=True)):
        keep = [i for i, name in enumerate(names) if name.split("-")[0] in engines]
        if not keep:
            continue
        out["mels"].append(mels[[0] + [1 + i for i in keep]])
        out["log_f0"].append(items["log_f0"][number])
        out["speaker"].append(int(items["speaker"][number]))
        out["bins"].append(int(items["bins"][number]))
        out["engines"].append([names[i] for i in keep])
    return {**out, "speaker": torch.tensor(out["speaker"], dtype=torch.long),
            "bins": torch.tensor(out["bins"], dtype=torch.long)}


def paired_dev(items: dict, frames: int) -> dict[str, torch.Tensor]:
    """Fixed dev crops of the paired items: every rendering of each item's first ``frames`` frames."""
    out: dict[str, list[torch.Tensor]] = {"paired_source": [], "paired_mel": [], "paired_log_f0": [], "paired_speaker": []}
    for mels, f0, who in zip(items["mels"], items["log_f0"], items["speaker"], strict=True):
        if mels.shape[-1] < frames:
            continue
        for version in range(1, len(mels)):
            out["paired_source"].append(mels[version, :, :frames])
            out["paired_mel"].append(mels[0, :, :frames])
            out["paired_log_f0"].append(f0[:frames])
            out["paired_speaker"].append(items["embeddings"][who])
    return {k: torch.stack(v).float() for k, v in out.items() if v}


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--init", help="start the decoder from this checkpoint (fine-tuning)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configs, resolved = load_sections(args.config, args.overrides, SECTIONS)
    model, mel, train_cfg, loop, data = (configs[k] for k in ("model", "mel", "train", "loop", "data"))
    # a cepstrum decoder reads the source's mel: the content encoder is loaded only for the others,
    # or as the judge of train.content_loss
    reads = model.content_input != "cepstrum"
    content = api.load(data.content, kind="content") if reads or train_cfg.content_loss > 0 else None
    assert content is None or isinstance(content.module, ContentEncoder)
    more: list = []
    paired: dict = {}
    if bool(model.reference_heads) != bool(data.reference_frames):
        raise ValueError(f"model.reference_heads ({model.reference_heads}) and data.reference_frames "
                         f"({data.reference_frames}) go together: both 0, or both above 0")
    if data.cache == "synthetic":
        train, dev = synthetic(mel, model.speaker_dim, data.crop_frames, data.reference_frames,
                               data.reference_phone)
    else:
        cache, extra = torch.load(data.cache, weights_only=True), torch.load(data.decoder_cache, weights_only=True)
        paired = torch.load(data.paired, weights_only=True) if data.paired else {}
        if paired:  # only the chosen engines' renderings, for training, the dev crops and the metadata
            paired = {**paired, **{split: select_engines(paired[split], data.paired_engines) for split in ("train", "dev")}}
        train, dev_batch = real_data(cache, extra, paired, data)
        more = extra["train"].get("extra_mels", [])
        dev = OneItem(dev_batch)
    judge = api.load(data.speaker, kind="speaker") if train_cfg.converts else None
    content_module = None if content is None else content.module
    task = build_task(model, mel, train_cfg, content_module if reads else None, judge=None if judge is None else judge.module,
                      judge_mel=None if judge is None else judge.checkpoint.mel_config,
                      content_judge=content_module if train_cfg.content_loss > 0 else None, metadata={
        "name": "conversion", "content": content.checkpoint.name if reads and content is not None else "cepstrum",
        **({"content_judge": content.checkpoint.name} if train_cfg.content_loss > 0 and content is not None else {}),
        "cache": data.cache,
        "train_utterances": len(train.mels), "train_speakers": len(train.embeddings),
        "extra_utterances": len(more), "extra_share": data.extra_share if more else 0.0,
        **({"paired": data.paired, "paired_items": len(paired["train"]["mels"]), "paired_share": data.paired_share,
            "paired_engines": list(data.paired_engines) or "all",
            **{f"paired_{k}": v for k, v in paired.get("meta", {}).items()}} if paired else {}),
        **({"init": str(args.init)} if args.init else {}),
        **({"speaker": judge.checkpoint.name} if judge is not None else {}),
    })
    if args.init:
        # a decoder with reference attention may start from one without: its attention's output
        # projection starts at zero, so the start is that decoder exactly
        # and one with a pitch level from one without: that input's weights start at zero
        decoder = task.modules["decoder"]
        assert isinstance(decoder, ConversionDecoder)
        state = widen_for_pitch_level(decoder, Checkpoint.load(args.init).state_dict)
        # a narrowband offset is not trained: it fits the weights it was estimated for, so it is left
        # behind here, and recipes/conversion/narrowband_offset.py estimates one for the new weights
        state = {k: v for k, v in state.items() if k != "narrowband_offset"}
        try:
            missing, unexpected = decoder.load_state_dict(state, strict=False)
        except RuntimeError as error:  # a weight of another shape (other sizes, or a pitch level this decoder lacks)
            raise ValueError(f"--init {args.init} does not fit this decoder: {error}") from None
        if unexpected or any(not k.startswith("reference.") for k in missing):
            raise ValueError(f"--init {args.init} does not fit this decoder: missing {missing}, unexpected {unexpected}")
    fit(task, loop, train, args.run, eval_data=dev, resolved_config=resolved)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {args.run}")


if __name__ == "__main__":
    run_recipe(main)
