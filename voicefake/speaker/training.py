"""Speaker-encoder training: distillation from a teacher + AAM-softmax, on cached log-mels.

A batch is a dict:

* ``mel``: (B, M, F) log-mels of (possibly augmented: phone line, noise, reverb, speed) crops;
* ``teacher``: (B, D) the teacher's embedding of the CLEAN crop (zeros when there is none);
* ``speaker``: (B,) training-speaker index.

The loss is ``w_distill * (1 - cos(student, teacher)) + w_aam * AAM-softmax``: the student
learns the teacher's embedding space from channel-degraded input, and the margin loss keeps
our own training speakers apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from voicefake.audio.features import MelConfig
from voicefake.metrics import compute_eer, pairwise_trials
from voicefake.speaker.losses import AAMSoftmax, distill_loss
from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig
from voicefake.train.loop import TrainTask, warmup_cosine

LOSSES = ("distill", "aam")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for the speaker encoder.

    Attributes:
        lr / weight_decay: AdamW.
        warmup_steps / total_steps / min_lr_ratio: linear warm-up then cosine decay.
        loss_weights: ``distill`` and ``aam``; a term at 0 is not computed.
        aam_margin / aam_scale: AAM-softmax margin (radians) and scale.
        min_frames: each batch is cut to a random length in [min_frames, F] mel frames, so the
            encoder also sees short inputs.
        grad_clip: max grad norm (0 disables).
        freq_mask / time_mask: SpecAugment: one band of up to ``freq_mask`` mel bins and one
            stretch of up to ``time_mask`` frames per example are set to its mean (0 disables).
    """

    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    total_steps: int = 3000
    min_lr_ratio: float = 0.02
    loss_weights: dict[str, float] = field(default_factory=lambda: {"distill": 1.0, "aam": 0.1})
    aam_margin: float = 0.2
    aam_scale: float = 30.0
    min_frames: int = 100
    grad_clip: float = 5.0
    freq_mask: int = 0
    time_mask: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.loss_weights) - set(LOSSES)
        if unknown:
            raise ValueError(f"unknown speaker loss weight(s) {sorted(unknown)}; allowed: {list(LOSSES)}")


