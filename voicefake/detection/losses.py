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


def one_class_loss(logits: torch.Tensor, targets: torch.Tensor, scale: float,
                   margins: tuple[float, float]) -> torch.Tensor:
    """OC-softmax (Zhang, Jiang and Duan, 2021) on logits ``-scale * cosine``.

    A real item costs ``softplus(scale * (m_real - cosine))``: its cosine with the real
    direction must exceed ``m_real`` (a tight cone). A synthetic one costs
    ``softplus(scale * (cosine - m_fake))``: it only has to fall below ``m_fake``, anywhere
    outside a wide cone, so fakes are not gathered into a class of their own.

    Args:
        logits: (N,) ``-scale * cosine`` (see :class:`~voicefake.detection.model.DetectorConfig`).
        targets: (N,) synthetic share in [0, 1] (1 synthetic, 0 real; fractions for frames
            that straddle a splice weigh both terms).
        scale: the head's ``oc_scale``.
        margins: (m_real, m_fake), with m_real > m_fake.
    """
    m_real, m_fake = margins
    targets = targets.float()
    real = F.softplus(logits + scale * m_real)
    fake = F.softplus(-logits - scale * m_fake)
    return ((1 - targets) * real + targets * fake).mean()


def pair_margin_loss(real: torch.Tensor, fake: torch.Tensor, margin: float) -> torch.Tensor:
    """Margin loss on paired logits: ``softplus(margin - (fake - real))``, averaged.

    Each fake's logit must exceed its paired real crop's by ``margin``. A pair shares everything
    but the generator (a copy-synthesis fake and the same span of its source), so only the
    generator's traces can earn this.

    Args:
        real / fake: (P,) "synthetic" logits of the pairs' real and fake crops.
    """
    return F.softplus(margin - (fake - real)).mean()
