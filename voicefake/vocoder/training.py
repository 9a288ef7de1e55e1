"""Vocoder training: modules, optimizers and one GAN step (discriminator, then generator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from voicefake.audio.features import MelConfig, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.train.loop import TrainTask, warmup_cosine
from voicefake.vocoder.discriminators import DiscriminatorConfig, MultiDiscriminator
from voicefake.vocoder.losses import (
    MultiResolutionMelLoss,
    SpectralLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from voicefake.vocoder.model import Vocoder, VocoderConfig

DEFAULT_LOSS_MELS = (
    MelConfig(n_fft=512, win_length=512, hop_length=128, n_mels=64),
    MelConfig(n_fft=1024, win_length=1024, hop_length=256, n_mels=80),
    MelConfig(n_fft=2048, win_length=2048, hop_length=512, n_mels=128),
)


SPECTRAL_TERMS = ("mag", "phase", "ip", "gd", "iaf", "consistency", "complex")
LOSS_TERMS = ("mel", "adv", "fm", *SPECTRAL_TERMS)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for the vocoder.

    Attributes:
        lr / betas / weight_decay: AdamW for both generator and discriminator.
        warmup_steps / min_lr_ratio / total_steps: linear warm-up then cosine decay.
        loss_weights: generator loss terms ``mel``, ``adv``, ``fm`` and, for the Vocos head
            only, the direct spectral terms ``mag``, ``phase``, ``consistency``, ``complex``
            (:class:`voicefake.vocoder.losses.SpectralLoss`); ``phase`` is the sum of the
            three phase distances, which can instead be weighted one by one as ``ip``
            (instantaneous phase), ``gd`` (group delay) and ``iaf`` (instantaneous
            frequency). A term missing or 0 is not computed. With ``adv`` and ``fm`` at 0 no discriminator runs (a fast
            reconstruction-only phase).
        grad_clip: max grad norm for each optimizer (0 disables).
        loss_mels: the multi-resolution mel loss resolutions.
        segment_samples: training crop length (a multiple of the mel hop length).
        discriminator: the discriminator sizes.
        teacher: distillation. A vocoder checkpoint (a bundled name or a directory) with the
            same mel config; when set, every loss term compares the model with the teacher's
            output for the crop's mel instead of the real audio, so the model learns a fixed
            function of the mel (well-posed, unlike the absolute phase of real speech, and
            cheap: no discriminator is needed). "" (the default) trains on the real audio.
        teacher_phase_iterations: the teacher's phase refinement
            (:func:`voicefake.vocoder.phase.refine`) when it makes the targets: distilling a
            refined teacher moves that refinement's cost from inference into training.
    """

    lr: float = 5e-4
    betas: tuple[float, float] = (0.8, 0.9)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05
    total_steps: int = 100_000
    loss_weights: dict[str, float] = field(default_factory=lambda: {"mel": 45.0, "adv": 1.0, "fm": 2.0})
    grad_clip: float = 100.0
    loss_mels: tuple[MelConfig, ...] = DEFAULT_LOSS_MELS
    segment_samples: int = 16000
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    teacher: str = ""
    teacher_phase_iterations: int = 16

    def __post_init__(self) -> None:
        unknown = set(self.loss_weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(
                f"unknown vocoder loss weight(s) {sorted(unknown)}; allowed: {', '.join(LOSS_TERMS)}"
            )
        if self.teacher_phase_iterations < 0:
            raise ValueError(f"teacher_phase_iterations must be >= 0, got {self.teacher_phase_iterations}")

    @property
    def spectral(self) -> bool:
        """Whether any direct spectral term (mag, phase, consistency) is weighted."""
        return any(self.loss_weights.get(k, 0) > 0 for k in SPECTRAL_TERMS)


def build_modules(model: VocoderConfig, mel: MelConfig, cfg: TrainConfig) -> dict[str, nn.Module]:
    """Generator, discriminators, the feature extractor and the reconstruction loss."""
    if cfg.segment_samples % mel.hop_length:
        raise ValueError(f"segment_samples {cfg.segment_samples} is not a multiple of hop {mel.hop_length}")
    modules: dict[str, nn.Module] = {
        "generator": Vocoder(model, mel),
        "discriminator": MultiDiscriminator(cfg.discriminator),
        "features": MelSpectrogram(mel),
        "mel_loss": MultiResolutionMelLoss(cfg.loss_mels),
    }
    if cfg.spectral:
        if model.architecture != "vocos":
            raise ValueError(
                "the spectral loss terms (mag, phase, consistency) need the vocos architecture's "
                f"STFT head; set them to 0 for architecture {model.architecture!r}"
            )
        modules["spectral_loss"] = SpectralLoss(model.head_n_fft, mel.hop_length)
    return modules


def load_teacher(cfg: TrainConfig, mel: MelConfig) -> Vocoder | None:
    """The frozen distillation teacher of ``cfg.teacher`` (None without one).

    It is kept out of the task's modules, so run checkpoints do not carry a copy of it.
    """
    if not cfg.teacher:
        return None
    checkpoint = Checkpoint.load(cfg.teacher)
    if checkpoint.kind != "vocoder":
        raise ValueError(f"train.teacher {cfg.teacher!r} is a {checkpoint.kind} checkpoint, not a vocoder")
    if checkpoint.mel_config != mel:
        raise ValueError(
            f"train.teacher {cfg.teacher!r} was trained on another mel config "
            f"({checkpoint.mel_config}); a student must take the teacher's mel ({mel})"
        )
    teacher = checkpoint.build()
    assert isinstance(teacher, Vocoder)
    teacher.eval().requires_grad_(False)
    return teacher


def targets(batch: torch.Tensor, mel: torch.Tensor, cfg: TrainConfig, teacher: Vocoder | None) -> torch.Tensor:
    """What the model is compared with: the real crop, or the teacher's output for its mel."""
    if teacher is None:
        return batch
    if next(teacher.parameters()).device != mel.device:
        teacher.to(mel.device)  # the training loop moves the task's modules, not the teacher
    with torch.no_grad():
        return teacher(mel, phase_iterations=cfg.teacher_phase_iterations)


def build_optimizers(modules: dict[str, nn.Module], cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """AdamW for generator and discriminator."""
    def adamw(m: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(m.parameters(), cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    return {"generator": adamw(modules["generator"]), "discriminator": adamw(modules["discriminator"])}


def lr_lambda(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    return warmup_cosine(step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)


def build_schedulers(optimizers: dict[str, torch.optim.Optimizer], cfg: TrainConfig) -> dict[str, object]:
    """One LambdaLR per optimizer."""
    fn = partial(lr_lambda, cfg=cfg)
    return {k: torch.optim.lr_scheduler.LambdaLR(o, fn) for k, o in optimizers.items()}


def _clip(module: nn.Module, value: float) -> float:
    if value <= 0:
        return float("nan")
    return float(torch.nn.utils.clip_grad_norm_(module.parameters(), value))


def train_step(
    modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
    batch: torch.Tensor, cfg: TrainConfig, teacher: Vocoder | None = None,
) -> dict[str, float]:
    """One discriminator update, then one generator update.

    Args:
        batch: (B, T) real waveforms, T a multiple of the hop length.
        teacher: with one (:func:`load_teacher`), its output replaces the real crop as the
            target of every term, the discriminator's "real" included.
    """
    weights = cfg.loss_weights
    gen, disc = modules["generator"], modules["discriminator"]
    with torch.no_grad():
        mel = modules["features"](batch)
    if cfg.spectral:
        fake, log_mag, phase = gen(mel, spectrum=True)
    else:
        fake = gen(mel, phase_iterations=0)  # the network itself: refinement is inference only
    real = targets(batch, mel, cfg, teacher)[:, : fake.shape[-1]]
    out: dict[str, float] = {}
    use_gan = weights.get("adv", 0) > 0 or weights.get("fm", 0) > 0
    if use_gan:
        real_scores, _ = disc(real)
        fake_scores, _ = disc(fake.detach())
        loss_d = discriminator_loss(real_scores, fake_scores)
        optimizers["discriminator"].zero_grad(set_to_none=True)
        loss_d.backward()
        out["grad_norm/discriminator"] = _clip(disc, cfg.grad_clip)
        optimizers["discriminator"].step()
        out["loss/disc"] = float(loss_d.detach())
    else:
        # no discriminator update in a reconstruction-only phase; stepping the optimizer with
        # no gradients is a no-op that keeps its LR schedule in step (and torch from warning)
        optimizers["discriminator"].step()
    terms: dict[str, torch.Tensor] = {"mel": modules["mel_loss"](fake, real)}
    if cfg.spectral:
        spectral = modules["spectral_loss"](log_mag, phase, fake, real)
        terms.update({k: v for k, v in spectral.items() if weights.get(k, 0) > 0})
    if use_gan:
        fake_scores, fake_feats = disc(fake)
        with torch.no_grad():
            _, real_feats = disc(real)
        terms["adv"] = generator_loss(fake_scores)
        terms["fm"] = feature_matching_loss(real_feats, fake_feats)
    total = torch.stack([weights.get(k, 0.0) * v for k, v in terms.items()]).sum()
    optimizers["generator"].zero_grad(set_to_none=True)
    total.backward()
    out["grad_norm/generator"] = _clip(gen, cfg.grad_clip)
    optimizers["generator"].step()
    out.update({f"loss/{k}": float(v.detach()) for k, v in terms.items()})
    out["loss/total"] = float(total.detach())
    out["lr"] = optimizers["generator"].param_groups[0]["lr"]
    return out


def eval_step(modules: dict[str, nn.Module], batch: torch.Tensor, cfg: TrainConfig | None = None,
              teacher: Vocoder | None = None) -> dict[str, float]:
    """Copy-synthesis distances on a fixed crop: log-mel L1 at the model's own resolution, and
    (when the spectral losses are on) the head's magnitude / phase / consistency terms.

    The phase terms track what limits a Vocos head (``benchmarks/vocoder.py`` with the
    ``true-phase`` diagnostic): the mel L1 can rise while the phase, and PESQ, improve.
    With a teacher, the spectral terms and the multi-resolution mel L1 against the teacher's
    output are added as ``eval/teacher_<term>`` (the distillation's own progress).
    """
    mel = modules["features"](batch)
    gen = modules["generator"]
    spectral = "spectral_loss" in modules
    if spectral:
        fake, log_mag, phase = gen(mel, spectrum=True)
    else:
        fake = gen(mel, phase_iterations=0)  # the network itself: refinement is inference only
    real = batch[:, : fake.shape[-1]]
    out = {
        "eval/mel_l1": float(torch.mean(torch.abs(modules["features"](fake) - mel))),
        "eval/mr_mel_l1": float(modules["mel_loss"](fake, real)),
    }
    if spectral:
        terms = modules["spectral_loss"](log_mag, phase, fake, real)
        out.update({f"eval/{k}": float(v) for k, v in terms.items()})
        if teacher is not None and cfg is not None:
            target = targets(batch, mel, cfg, teacher)[:, : fake.shape[-1]]
            terms = modules["spectral_loss"](log_mag, phase, fake, target)
            out.update({f"eval/teacher_{k}": float(v) for k, v in terms.items()})
            out["eval/teacher_mr_mel_l1"] = float(modules["mel_loss"](fake, target))
    return out


def build_task(model: VocoderConfig, mel: MelConfig, cfg: TrainConfig, metadata: dict | None = None) -> TrainTask:
    """Everything :func:`voicefake.train.loop.fit` needs to train a vocoder."""
    modules = build_modules(model, mel, cfg)
    optimizers = build_optimizers(modules, cfg)
    teacher = load_teacher(cfg, mel)
    return TrainTask(
        modules=modules,
        optimizers=optimizers,
        schedulers=build_schedulers(optimizers, cfg),
        train_step=partial(train_step, cfg=cfg, teacher=teacher),
        eval_step=partial(eval_step, cfg=cfg, teacher=teacher),
        exports={"generator": ("vocoder", mel)},
        metadata=dict(metadata or {}),
    )
