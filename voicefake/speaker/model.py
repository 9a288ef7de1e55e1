"""The speaker encoder: log-mel -> L2-normalised speaker embedding.

A small ECAPA-style TDNN (Desplanques et al. 2020) without the per-utterance SE gates, so
frame features do not depend on the length of the input:

    log-mel (B, M, F) - per-band time mean (CMN: removes the fixed channel/gain colouring)
      -> stem Conv1d(M -> C, k=5, stride s)                 (B, C, F/s)
      -> residual dilated Conv1d blocks (k=3, dilations d_i)  (B, C, F/s) each
      -> concat block outputs -> Conv1d 1x1 -> P channels     (B, P, F/s)   "frame features"
      -> attentive statistics pooling (weighted mean, std)  (B, 2P)
      [+ the spectral shape: the removed per-band mean, less its band average (B, M)]
      -> BatchNorm -> Linear -> L2 normalise                  (B, D)

Long inputs are embedded by :meth:`SpeakerEncoder.embed_long`: the frame features are
computed once over the whole input, pooled in overlapping windows of ``window_frames``
mel frames, and the window embeddings are averaged and renormalised (as GE2E / Resemblyzer
average partial utterances, without recomputing the overlap).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from voicefake.audio.features import MelConfig


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    """Sizes of the speaker encoder.

    Attributes:
        channels: TDNN width ``C``.
        dilations: one residual block per entry, its dilation.
        kernel_size: block kernel (frames).
        stride: time subsampling of the stem (1 keeps the 10 ms mel rate).
        pool_channels: frame-feature width ``P`` before pooling.
        attention_dim: hidden width of the attention.
        emb_dim: embedding size ``D``.
        window_frames: mel frames per partial window for long inputs (160 = 1.6 s).
        window_hop_frames: mel frames between partial windows.
        output_relu: a ReLU before the normalisation, so embeddings are non-negative as in GE2E
            (Resemblyzer's embeddings are ReLU outputs, about 60 % of their components exactly 0:
            a student distilled from it can only match that geometry with the same output).
        center_embeddings: the model holds a ``center`` vector (D,), the mean unit embedding of
            its training crops, set after training (``recipes/speaker/center.py``; zeros until
            then); embeddings are the unit-norm difference from it. Distilled embeddings share a
            common direction that says nothing about the speaker; removing it spreads the
            voices apart (the usual mean normalisation of speaker verification).
        cohort_size: rows of a ``cohort`` buffer (cohort_size, D): one mean embedding per
            training speaker, set after training like ``center``. With a cohort, :meth:`score`
            is adaptive symmetric score normalisation (AS-norm) instead of the plain cosine.
        cohort_top: AS-norm uses each side's ``cohort_top`` closest cohort speakers.
        spectral_shape: the head also sees the input's long-term spectral shape (the per-band
            time mean that the mean normalisation removes, minus its average over bands, so
            the gain drops out). That shape carries the vocal tract's resonances, a strong cue
            on matched recordings that the mean normalisation hides from the TDNN (alone it
            gives 8.7 % EER on the clean dev trials, 42 % through phone calls); trained on
            phone-line versions of the same crops, the model learns when to trust it.
    """

    channels: int = 256
    dilations: tuple[int, ...] = (1, 2, 3)
    kernel_size: int = 3
    stride: int = 2
    pool_channels: int = 512
    attention_dim: int = 64
    emb_dim: int = 256
    window_frames: int = 160
    window_hop_frames: int = 80
    output_relu: bool = False
    center_embeddings: bool = False
    cohort_size: int = 0
    cohort_top: int = 100
    spectral_shape: bool = False

    def __post_init__(self) -> None:
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"dilations must be a non-empty tuple of ints >= 1, got {self.dilations}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.stride < 1 or self.window_frames < self.stride or self.window_hop_frames < self.stride:
            raise ValueError(f"need 1 <= stride <= window_frames, window_hop_frames: {self}")
        if self.cohort_size < 0 or self.cohort_top < 2:
            raise ValueError(f"need cohort_size >= 0 and cohort_top >= 2: {self}")

    @classmethod
    def tiny(cls) -> SpeakerEncoderConfig:
        """A few channels, one block: for tests."""
        return cls(channels=8, dilations=(1,), pool_channels=8, attention_dim=4, emb_dim=16,
                   window_frames=40, window_hop_frames=20)


class Block(nn.Module):
    """Residual dilated TDNN block: x + BN(ReLU(Conv1d(x))); (B, C, F) -> (B, C, F)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(torch.relu(self.conv(x)))


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over time, per channel.

    Args:
        channels: input width ``P``.
        attention_dim: hidden width.
    """

    def __init__(self, channels: int, attention_dim: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, attention_dim, 1), nn.Tanh(), nn.Conv1d(attention_dim, channels, 1)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, P, F) -> (B, 2P) [weighted mean, weighted std]."""
        weights = torch.softmax(self.attention(h), dim=-1)
        mean = torch.sum(weights * h, dim=-1)
        var = torch.sum(weights * h * h, dim=-1) - mean * mean
        # the variance can be a tiny negative number by cancellation; the floor keeps sqrt finite
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-5))], dim=-1)


