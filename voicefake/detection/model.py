"""The synthetic-speech detector: a light CNN (LCNN, max-feature-map) over log linear filterbanks.

Design (ASVspoof LFCC/LFB-LCNN baselines, Lavrentyeva et al. 2019, shrunk for CPU speed)::

    wav (B, T) -> log linear filterbank (B, N, F) -> per-band mean removed over time
      -> 4 LCNN blocks (conv + max-feature-map, 2x2 / 2x1 pooling) -> (B, C, N/16, F/4)
      -> flatten bands -> temporal conv (context) -> per-frame logit (B, F/4)
      -> utterance logit = mean of frame logits (B,)

Because the utterance logit is a mean of frame logits, a window's logit is the mean of the
frame logits inside it: the whole segment timeline of a call costs one forward pass.

Optionally (``artefact_channels > 0``; off in the bundled model) a frozen artefact branch, a
student of Whisper tiny.en's encoder on the log-mel with a linear frame probe, adds its frame
logits, averaged over each network frame, with weight ``artefact_weight``.
Logits are positive for synthetic speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from voicefake.audio.features import MEL_16K_80, LogLinearFilterbank, MelSpectrogram
from voicefake.conversion.model import ContentEncoder, ContentEncoderConfig


@dataclass(frozen=True)
class DetectorConfig:
    """Sizes of the detector.

    Attributes:
        sample_rate: input rate in Hz (8 kHz calls are upsampled before the model).
        n_fft / win_length / hop_length: STFT of the front end, in samples.
        n_filters: linear filterbank bands ``N`` (a multiple of 16).
        channels: output channels of the four LCNN blocks.
        hidden: per-frame embedding width before the logit.
        context: temporal kernel (in model frames of 4 hops) of the frame head.
        dropout: before the frame logit (training only).
        phase: add three phase-derivative planes to the log filterbank (instantaneous-
            frequency deviation, cos/sin of the group delay per band,
            :meth:`LogLinearFilterbank.phase_bands`): magnitude-only features cannot see
            how a copy-synthesis vocoder rebuilt the phase.
        head: "linear" (a frame logit per frame embedding, trained with binary cross-entropy)
            or "one_class" (OC-softmax, Zhang et al. 2021: a frame's score is the cosine between
            its embedding and a learnt direction of real speech; training pulls real frames
            inside a tight cone around it and only pushes fakes outside a wide one, so the
            model describes real speech rather than the fakes it was shown).
        oc_scale: one-class head only: frame logit = ``-oc_scale * cosine`` (> 0 leans
            synthetic, bounded by ``oc_scale``).
        freq_mask: training only: each item has a run of up to this many adjacent bands
            flattened to their mean (SpecAugment's frequency masking), so that no single band
            where one generator leaves its mark can decide alone; 0 disables.
        artefact_channels: width of the artefact branch (0: no branch). The branch is a small
            student of Whisper tiny.en's encoder on the toolkit's log-mel
            (recipes/detection/prepare_student.py) with a linear frame probe on its Whisper-like
            frames (recipes/detection/add_artefact.py); both are fitted outside the detector's
            own training and stay frozen in it.
        artefact_dilations: one residual block of the branch per entry.
        artefact_weight: the branch's frame logits, averaged to the network's frames, are added
            to the network's with this weight (chosen on leave-one-generator-out folds).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_filters: int = 128
    channels: tuple[int, int, int, int] = (8, 16, 16, 24)
    hidden: int = 32
    context: int = 5
    dropout: float = 0.2
    phase: bool = False
    head: str = "linear"
    oc_scale: float = 20.0
    freq_mask: int = 0
    artefact_channels: int = 0
    artefact_dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    artefact_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.n_filters % 16:
            raise ValueError(f"DetectorConfig.n_filters must be a multiple of 16, got {self.n_filters}")
        if len(self.channels) != 4 or min(self.channels) <= 0:
            raise ValueError(f"DetectorConfig.channels needs 4 positive widths, got {self.channels}")
        if self.context % 2 == 0:
            raise ValueError(f"DetectorConfig.context must be odd, got {self.context}")
        if not 0 <= self.freq_mask < self.n_filters:
            raise ValueError(f"DetectorConfig.freq_mask must be in [0, n_filters), got {self.freq_mask}")
        if self.artefact_channels < 0 or self.artefact_weight < 0:
            raise ValueError("DetectorConfig.artefact_channels and artefact_weight must be >= 0, got "
                             f"{self.artefact_channels} and {self.artefact_weight}")
        if self.head not in ("linear", "one_class"):
            raise ValueError(f"DetectorConfig.head must be 'linear' or 'one_class', got {self.head!r}")

    @property
    def in_channels(self) -> int:
        """Input planes of the network: the log filterbank, plus 3 phase planes if ``phase``."""
        return 4 if self.phase else 1

    @property
    def frame_hop(self) -> int:
        """Samples between the model's output frames (4 STFT hops)."""
        return 4 * self.hop_length

    @classmethod
    def tiny(cls) -> DetectorConfig:
        """A few channels, for tests."""
        return cls(n_filters=32, channels=(4, 4, 4, 4), hidden=8, context=3)


class DetectorOutput(NamedTuple):
    """logits: (B,) utterance logit (> 0 means synthetic); frame_logits: (B, F') per 4 hops."""

    logits: torch.Tensor
    frame_logits: torch.Tensor


class MaxFeatureMap(nn.Module):
    """Conv with 2C outputs, then the elementwise max of the two halves (LCNN's activation)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel, stride=stride, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        return torch.maximum(a, b)


class PairMaxPool(nn.Module):
    """Max pooling by 1 or 2 along (bands, frames), stride = kernel, partial windows kept: what
    ``nn.MaxPool2d(pool, ceil_mode=True)`` computes, with the same numbers. Without autograd
    (inference) it takes the elementwise maximum of neighbouring rows and columns instead, which is
    3-15x faster than ``max_pool2d`` on CPUs without AVX-512 (session 48); with autograd on
    (training) it calls ``max_pool2d`` itself, so training and its gradients are unchanged."""

    def __init__(self, pool: tuple[int, int]) -> None:
        super().__init__()
        if not set(pool) <= {1, 2}:
            raise ValueError(f"PairMaxPool pools by 1 or 2 along each axis, got {pool}")
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, self.pool, ceil_mode=True)
        for dim, size in zip((2, 3), self.pool, strict=True):
            if size == 2:
                if x.shape[dim] % 2:  # the last, partial window keeps its one value
                    x = F.pad(x, (0, 1) if dim == 3 else (0, 0, 0, 1), value=float("-inf"))
                pairs = x.unflatten(dim, (-1, 2))
                x = torch.maximum(pairs.select(dim + 1, 0), pairs.select(dim + 1, 1))
        return x


class LcnnBlock(nn.Module):
    """Max pooling by ``pool`` (first: the convolutions run on the smaller grid), 1x1 MFM,
    batch norm, kxk MFM."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.pool = PairMaxPool(pool) if pool != (1, 1) else nn.Identity()
        self.reduce = MaxFeatureMap(in_channels, in_channels, 1)
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = MaxFeatureMap(in_channels, out_channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(self.reduce(self.pool(x))))


class Detector(nn.Module):
    """Waveform -> utterance and per-frame "synthetic" logits."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.frontend = LogLinearFilterbank(config.n_fft, config.hop_length, config.win_length, config.n_filters)
        # the stem keeps the full 10 ms / N-band resolution for fine spectral artefacts, then
        # strides and pools to 40 ms frames: the costly convolutions run on a 16x smaller grid
        self.input_norm = nn.BatchNorm2d(config.in_channels)
        self.stem = MaxFeatureMap(config.in_channels, c[0], 5, stride=2)
        self.stem_pool = PairMaxPool((2, 2))
        self.blocks = nn.Sequential(
            LcnnBlock(c[0], c[1], 3, (1, 1)),
            LcnnBlock(c[1], c[2], 3, (2, 1)),
            LcnnBlock(c[2], c[3], 3, (2, 1)),
        )
        width = c[3] * (config.n_filters // 16)
        one_class = config.head == "one_class"
        self.head = nn.Sequential(
            nn.Conv1d(width, config.hidden, config.context, padding=config.context // 2),
            nn.GELU(),
            nn.Dropout(config.dropout),
            # one-class: a linear frame embedding, scored by its cosine with `center`
            nn.Conv1d(config.hidden, config.hidden if one_class else 1, 1),
        )
        if one_class:
            self.center = nn.Parameter(torch.randn(config.hidden) / config.hidden**0.5)
        self.artefact: ContentEncoder | None = None
        if config.artefact_channels:
            self.artefact = ContentEncoder(artefact_config(config), MEL_16K_80)
            self.artefact_mel = MelSpectrogram(MEL_16K_80)
            self.artefact_probe = nn.Linear(self.artefact.config.teacher_dim, 1)
            for module in (self.artefact, self.artefact_probe):
                module.requires_grad_(False)

    def artefact_frame_logits(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 1 + T // hop) logits of the artefact branch, one per STFT hop."""
        assert self.artefact is not None
        frames = self.artefact.head(self.artefact.features(self.artefact_mel(wav)))
        return self.artefact_probe(frames)[..., 0]

    def combine(self, out: DetectorOutput, wav: torch.Tensor) -> DetectorOutput:
        """Adds the artefact branch's frame logits (averaged over each network frame) to ``out``."""
        if self.artefact is None:
            return out
        branch = F.avg_pool1d(self.artefact_frame_logits(wav)[:, None], 4, ceil_mode=True)[:, 0]
        length = min(branch.shape[-1], out.frame_logits.shape[-1])
        frames = out.frame_logits[:, :length] + self.config.artefact_weight * branch[:, :length]
        return DetectorOutput(frames.mean(dim=-1), frames)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: (B, T) in [-1, 1]; returns (B, C, N, F): the log filterbank with each band's
        mean removed over time, then (if ``config.phase``) the four phase planes.

        Removing the per-band mean over time cancels a fixed channel response (handset,
        codec tilt), so the network looks at spectral fine structure and dynamics instead.
        """
        stft = self.frontend.stft(wav)
        spec = self.frontend.bands(stft)
        planes = (spec - spec.mean(dim=-1, keepdim=True))[:, None]
        if self.config.phase:
            planes = torch.cat([planes, self.frontend.phase_bands(wav, stft)], dim=1)
        return planes

    def score_features(self, spec: torch.Tensor) -> DetectorOutput:
        """spec: (B, C, N, F) from :meth:`features` (or (B, N, F) for a one-plane model);
        returns logits (B,), frame_logits (B, ceil(F/4))."""
        if spec.dim() == 3:
            spec = spec[:, None]
        x = self.blocks(self.stem_pool(self.stem(self.input_norm(spec))))
        x = x.flatten(1, 2)  # (B, C * N/16, F/4)
        if self.config.head == "one_class":
            cosine = F.cosine_similarity(self.head(x), self.center[None, :, None], dim=1, eps=1e-6)
            frame_logits = -self.config.oc_scale * cosine
        else:
            frame_logits = self.head(x)[:, 0]
        return DetectorOutput(frame_logits.mean(dim=-1), frame_logits)

    def forward(self, wav: torch.Tensor) -> DetectorOutput:
        """wav: (B, T) loudness-normalised 16 kHz waveform; returns :class:`DetectorOutput`."""
        if wav.dim() == 1:
            wav = wav[None]
        spec = self.features(wav)
        if self.training and self.config.freq_mask:
            spec = mask_bands(spec, self.config.freq_mask)
        return self.combine(self.score_features(spec), wav)


def artefact_config(config: DetectorConfig) -> ContentEncoderConfig:
    """The artefact branch's encoder (a content-encoder student that keeps band levels)."""
    return ContentEncoderConfig(channels=config.artefact_channels, dilations=config.artefact_dilations,
                                normalize_bands=False)


def mask_bands(spec: torch.Tensor, widest: int) -> torch.Tensor:
    """spec: (B, C, N, F) mean-removed bands; each item gets a run of 0 to ``widest`` adjacent
    bands set to 0 (their mean over time) in every plane."""
    batch, _, bands, _ = spec.shape
    width = torch.randint(0, widest + 1, (batch, 1), device=spec.device)
    start = (torch.rand(batch, 1, device=spec.device) * (bands - width + 1)).long()
    index = torch.arange(bands, device=spec.device)[None]
    keep = ~((index >= start) & (index < start + width))
    return spec * keep[:, None, :, None].to(spec.dtype)


def num_model_frames(num_samples: int, config: DetectorConfig) -> int:
    """Number of frame logits for ``num_samples`` input samples."""
    frames = 1 + num_samples // config.hop_length
    return -(-frames // 4)
