"""Detector losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def detection_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy on utterance logits.

    Args:
        logits: (B,) "synthetic" logits.
        labels: (B,) 1 for synthetic, 0 for real.
        label_smoothing: targets move by ``label_smoothing / 2`` towards 0.5.
    """
    targets = labels.float() * (1 - label_smoothing) + 0.5 * label_smoothing
    return F.binary_cross_entropy_with_logits(logits, targets)
