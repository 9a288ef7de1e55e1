"""Content-encoder training: distillation from a teacher's features of the clean audio.

A batch is a dict:

* ``mel``: (B, M, F) log-mels of a crop, clean or through a simulated phone line;
* ``teacher``: (B, F // 2, D) the teacher's features of the clean crop (50 frames/s);

With ``ctc_weight`` > 0 each item also carries a whole transcribed utterance (``ctc_mel``,
(M, F), and its ``phones``, (L,) ids with 0 the CTC blank); a linear phone head on the unit-norm
content features is trained on them with CTC, so the features keep what was said phone by
phone and not only what the teacher's last layer says about it.

Each step warps the mel's frequency axis by a random factor (a vocal-tract-length change:
formants and harmonics move together, as between speakers) and shifts its level, so the
student learns to say the same thing about every voice and line. The loss is
``1 - cos`` between the student's head output (pooled to 50 frames/s) and the teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from voicefake.audio.features import MelConfig
from voicefake.conversion.model import ContentEncoder, ContentEncoderConfig
from voicefake.metrics import edit_distance
from voicefake.train.loop import TrainTask, warmup_cosine


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and augmentation settings for the content encoder.

    Attributes:
        lr / weight_decay: AdamW.
        warmup_steps / total_steps / min_lr_ratio: linear warm-up then cosine decay.
        warp: frequency-axis warping factors are drawn log-uniformly in [1/warp, warp].
        gain_db: random level shift in [-gain_db, gain_db].
        grad_clip: max grad norm (0 disables).
        time_masks / time_mask_frames: per example, this many spans of up to this many frames
            of the student's input are set to the crop's mean (SpecAugment-style; the teacher
            still describes the clean audio, so the student must infer them from context).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    total_steps: int = 3000
    min_lr_ratio: float = 0.05
    warp: float = 1.2
    gain_db: float = 12.0
    grad_clip: float = 5.0
    time_masks: int = 0
    time_mask_frames: int = 10
    ctc_weight: float = 0.0
    ctc_items: int = 8


class CropDataset(Dataset):
    """Random fixed-length crops of cached utterances (a random version of each: clean or phone).

    Args:
        mels: per utterance, (V, M, F) log-mels of V versions (float16 is fine).
        teacher: per utterance, (F // 2 or so, D) teacher features.
        frames: crop length in mel frames (even).
        items: epoch size (crops are random, so this is only a cadence).
        ctc: transcribed utterances, each ((V, M, F) log-mels of V versions, (L,) phone ids);
            each item then also carries a random one whole (``ctc_mel``, ``phones``).
    """

    def __init__(self, mels: list[torch.Tensor], teacher: list[torch.Tensor], frames: int, items: int,
                 ctc: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        keep = [i for i, m in enumerate(mels) if m.shape[-1] >= frames and len(teacher[i]) >= frames // 2]
        if not keep:
            raise ValueError(f"no utterance has {frames} frames")
        self.mels, self.teacher = [mels[i] for i in keep], [teacher[i] for i in keep]
        self.frames, self.items = frames - frames % 2, items
        self.ctc = ctc or []

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        utt = int(torch.randint(0, len(self.mels), ()))
        mel, teacher = self.mels[utt], self.teacher[utt]
        half = min(mel.shape[-1], 2 * len(teacher)) // 2
        start = int(torch.randint(0, half - self.frames // 2 + 1, ()))
        version = int(torch.randint(0, mel.shape[0], ()))
        item = {"mel": mel[version, :, 2 * start: 2 * start + self.frames].float(),
                "teacher": teacher[start: start + self.frames // 2].float()}
        if self.ctc:
            mels, phones = self.ctc[int(torch.randint(0, len(self.ctc), ()))]
            item["ctc_mel"] = mels[int(torch.randint(0, mels.shape[0], ()))].float()
            item["phones"] = phones.long()
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacks the values that share a shape; variable-length ones (whole utterances) stay lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        same = all(isinstance(v, torch.Tensor) and v.shape == values[0].shape for v in values)
        out[key] = torch.stack(values) if same else values
    return out


def warp_mel(mel: torch.Tensor, factors: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Scales the frequency axis of (B, M, F) log-mels by per-example factors (B,).

    Band m of the output takes the input's value at its centre frequency divided by the
    factor (linear interpolation between bands, clamped at the edges).
    """
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.f_min, fmax=config.f_max,
                                      htk=config.mel_scale == "htk")[1:-1]
    index = np.arange(config.n_mels, dtype=np.float64)
    rows = [np.interp(centres / float(f), centres, index) for f in factors]
    position = torch.tensor(np.stack(rows), dtype=mel.dtype, device=mel.device)  # (B, M)
    low = position.floor().long().clamp(0, config.n_mels - 1)
    high = (low + 1).clamp(max=config.n_mels - 1)
    frac = (position - low)[..., None]
    take = lambda idx: torch.gather(mel, 1, idx[..., None].expand(-1, -1, mel.shape[-1]))  # noqa: E731
    return take(low) * (1 - frac) + take(high) * frac


def time_mask(mel: torch.Tensor, masks: int, max_frames: int) -> torch.Tensor:
    """Sets ``masks`` random spans (up to ``max_frames`` each) of every (M, F) example to its mean."""
    batch, _, frames = mel.shape
    width = torch.randint(0, max_frames + 1, (batch, masks, 1))
    start = (torch.rand(batch, masks, 1) * (frames - width + 1)).long()
    position = torch.arange(frames)[None, None]
    hidden = ((position >= start) & (position < start + width)).any(dim=1)[:, None].to(mel.device)
    return torch.where(hidden, mel.mean(dim=(1, 2), keepdim=True), mel)


