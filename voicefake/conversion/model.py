"""The content encoder: log-mel -> speaker-robust content features, 100 frames per second.

It is distilled from Whisper tiny.en's encoder (see ``recipes/conversion``): the student sees
speaker- and channel-perturbed mels (vocal-tract warping, phone line, gain) and learns to
predict what the teacher says about the clean audio, so its features keep the words and lose
most of the voice. ``forward`` returns the unit-norm ``content`` features used for matching;
``head`` maps them to the teacher's space (training only); with ``phones`` set, a linear CTC
head reads phones from the same unit-norm features, so they must keep the phonetic detail the
decoder needs to say the words again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F

from voicefake.audio.features import MelConfig
from voicefake.vocoder.discriminators import conv_stack

if TYPE_CHECKING:
    import numpy as np

    from voicefake.checkpoint import Checkpoint

CONTENT_INPUTS = ("encoder", "cepstrum")
PITCH_CENTRE = math.log(150.0)
"""The log-F0 (natural log of Hz) that a ``pitch_level`` decoder's absolute pitch input is centred on."""


@dataclass(frozen=True)
class ContentEncoderConfig:
    """Sizes of the content encoder.

    Attributes:
        channels: width of the residual conv stack.
        kernel_size: temporal kernel of each block.
        dilations: one residual block per entry (receptive field grows with the sum).
        content_dim: size of the content features used for matching.
        teacher_dim: size of the distillation target (Whisper tiny: 384).
        dropout: dropout inside each residual block (training only; against overfitting).
        phones: size of the CTC phone head on the content features (phone inventory + the
            blank; training only, see ``TrainConfig.ctc_weight``); 0 = no head.
        normalize_bands: normalise each mel band's mean and variance per utterance (the content
            encoder's channel invariance); False keeps the levels and the band dynamics (the
            detector's artefact encoder, recipes/detection/prepare_student.py).
    """

    channels: int = 256
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    content_dim: int = 192
    teacher_dim: int = 384
    dropout: float = 0.0
    phones: int = 0
    normalize_bands: bool = True