class SpeakerEncoder(nn.Module):
    """Log-mel spectrogram -> unit-norm speaker embedding.

    Args:
        config: sizes.
        mel: the MelConfig the input log-mels are made with (its ``n_mels`` sets the input width).
    """

    takes_mel = True

    def __init__(self, config: SpeakerEncoderConfig, mel: MelConfig) -> None:
        super().__init__()
        self.config = config
        self.mel = mel
        c = config.channels
        self.stem = nn.Sequential(
            nn.Conv1d(mel.n_mels, c, 5, stride=config.stride, padding=2), nn.ReLU(), nn.BatchNorm1d(c)
        )
        self.blocks = nn.ModuleList(Block(c, config.kernel_size, d) for d in config.dilations)
        self.merge = nn.Sequential(
            nn.Conv1d(c * len(config.dilations), config.pool_channels, 1), nn.ReLU()
        )
        self.pool = AttentiveStatsPool(config.pool_channels, config.attention_dim)
        self.pool_norm = nn.BatchNorm1d(2 * config.pool_channels)
        shape_dim = mel.n_mels if config.spectral_shape else 0
        if config.spectral_shape:
            self.shape_norm = nn.BatchNorm1d(shape_dim)
        self.head = nn.Linear(2 * config.pool_channels + shape_dim, config.emb_dim)
        if config.center_embeddings:
            self.register_buffer("center", torch.zeros(config.emb_dim))
        if config.cohort_size:
            self.register_buffer("cohort", torch.zeros(config.cohort_size, config.emb_dim))

    def frames(self, mel: torch.Tensor) -> torch.Tensor:
        """Frame features: mel (B, M, F) log-mel -> (B, P, ceil(F / stride))."""
        x = self.stem(mel - mel.mean(dim=-1, keepdim=True))
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return self.merge(torch.cat(outs, dim=1))

    def shape(self, mel: torch.Tensor) -> torch.Tensor | None:
        """The input's spectral shape (B, M) (see ``spectral_shape``), or None without that option."""
        if not self.config.spectral_shape:
            return None
        mean = mel.mean(dim=-1)
        return mean - mean.mean(dim=-1, keepdim=True)

    def pool_frames(self, h: torch.Tensor, shape: torch.Tensor | None = None) -> torch.Tensor:
        """Frame features (B, P, F') [+ spectral shape (B, M)] -> (B, D) unit-norm window
        embeddings (not centred)."""
        pooled = self.pool_norm(self.pool(h))
        if self.config.spectral_shape:
            if shape is None:
                raise ValueError("this speaker encoder needs the input's spectral shape: pool_frames(h, self.shape(mel))")
            pooled = torch.cat([pooled, self.shape_norm(shape)], dim=-1)
        emb = self.head(pooled)
        return nn.functional.normalize(nn.functional.relu(emb) if self.config.output_relu else emb, dim=-1)

    def centred(self, emb: torch.Tensor, centre: bool = True) -> torch.Tensor:
        """(B, D) unit embeddings minus ``center`` (if the model has one and ``centre``), renormalised."""
        if not (centre and self.config.center_embeddings):
            return emb
        center = self.get_buffer("center")
        return nn.functional.normalize(emb - center, dim=-1)

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Verification scores of (N, D) embeddings against (M, D) embeddings -> (N, M).

        Without a cohort: the cosine. With one: AS-norm (Cumani et al. 2011; Matejka et al.
        2017), the cosine standardised by the mean and standard deviation of each side's
        cosines to its ``cohort_top`` closest cohort speakers, averaged over the two sides. A
        voice that resembles many people (a high, wide cohort score) must score higher to pass.
        """
        a, b = nn.functional.normalize(a, dim=-1), nn.functional.normalize(b, dim=-1)
        cos = a @ b.T
        if not self.config.cohort_size:
            return cos
        cohort = self.get_buffer("cohort")
        top = min(self.config.cohort_top, len(cohort))

        def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            near = (x @ cohort.T).topk(top, dim=-1).values
            return near.mean(dim=-1), near.std(dim=-1, correction=0).clamp_min(1e-4)

        (mean_a, std_a), (mean_b, std_b) = stats(a), stats(b)
        return 0.5 * ((cos - mean_a[:, None]) / std_a[:, None] + (cos - mean_b[None]) / std_b[None])

    def raw_embed(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, M, F) log-mel, F >= 1 -> (B, D) unit-norm embeddings, one window each, not centred."""
        return self.pool_frames(self.frames(mel), self.shape(mel))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, M, F) log-mel, F >= 1 -> (B, D) unit-norm embeddings (one per input)."""
        return self.centred(self.raw_embed(mel))

    def embed_long(self, mel: torch.Tensor, centre: bool = True) -> torch.Tensor:
        """Mean of overlapping partial-window embeddings, renormalised.

        Inputs up to ``window_frames`` long are pooled as one window; longer ones in windows of
        ``window_frames`` every ``window_hop_frames`` (the last window is aligned to the end).

        Args:
            mel: (B, M, F) log-mel, F >= 1.
            centre: subtract the model's embedding centre (if it has one). False gives the raw
                embedding, which the voice-conversion decoder is conditioned on.

        Returns:
            (B, D) unit-norm embeddings.
        """
        h, shape = self.frames(mel), self.shape(mel)
        stride = self.config.stride
        width = self.config.window_frames // stride
        if h.shape[-1] <= width:
            return self.centred(self.pool_frames(h, shape), centre)
        hop = self.config.window_hop_frames // stride
        starts = list(range(0, h.shape[-1] - width + 1, hop))
        if starts[-1] != h.shape[-1] - width:
            starts.append(h.shape[-1] - width)
        windows = torch.stack([h[..., s : s + width] for s in starts], dim=1)  # (B, W, P, width)
        # every window of an input shares the whole input's spectral shape (a steadier estimate)
        shapes = None if shape is None else shape.repeat_interleave(len(starts), dim=0)
        emb = self.pool_frames(windows.flatten(0, 1), shapes).view(h.shape[0], len(starts), -1)
        return self.centred(nn.functional.normalize(emb.mean(dim=1), dim=-1), centre)