def augment(mel: torch.Tensor, cfg: TrainConfig, config: MelConfig) -> torch.Tensor:
    """Random vocal-tract warp, level shift and (optionally) time masks of a (B, M, F) log-mel batch."""
    batch = mel.shape[0]
    factors = torch.exp(torch.empty(batch).uniform_(-math.log(cfg.warp), math.log(cfg.warp)))
    gain = torch.empty(batch, 1, 1).uniform_(-cfg.gain_db, cfg.gain_db) * math.log(10) / 20
    out = warp_mel(mel, factors, config) + gain.to(mel.device)
    return time_mask(out, cfg.time_masks, cfg.time_mask_frames) if cfg.time_masks > 0 else out


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos between (B, F, D) student frames pooled to the teacher's (B, F // 2, D)."""
    pooled = F.avg_pool1d(student.transpose(1, 2), 2).transpose(1, 2)
    length = min(pooled.shape[1], teacher.shape[1])
    return (1 - F.cosine_similarity(pooled[:, :length], teacher[:, :length], dim=-1)).mean()


def ctc_loss(encoder: Any, mels: list[torch.Tensor], phones: list[torch.Tensor]) -> torch.Tensor:
    """CTC of the phone head over whole (M, F) utterances (each encoded alone: the encoder
    normalises each utterance's bands over its own length, so padding would change it)."""
    logits = [encoder.phone_logits(encoder(m[None]))[0] for m in mels]
    lengths = torch.tensor([len(x) for x in logits])
    log_probs = nn.utils.rnn.pad_sequence(logits).log_softmax(-1)  # (T, B, C)
    targets = torch.cat(phones)
    return F.ctc_loss(log_probs, targets, lengths, torch.tensor([len(p) for p in phones]),
                      blank=0, zero_infinity=True)


def greedy_phones(logits: torch.Tensor) -> list[int]:
    """Best-path CTC decoding of (F, C) logits: repeats merged, blanks (0) dropped."""
    best = logits.argmax(-1).tolist()
    return [p for i, p in enumerate(best) if p != 0 and (i == 0 or p != best[i - 1])]


def phone_error_rate(encoder: Any, mels: list[torch.Tensor], phones: list[torch.Tensor]) -> float:
    """Corpus phone error rate of greedy CTC decoding (edits / reference phones)."""
    edits = sum(edit_distance(p.tolist(), greedy_phones(encoder.phone_logits(encoder(m[None]))[0]))
                for m, p in zip(mels, phones, strict=True))
    return edits / max(1, sum(len(p) for p in phones))


def lr_lambda(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    return warmup_cosine(step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)


def train_step(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               batch: dict[str, Any], cfg: TrainConfig, mel_config: MelConfig) -> dict[str, float]:
    encoder: Any = modules["encoder"]  # a ContentEncoder (head / features)
    student = encoder.head(encoder.features(augment(batch["mel"], cfg, mel_config)))
    loss = distill_loss(student, batch["teacher"])
    out = {"loss/distill": float(loss.detach())}
    if cfg.ctc_weight > 0 and "phones" in batch:
        count = cfg.ctc_items
        mels = [augment(m[None], cfg, mel_config)[0] for m in batch["ctc_mel"][:count]]
        ctc = ctc_loss(encoder, mels, list(batch["phones"][:count]))
        out["loss/ctc"] = float(ctc.detach())
        loss = loss + cfg.ctc_weight * ctc
    optimizer = optimizers["encoder"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        out["grad_norm/encoder"] = float(nn.utils.clip_grad_norm_(encoder.parameters(), cfg.grad_clip))
    optimizer.step()
    out["lr"] = optimizer.param_groups[0]["lr"]
    return out


def eval_step(modules: dict[str, nn.Module], batch: dict[str, Any], mel_config: MelConfig) -> dict[str, float]:
    """Distillation loss on dev crops as they are and with the voice warped by 1.15 and 1/1.15;
    with a phone head and transcribed dev utterances, their phone error rate (``eval/per``).

    Args:
        batch: ``mel`` (1, N, M, F) and ``teacher`` (1, N, F // 2, D): the whole dev set;
            optionally ``ctc_mel`` and ``phones``: [list of (M, F)] and [list of (L,)].
    """
    encoder: Any = modules["encoder"]  # a ContentEncoder (head / features)
    dev_mel, teacher = batch["mel"][0], batch["teacher"][0]
    out = {"eval/distill": float(distill_loss(encoder.head(encoder.features(dev_mel)), teacher))}
    warped = []
    for factor in (1.15, 1 / 1.15):
        mel = warp_mel(dev_mel, torch.full((len(dev_mel),), factor), mel_config)
        warped.append(float(distill_loss(encoder.head(encoder.features(mel)), teacher)))
    out["eval/distill_warped"] = float(np.mean(warped))
    if encoder.phone_head is not None and "phones" in batch:
        out["eval/per"] = phone_error_rate(encoder, batch["ctc_mel"][0], batch["phones"][0])
    return out


def build_task(model: ContentEncoderConfig, mel: MelConfig, cfg: TrainConfig, metadata: dict | None = None) -> TrainTask:
    """Everything :func:`voicefake.train.loop.fit` needs to train a content encoder."""
    encoder = ContentEncoder(model, mel)
    optimizer = torch.optim.AdamW(encoder.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_lambda, cfg=cfg))
    return TrainTask(
        modules={"encoder": encoder},
        optimizers={"encoder": optimizer},
        schedulers={"encoder": scheduler},
        train_step=partial(train_step, cfg=cfg, mel_config=mel),
        eval_step=partial(eval_step, mel_config=mel),
        exports={"encoder": ("content", mel)},
        collate=collate,
        metadata=dict(metadata or {}),
    )