class Block(nn.Module):
    """Pre-norm dilated conv residual block."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.dropout(F.gelu(self.conv(self.norm(x)))))


class ContentEncoder(nn.Module):
    """(B, M, F) log-mel -> (B, F, content_dim) unit-norm content features."""

    takes_mel = True

    def __init__(self, config: ContentEncoderConfig, mel: MelConfig) -> None:
        super().__init__()
        self.config, self.mel = config, mel
        self.stem = nn.Conv1d(mel.n_mels, config.channels, 5, padding=2)
        self.blocks = nn.Sequential(*[Block(config.channels, config.kernel_size, d, config.dropout)
                                      for d in config.dilations])
        self.out = nn.Conv1d(config.channels, config.content_dim, 1)
        self.head = nn.Linear(config.content_dim, config.teacher_dim)
        self.phone_head = nn.Linear(config.content_dim, config.phones) if config.phones else None

    @staticmethod
    def normalize(mel: torch.Tensor) -> torch.Tensor:
        """Per-utterance mean/variance normalisation of each mel band (removes channel tilt)."""
        mean = mel.mean(dim=-1, keepdim=True)
        std = mel.std(dim=-1, keepdim=True) if mel.shape[-1] > 1 else torch.ones_like(mean)
        return (mel - mean) / (std + 1e-3)

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, M, F) -> (B, F, content_dim) before normalisation."""
        x = self.blocks(self.stem(self.normalize(mel) if self.config.normalize_bands else mel))
        return self.out(x).transpose(1, 2)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(mel), dim=-1)

    def phone_logits(self, content: torch.Tensor) -> torch.Tensor:
        """(B, F, content_dim) unit-norm content -> (B, F, phones) CTC logits (index 0: blank)."""
        if self.phone_head is None:
            raise ValueError("this content encoder has no phone head (model.phones = 0)")
        # unit-norm frames scaled to unit-variance components, so the logits can grow quickly
        return self.phone_head(content * self.config.content_dim ** 0.5)


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes of the speaker-conditioned decoder (content + pitch + speaker -> log-mel).

    Attributes:
        content_dim: input content size (the content encoder's ``content_dim``).
        speaker_dim: speaker embedding size (the speaker encoder's ``emb_dim``).
        channels / kernel_size / dilations: the residual conv stack.
        bottleneck: content channels after the input projection; with ``downsample`` this
            narrow, temporally coarse code is the AutoVC-style squeeze that keeps the voice
            out of the content path.
        downsample: content frames are averaged in groups of this many (then repeated).
        content_input: what the content path reads. ``"encoder"``: the content encoder's
            features (``content_dim`` of them). ``"cepstrum"``: the source's own log-mel as
            cepstral coefficients 1..``content_dim``, each normalised over the utterance
            (:func:`cepstral_content`; no content encoder, nothing learnt before the squeeze).
        reference_heads: heads of the reference attention (:class:`ReferenceAttention`): every
            frame also reads the target's own reference frames that sound like it. 0 = none
            (the decoder knows the voice from its embedding alone; every decoder before
            session 33). Needs ``content_input: cepstrum``.
        reference_dim: size of the attention's queries and keys (all heads together).
        pitch_level: the decoder also reads the absolute pitch it must speak at: the relative
            contour plus the target's voiced median log-F0 (``level``; the reference's median at
            inference, the crop's own, or the other crop's for a cross conversion, in
            training), centred on :data:`PITCH_CENTRE`, as a third pitch channel. False: the
            absolute pitch comes from the speaker embedding alone, which for a voice it never
            saw lands up to several semitones off (every decoder before session 37). A row
            without a level (0: unknown, e.g. an embedding-only profile) reads zeros there.
        narrowband_offset: the decoder carries a (speaker_dim,) shift (the buffer
            ``narrowband_offset``) that :meth:`ConversionDecoder.voice_embedding` adds to the
            speaker embedding of a narrowband reference (a call, an 8 kHz recording) before it
            conditions the decoder. The speaker encoder hears a voice through a phone line a little
            off its clean embedding (cosine 0.93 on average), and decoders learn their voices from
            clean embeddings; the shift is the mean clean-minus-phone-line difference over
            speakers it was estimated on (``recipes/conversion/narrowband_offset.py``; since session
            42). False: no shift (every decoder before).
        speaker_contrast: how far a reference's embedding is pushed away from the speaker
            encoder's centre (its average voice) before it conditions the decoder, by default:
            ``normalize(e + c (e - centre))`` (:func:`contrast_embedding`;
            a caricature). Decoders speak their voices a little too close to the average voice;
            the default is the value its figures were measured at (``conversion.inference``,
            ``recipes/conversion/speaker_contrast.py``; since session 43). 0: none (every decoder
            before). Inference only; ``convert(contrast=...)`` overrides it.
    """

    content_dim: int = 192
    speaker_dim: int = 256
    channels: int = 256
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 1, 2, 4)
    bottleneck: int = 32
    downsample: int = 2
    content_input: str = "encoder"
    reference_heads: int = 0
    reference_dim: int = 64
    pitch_level: bool = False
    narrowband_offset: bool = False
    speaker_contrast: float = 0.0

    def __post_init__(self) -> None:
        if not self.speaker_contrast >= 0.0:
            raise ValueError(f"speaker_contrast must be >= 0, got {self.speaker_contrast}")
        if self.content_input not in CONTENT_INPUTS:
            raise ValueError(f"content_input must be one of {CONTENT_INPUTS}, got {self.content_input!r}")
        if self.reference_heads < 0:
            raise ValueError(f"reference_heads must be >= 0, got {self.reference_heads}")
        if self.reference_heads and self.content_input != "cepstrum":
            raise ValueError("reference attention (reference_heads > 0) needs content_input: cepstrum")
        if self.reference_heads and self.reference_dim % self.reference_heads:
            raise ValueError(f"reference_dim ({self.reference_dim}) must be a multiple of reference_heads "
                             f"({self.reference_heads})")


def cepstral_content(mel: torch.Tensor, coefficients: int) -> torch.Tensor:
    """(B, M, F) log-mel -> (B, F, coefficients) cepstra 1..n, mean/variance normalised over time.

    A low-order cepstrum is the spectral envelope without the harmonics' fine structure (the
    pitch) or the overall level (c0); removing each coefficient's utterance mean takes away the
    long-term envelope, which is the voice's and the channel's average timbre. What is left is
    how the envelope moves: the sounds, which is what the decoder has to say again. A single
    frame has no statistics over time and is returned as it is. (The kNN refinement's
    ``inference.spectral_keys`` are these cepstra too.)
    """
    if not 1 <= coefficients < mel.shape[-2]:
        raise ValueError(f"cepstral coefficients must be in [1, {mel.shape[-2] - 1}], got {coefficients}")
    dct = torchaudio.functional.create_dct(coefficients + 1, mel.shape[-2], "ortho").to(mel)
    ceps = (mel.transpose(1, 2) @ dct)[..., 1:]
    if ceps.shape[1] < 2:
        return ceps
    return (ceps - ceps.mean(dim=1, keepdim=True)) / (ceps.std(dim=1, keepdim=True) + 1e-3)


@dataclass(frozen=True)
class ReferenceMemory:
    """What :class:`ReferenceAttention` reads from a reference, computed once: keys (B, heads, R,
    dim / heads) and values (B, heads, R, channels / heads). Exactly what the reference tensor
    itself would give; repeated decodes of one reference (the identity steps) reuse it."""

    keys: torch.Tensor
    values: torch.Tensor


class ReferenceAttention(nn.Module):
    """Every source frame reads the target's reference frames that say a similar sound.

    Queries come from the source's content, keys from the reference's content in the same space
    (normalised cepstra, :func:`cepstral_content`, with a few frames of context each), values
    from the reference's log-mel: what this voice sounds like on that sound. It is kNN-VC's
    matching (docs/benchmarks/cloning.md: matching alone gives a close voice but loses the
    words) made soft and learnt, and added to the decoder's input rather than replacing its
    output, so the words still come from the source. In training the reference is another
    utterance of the crop's speaker, so copying it cannot reconstruct the crop: only the voice
    is worth taking.

    Initialisation: the output projection starts at zero, so a decoder trained without the
    attention starts unchanged. Queries and keys start as one and the same random projection
    (which keeps the cepstra's similarities) times ``sharpness`` (:data:`START_SHARPNESS`), so
    the first reads are already a soft kNN match over about 8 frames, not a near-uniform
    average: session 33's first run, with unrelated random queries and keys behind a zero
    gate, learnt nothing from the reference in 250 steps.
    """

    START_SHARPNESS = 6.0
    """About 8 reference frames share a read at the start (measured on the dev crops: 4.7 at
    8, 18 at 4)."""

    def __init__(self, content_dim: int, n_mels: int, channels: int, heads: int, dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Conv1d(content_dim, dim, 5, padding=2)
        self.key = nn.Conv1d(content_dim, dim, 5, padding=2)
        self.value = nn.Conv1d(n_mels, channels, 1)
        self.out = nn.Conv1d(channels, channels, 1)
        for param in self.out.parameters():
            nn.init.zeros_(param)
        nn.init.normal_(self.query.weight, std=(content_dim * 5) ** -0.5)
        for conv in (self.query, self.key):
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.key.load_state_dict(self.query.state_dict())
        self.sharpness = nn.Parameter(torch.tensor(math.log(self.START_SHARPNESS)))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, heads, T, C / heads)."""
        return x.unflatten(1, (self.heads, -1)).transpose(2, 3)

    def memory(self, reference: torch.Tensor, reference_content: torch.Tensor) -> ReferenceMemory:
        """(B, M, R) reference log-mel and (B, R, D) its content -> the keys and values read."""
        return ReferenceMemory(self._split(self.key(reference_content.transpose(1, 2))),
                               self._split(self.value(reference)))

    def forward(self, content: torch.Tensor, memory: ReferenceMemory,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, D) source content, the reference's :meth:`memory` [, (B, R) True = may be
        read] -> (B, C, F)."""
        q = self._split(self.query(content.transpose(1, 2)) * self.sharpness.exp())
        read = F.scaled_dot_product_attention(q, memory.keys, memory.values,
                                              attn_mask=None if mask is None else mask[:, None, None, :])
        return self.out(read.transpose(2, 3).flatten(1, 2))


def contrast_embedding(embedding: torch.Tensor, centre: torch.Tensor, contrast: float) -> torch.Tensor:
    """(..., D) unit-norm speaker embedding -> the same pushed ``contrast`` times its own distance
    away from ``centre`` (the speaker encoder's average voice, in the same raw space), renormalised:
    ``normalize(e + contrast (e - centre))``. ``contrast=0`` returns ``embedding`` itself.

    A caricature: what sets the voice apart from the average voice, made larger. Session 43
    (docs/benchmarks/cloning.md; 80 conversions into 10 unseen voices, 30 s references): at 1, with
    blend 0.1, Resemblyzer similarity 0.748 -> 0.751 (60 % of pairs higher) and the independent MFCC
    judge 0.436 -> 0.476 (80 %), WER 14.2 -> 14.9 %, DNSMOS 2.683 -> 2.581, against no contrast at
    blend 0.15.
    """
    if not contrast >= 0.0:
        raise ValueError(f"contrast must be >= 0, got {contrast}")
    if contrast == 0.0:
        return embedding
    return F.normalize(embedding + contrast * (embedding - centre.to(embedding)), dim=-1)


class ConversionDecoder(nn.Module):
    """(B, F, content_dim) content, (B, F) relative log-F0, (B, speaker_dim) voice -> (B, M, F) log-mel.

    The pitch input is the log-F0 contour minus its voiced median (intonation only; 0 where
    unvoiced) plus a voiced flag; the absolute pitch comes from the speaker embedding, or, for a
    decoder with ``pitch_level``, from the ``level`` it is given (see :class:`DecoderConfig`). A decoder
    with ``reference_heads`` also reads the target's reference log-mel (B, M, R) through
    :class:`ReferenceAttention`.
    """

    takes_mel = True

    def __init__(self, config: DecoderConfig, mel: MelConfig) -> None:
        super().__init__()
        self.config, self.mel = config, mel
        self.squeeze = nn.Linear(config.content_dim, config.bottleneck)
        self.content_in = nn.Conv1d(config.bottleneck + 2 + int(config.pitch_level), config.channels, 3, padding=1)
        self.speaker_in = nn.Linear(config.speaker_dim, config.channels)
        self.blocks = nn.ModuleList([Block(config.channels, config.kernel_size, d) for d in config.dilations])
        self.speaker_gain = nn.ModuleList([nn.Linear(config.speaker_dim, config.channels) for _ in config.dilations])
        self.out = nn.Conv1d(config.channels, mel.n_mels, 5, padding=2)
        self.reference = (ReferenceAttention(config.content_dim, mel.n_mels, config.channels, config.reference_heads,
                                             config.reference_dim) if config.reference_heads else None)
        self.narrowband_offset: torch.Tensor | None
        if config.narrowband_offset:  # set by recipes/conversion/narrowband_offset.py, never trained
            self.register_buffer("narrowband_offset", torch.zeros(config.speaker_dim))
        else:
            self.narrowband_offset = None

    def voice_embedding(self, embedding: torch.Tensor, narrowband: bool, contrast: float = 0.0,
                        centre: torch.Tensor | None = None) -> torch.Tensor:
        """(..., speaker_dim) unit-norm speaker embedding of a reference -> the one to condition on:
        first pushed ``contrast`` away from the speaker encoder's ``centre`` (:func:`contrast_embedding`;
        a contrast > 0 needs the centre); then, for a narrowband reference (``narrowband``) and a
        decoder with ``narrowband_offset``, plus that shift, renormalised. With neither, the
        embedding as it is."""
        if contrast:
            if centre is None:
                raise ValueError("a speaker contrast > 0 needs the speaker encoder's centre")
            embedding = contrast_embedding(embedding, centre, contrast)
        if not narrowband or self.narrowband_offset is None or not bool(self.narrowband_offset.any()):
            return embedding
        return F.normalize(embedding + self.narrowband_offset.to(embedding), dim=-1)

    def encode(self, mel: torch.Tensor, content: nn.Module | None) -> torch.Tensor:
        """(B, M, F) source log-mel -> (B, F, content_dim) content input, as ``content_input`` says.

        ``content`` is the content encoder; a ``"cepstrum"`` decoder does not need one (None).
        """
        if self.config.content_input == "cepstrum":
            return cepstral_content(mel, self.config.content_dim)
        if content is None:
            raise ValueError("this decoder reads a content encoder's features; none was given")
        return content(mel)

    def reference_memory(self, reference: torch.Tensor) -> ReferenceMemory:
        """(B, M, R) the target's reference log-mel -> what the reference attention reads from it
        (pass it as ``reference`` to decode many times from one reference)."""
        if self.reference is None:
            raise ValueError("this decoder has no reference attention")
        return self.reference.memory(reference, cepstral_content(reference, self.config.content_dim))

    def forward(self, content: torch.Tensor, rel_log_f0: torch.Tensor, voiced: torch.Tensor,
                speaker: torch.Tensor, reference: torch.Tensor | ReferenceMemory | None = None,
                reference_mask: torch.Tensor | None = None, level: torch.Tensor | None = None) -> torch.Tensor:
        """``reference``: (B, M, R) the target's reference log-mel, or its
        :meth:`reference_memory`, needed by (and only read by) a decoder with reference
        attention; ``reference_mask``: (B, R), False = a frame not to read (padding, or the crop
        itself when fine-tuning on one voice's own audio); ``level``: (B,) the voiced median
        log-F0 to speak at (natural log of Hz; 0 or None = unknown), read only by a decoder with
        ``pitch_level``."""
        if self.reference is not None and reference is None:
            raise ValueError("this decoder reads the target's reference frames; none were given")
        frames, step = content.shape[1], self.config.downsample
        code = torch.tanh(self.squeeze(content)).transpose(1, 2)  # (B, C, F)
        if step > 1:
            pad = (-frames) % step
            code = F.avg_pool1d(F.pad(code, (0, pad), mode="replicate"), step)
            code = code.repeat_interleave(step, dim=-1)[..., :frames]
        channels = [rel_log_f0 * voiced, voiced]
        if self.config.pitch_level:
            channels.append(absolute_pitch(rel_log_f0, voiced, level))
        pitch = torch.stack(channels, dim=1)
        x = self.content_in(torch.cat([code, pitch], dim=1)) + self.speaker_in(speaker)[..., None]
        if self.reference is not None:
            assert reference is not None
            memory = reference if isinstance(reference, ReferenceMemory) else self.reference_memory(reference)
            x = x + self.reference(content, memory, reference_mask)
        for block, gain in zip(self.blocks, self.speaker_gain, strict=True):
            x = block(x) * (1 + torch.tanh(gain(speaker)))[..., None]
        return self.out(x)


def with_narrowband_offset(checkpoint: Checkpoint, offset: np.ndarray | torch.Tensor,
                           metadata: dict[str, Any]) -> Checkpoint:
    """A copy of a conversion :class:`voicefake.checkpoint.Checkpoint` whose decoder adds ``offset``
    ((speaker_dim,) array or tensor) to narrowband references' embedding
    (:meth:`ConversionDecoder.voice_embedding`); its weights are unchanged, a decoder that had an
    offset gets the new one, and ``metadata`` is merged into its own. A zero offset converts exactly
    as the decoder without one. ``recipes/conversion/narrowband_offset.py`` estimates the offset."""
    from voicefake.checkpoint import Checkpoint

    if checkpoint.kind != "conversion":
        raise ValueError(f"{checkpoint.source or 'the checkpoint'} is a {checkpoint.kind!r} checkpoint; "
                         "give a conversion decoder")
    model = dict(checkpoint.model, narrowband_offset=True)
    shift = torch.as_tensor(offset, dtype=torch.float32).flatten()
    if len(shift) != model.get("speaker_dim", DecoderConfig.speaker_dim):
        raise ValueError(f"a {len(shift)}-d offset for a decoder of {model.get('speaker_dim')}-d speakers")
    out = Checkpoint(kind="conversion", model=model, mel=checkpoint.mel, metadata={**checkpoint.metadata, **metadata},
                     state_dict={**checkpoint.state_dict, "narrowband_offset": shift})
    out.build()  # loads strictly: the offset fits the decoder
    return out


def absolute_pitch(rel_log_f0: torch.Tensor, voiced: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
    """(B, F) relative contour and voiced flag, (B,) level -> (B, F) ``rel + level - PITCH_CENTRE``
    where voiced, 0 elsewhere and in every row whose level is unknown (<= 0, or no ``level``)."""
    if level is None:
        return torch.zeros_like(rel_log_f0)
    known = (level > 0).to(rel_log_f0.dtype)[:, None]
    return (rel_log_f0 + (level - PITCH_CENTRE)[:, None]) * voiced * known


class MelDiscriminator(nn.Module):
    """(B, M, F) log-mel crops -> (patch scores (B, N), feature maps): strided 2-D convolutions
    over (band, frame), for the decoder's adversarial training (``train.adversarial_loss``).

    A decoder trained on mel L1 alone predicts an average: its mels lose the harmonics' fine
    structure and the sharp onsets, and with them much of the voice (session 35: liftering a real
    mel to its first 30 cepstra costs as much speaker similarity as the decoder does). A judge of
    local texture asks for it back. Only training uses it; it is never exported.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 64)) -> None:
        super().__init__()
        if not channels:
            raise ValueError("MelDiscriminator needs at least one conv layer")
        norm = nn.utils.parametrizations.weight_norm
        sizes = (1, *channels)
        self.convs = nn.ModuleList(norm(nn.Conv2d(a, b, (5, 5), stride=(2, 2), padding=(2, 2)))
                                   for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.post = norm(nn.Conv2d(sizes[-1], 1, (3, 3), padding=(1, 1)))

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return conv_stack(self.convs, self.post, mel[:, None])


class PitchJudge(nn.Module):
    """(B, M, F) log-mel -> (B, F) log-F0 minus :data:`PITCH_CENTRE`, a differentiable pitch
    reading for the decoder's training (``train.pitch_loss``): 1-D convolutions over frames,
    reading all bands (the harmonics' spacing in the low bands). Trained alongside the decoder
    on the real crops' own tracked pitch, voiced frames only; the decoder's outputs are then
    judged by it. Only training uses it; it is never exported.
    """

    updates: torch.Tensor

    def __init__(self, n_mels: int = 80, channels: int = 128, layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("PitchJudge needs at least one conv layer")
        sizes = (n_mels, *([channels] * layers))
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 5, padding=2) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.out = nn.Conv1d(channels, 1, 1)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        """How many training steps the judge has taken (saved with the trainer state, so a resumed
        run knows whether the judge has warmed up)."""

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = (mel + 5.0) / 3.0  # log-mels of speech are about -11..2
        for conv in self.convs:
            x = F.gelu(conv(x))
        return self.out(x)[:, 0]


def with_speaker_contrast(checkpoint: Checkpoint, contrast: float, metadata: dict[str, Any]) -> Checkpoint:
    """A copy of a conversion :class:`voicefake.checkpoint.Checkpoint` whose default
    ``speaker_contrast`` (:class:`DecoderConfig`) is ``contrast``; its weights (and any narrowband
    offset) are unchanged, and ``metadata`` is merged into its own. ``contrast=0`` converts exactly
    as the decoder without one. ``recipes/conversion/speaker_contrast.py`` writes it."""
    from voicefake.checkpoint import Checkpoint

    if checkpoint.kind != "conversion":
        raise ValueError(f"{checkpoint.source or 'the checkpoint'} is a {checkpoint.kind!r} checkpoint; "
                         "give a conversion decoder")
    out = Checkpoint(kind="conversion", model=dict(checkpoint.model, speaker_contrast=float(contrast)),
                     mel=checkpoint.mel, metadata={**checkpoint.metadata, **metadata},
                     state_dict=dict(checkpoint.state_dict))
    out.build()  # the config is checked (a negative contrast is refused) and the weights load strictly
    return out
