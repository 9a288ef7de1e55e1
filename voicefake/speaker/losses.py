"""Speaker-encoder losses: distillation to a teacher and additive angular margin softmax."""

from __future__ import annotations

import math

import torch
from torch import nn


def distill_loss(emb: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance between student (B, D) and teacher (B, D) embeddings; scalar in [0, 2]."""
    return (1 - nn.functional.cosine_similarity(emb, teacher, dim=-1)).mean()


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax (ArcFace, Deng et al. 2019) over training speakers.

    Args:
        emb_dim: embedding size ``D``.
        num_speakers: number of classes.
        margin: angular margin in radians added to the target angle.
        scale: logit scale ``s``.
    """

    def __init__(self, emb_dim: int, num_speakers: int, margin: float = 0.2, scale: float = 30.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_speakers, emb_dim) * 0.01)
        self.margin = margin
        self.scale = scale

    def forward(self, emb: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """emb: (B, D) unit-norm, speaker: (B,) class ids -> scalar cross-entropy."""
        cosine = nn.functional.linear(emb, nn.functional.normalize(self.weight, dim=-1))
        # clamp keeps acos differentiable (its gradient is infinite at +-1)
        theta = torch.acos(cosine.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(torch.clamp(theta + self.margin, max=math.pi))
        onehot = nn.functional.one_hot(speaker, cosine.shape[-1]).bool()
        logits = self.scale * torch.where(onehot, target, cosine)
        return nn.functional.cross_entropy(logits, speaker)