class MelCropDataset(Dataset):
    """Cached crops: each item is one random version (clean or augmented) of one crop.

    Args:
        mels: (N, V, M, F) log-mels (any float dtype), V versions of each crop.
        teacher: (N, D) teacher embeddings of the clean crops, or None (zeros).
        speaker: (N,) speaker indices.
        clean_share: probability of version 0 (the clean crop); the other versions share the
            rest equally. None: every version equally likely.
    """

    def __init__(self, mels: torch.Tensor, teacher: torch.Tensor | None, speaker: torch.Tensor,
                 clean_share: float | None = None) -> None:
        if mels.dim() != 4 or len(mels) != len(speaker):
            raise ValueError(f"mels must be (N, V, M, F) with N = len(speaker); got {tuple(mels.shape)}")
        if clean_share is not None and not (0 < clean_share <= 1 and (mels.shape[1] > 1 or clean_share == 1)):
            raise ValueError(f"clean_share must be in (0, 1] (1 when there is one version); got {clean_share}")
        self.mels, self.speaker = mels, speaker.long()
        self.teacher = teacher if teacher is not None else torch.zeros(len(mels), 1)
        versions = mels.shape[1]
        share = 1 / versions if clean_share is None else clean_share
        rest = (1 - share) / (versions - 1) if versions > 1 else 0.0
        self.version_weights = torch.tensor([share] + [rest] * (versions - 1))

    def __len__(self) -> int:
        return len(self.mels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        version = int(torch.multinomial(self.version_weights, 1))
        return {"mel": self.mels[index, version].float(), "teacher": self.teacher[index].float(),
                "speaker": self.speaker[index]}


def build_modules(model: SpeakerEncoderConfig, mel: MelConfig, cfg: TrainConfig,
                  num_speakers: int) -> dict[str, nn.Module]:
    """The encoder and the AAM-softmax speaker classifier."""
    return {
        "encoder": SpeakerEncoder(model, mel),
        "aam": AAMSoftmax(model.emb_dim, num_speakers, cfg.aam_margin, cfg.aam_scale),
    }


def build_optimizers(modules: dict[str, nn.Module], cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """One AdamW over encoder and classifier."""
    params = [p for m in modules.values() for p in m.parameters()]
    return {"encoder": torch.optim.AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)}


def lr_lambda(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    return warmup_cosine(step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)


def random_length_crop(mel: torch.Tensor, min_frames: int) -> torch.Tensor:
    """(B, M, F) -> (B, M, L), one random length L in [min(min_frames, F), F] and start."""
    frames = mel.shape[-1]
    length = int(torch.randint(min(min_frames, frames), frames + 1, ()))
    start = int(torch.randint(0, frames - length + 1, ()))
    return mel[..., start : start + length]


def spec_augment(mel: torch.Tensor, freq_mask: int, time_mask: int) -> torch.Tensor:
    """One random mel band and one random time stretch per example set to its mean: (B, M, F)."""
    batch, bins, frames = mel.shape
    mean = mel.mean(dim=(1, 2), keepdim=True)
    keep = torch.ones_like(mel, dtype=torch.bool)
    for size, axis, length in ((freq_mask, 1, bins), (time_mask, 2, frames)):
        if size <= 0:
            continue
        width = torch.randint(0, min(size, length) + 1, (batch, 1))
        start = (torch.rand(batch, 1) * (length - width + 1)).long()
        position = torch.arange(length)[None]
        hit = (position >= start) & (position < start + width)  # (B, length)
        keep &= ~(hit[:, :, None] if axis == 1 else hit[:, None, :]).to(mel.device)
    return torch.where(keep, mel, mean)


def train_step(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               batch: dict[str, torch.Tensor], cfg: TrainConfig) -> dict[str, float]:
    """One update on a batch (see the module docstring for its keys)."""
    weights = cfg.loss_weights
    mel = random_length_crop(batch["mel"], cfg.min_frames)
    emb = modules["encoder"](spec_augment(mel, cfg.freq_mask, cfg.time_mask))
    terms: dict[str, torch.Tensor] = {}
    if weights.get("distill", 0) > 0:
        terms["distill"] = distill_loss(emb, batch["teacher"])
    if weights.get("aam", 0) > 0:
        terms["aam"] = modules["aam"](emb, batch["speaker"])
    if not terms:
        raise ValueError(f"all speaker loss weights are 0: {weights}")
    total = torch.stack([weights[k] * v for k, v in terms.items()]).sum()
    optimizer = optimizers["encoder"]
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    out = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
    if cfg.grad_clip > 0:
        params = [p for m in modules.values() for p in m.parameters()]
        out["grad_norm/encoder"] = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
    optimizer.step()
    out["loss/total"] = float(total.detach())
    out["lr"] = optimizer.param_groups[0]["lr"]
    return out


def eval_step(modules: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """EER over all pairs of fixed dev crops, clean and through the phone line.

    Args:
        batch: ``clean`` and ``phone`` (1, N, M, F) log-mels, ``speaker`` (1, N) ids.
    """
    encoder = modules["encoder"]
    assert isinstance(encoder, SpeakerEncoder)
    out = {}
    for name in ("clean", "phone"):
        emb = encoder.embed_long(batch[name][0].float())
        scores, labels = pairwise_trials(emb.cpu(), batch["speaker"][0].cpu())
        out[f"eval/eer_{name}"] = compute_eer(scores, labels)[0]
    out["eval/eer_mean"] = float(np.mean([out["eval/eer_clean"], out["eval/eer_phone"]]))
    return out


def build_task(model: SpeakerEncoderConfig, mel: MelConfig, cfg: TrainConfig, num_speakers: int,
               metadata: dict | None = None) -> TrainTask:
    """Everything :func:`voicefake.train.loop.fit` needs to train a speaker encoder."""
    modules = build_modules(model, mel, cfg, num_speakers)
    optimizers = build_optimizers(modules, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizers["encoder"], partial(lr_lambda, cfg=cfg))
    return TrainTask(
        modules=modules,
        optimizers=optimizers,
        schedulers={"encoder": scheduler},
        train_step=partial(train_step, cfg=cfg),
        eval_step=eval_step,
        exports={"encoder": ("speaker", mel)},
        metadata=dict(metadata or {}),
    )
