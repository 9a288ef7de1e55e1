"""Decoder training: reconstruct a clean log-mel from its content, intonation and speaker.

A batch is a dict:

* ``mel``: (B, M, F) clean log-mel crop (the target);
* ``source``: (B, M, F) the same crop, clean or through a phone line (the content's input);
* ``log_f0``: (B, F) log-F0 of the crop (0 = unvoiced);
* ``speaker``: (B, S) the speaker's embedding (mean over its utterances);
* ``bins`` (optional): (B,) how many of the lowest mel bands carry signal (fewer for audio
  recorded at 8 kHz: the loss skips the empty bands above, see ``audio.features.band_bins``);
* ``reference`` / ``reference_mask`` (a decoder with reference attention): (B, M, R) the
  speaker's other speech, and (B, R) which of its frames may be read (default all).

The frozen content encoder sees ``source`` with a random vocal-tract warp and level shift, so
what it passes on describes the words, not the voice; the decoder must take the voice from
``speaker``. The loss is mel L1, plus, when ``train.speaker_loss`` / ``train.cycle_loss`` ask
for them, two terms on cross conversions into another training voice (:func:`cross_losses`;
the speaker term is computed and logged whenever either is on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.utils.data import Dataset

from voicefake.audio.features import MelConfig, MelReanalysis
from voicefake.conversion.model import (
    PITCH_CENTRE,
    ContentEncoder,
    ConversionDecoder,
    DecoderConfig,
    MelDiscriminator,
    PitchJudge,
)
from voicefake.conversion.training import TrainConfig as _EncoderTrainConfig
from voicefake.conversion.training import augment, lr_lambda
from voicefake.speaker.model import SpeakerEncoder
from voicefake.train.loop import TrainTask
from voicefake.vocoder.losses import discriminator_loss, feature_matching_loss, generator_loss


@dataclass(frozen=True)
class TrainConfig(_EncoderTrainConfig):
    """The content encoder's optimisation and augmentation settings, and:

    Attributes:
        speaker_dropout: share of the crops whose speaker embedding is replaced by zeros, so
            that a decoder with reference attention must take the voice from the reference
            frames alone (0 = never; a decoder without reference attention has nowhere else
            to take it from, so it is an error there).
        speaker_loss: weight of a speaker-consistency term on *cross* conversions: each crop is
            also decoded with the next crop's voice (a different speaker; the batch rolled by
            one), and the frozen speaker encoder must hear that voice in the output (1 - cosine
            of the centred embeddings). Mel L1 alone only ever asks for a voice the content
            already belongs to, never for a change of voice, which is what cloning does.
        cycle_loss: weight of a cycle term on the same cross conversions: the converted crop,
            decoded back with its own voice, must give the original mel (L1), so the words
            survive the change of voice. Both need the speaker encoder (:func:`build_task`).
        cross_mix: share of the cross conversions whose voice is not a training speaker's but a
            blend of two (the next crop's and the one after, mixed with a uniform random weight
            and renormalised), so the terms also ask for voices between the few training
            speakers, as unseen targets are (0 = never; needs a decoder without reference
            attention, since a blend has no reference frames).
        adversarial_loss: weight of a least-squares adversarial term: a :class:`MelDiscriminator`,
            trained alongside, judges the decoder's reconstructions against the real crops, so the
            decoder keeps the mel's fine structure (harmonics, onsets) that mel L1 averages away
            (0 = off: no discriminator).
        feature_loss: weight of feature matching on that discriminator's maps (reconstruction
            against its real crop; needs ``adversarial_loss`` > 0, which creates the discriminator).
        adversarial_cross: weight of the same adversarial term on the cross conversions, which the
            discriminator then also learns to reject: the decoder must keep the fine structure in
            the voices it is asked to change into, the output cloning uses, not only in
            reconstructions (0 = reconstructions only; needs ``adversarial_loss`` > 0 and the
            cross conversions, ``speaker_loss`` or ``cycle_loss`` > 0). No feature matching there:
            a conversion has no real crop to match.
        level_dropout: for a decoder with ``model.pitch_level``, the share of the crops decoded
            without their pitch level (read as unknown), so that the decoder still speaks at a
            sensible pitch for a voice known only by its embedding (0 = always given).
        pitch_loss: weight of a pitch term: a :class:`PitchJudge`, trained alongside on the real
            crops' tracked pitch, reads the decoder's reconstructions (and, for a ``pitch_level``
            decoder, its cross conversions, asked for the other crop's level plus
            ``level_shift``), and their log-F0 must be the pitch they were asked for (L1 over
            the source's voiced frames; 0 = off: no judge).
        pitch_warmup: judge steps before the pitch term starts (an untrained judge's reading
            means nothing).
        level_shift: for a ``pitch_level`` decoder with ``pitch_loss``, the cross conversions are
            asked for the other crop's level moved by a uniform random amount within this many
            semitones either way, so that the level, not the embedding, must set the pitch: in
            training a speaker's embedding already tells its pitch, and without this the decoder
            never reads the level (session 37).
        content_loss: weight of a content-consistency term on the cross conversions: a frozen
            content encoder (``data.content``, a student of Whisper tiny.en's encoder trained to
            ignore speakers and phone lines) must hear the source crop's content in its
            conversion (1 - cosine of the unit-norm content frames, mean over frames), so that a
            change of voice does not cost words; the cycle term only asks that the words can be
            decoded back, not that they are heard in the other voice. Needs the cross
            conversions (``speaker_loss`` or ``cycle_loss`` > 0). The benchmark's word judge is
            Whisper tiny.en itself, so a gain it measures is partly in that judge's ears.
    """

    speaker_dropout: float = 0.0
    speaker_loss: float = 0.0
    cycle_loss: float = 0.0
    cross_mix: float = 0.0
    adversarial_loss: float = 0.0
    feature_loss: float = 0.0
    adversarial_cross: float = 0.0
    level_dropout: float = 0.0
    pitch_loss: float = 0.0
    pitch_warmup: int = 200
    level_shift: float = 0.0
    content_loss: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.speaker_dropout < 1.0:
            raise ValueError(f"train.speaker_dropout must be in [0, 1), got {self.speaker_dropout}")
        if self.speaker_loss < 0 or self.cycle_loss < 0:
            raise ValueError(f"train.speaker_loss and train.cycle_loss must be >= 0, got {self.speaker_loss} "
                             f"and {self.cycle_loss}")
        if not 0.0 <= self.cross_mix <= 1.0:
            raise ValueError(f"train.cross_mix must be in [0, 1], got {self.cross_mix}")
        if self.adversarial_loss < 0 or self.feature_loss < 0:
            raise ValueError(f"train.adversarial_loss and train.feature_loss must be >= 0, got "
                             f"{self.adversarial_loss} and {self.feature_loss}")
        if self.feature_loss > 0 and self.adversarial_loss == 0:
            raise ValueError("train.feature_loss needs train.adversarial_loss > 0 (which creates the discriminator)")
        if not 0.0 <= self.level_dropout < 1.0:
            raise ValueError(f"train.level_dropout must be in [0, 1), got {self.level_dropout}")
        if self.pitch_loss < 0 or self.level_shift < 0 or self.pitch_warmup < 0:
            raise ValueError(f"train.pitch_loss, train.level_shift and train.pitch_warmup must be >= 0, got "
                             f"{self.pitch_loss}, {self.level_shift} and {self.pitch_warmup}")
        if self.level_shift > 0 and (self.pitch_loss == 0 or not self.converts):
            raise ValueError("train.level_shift needs train.pitch_loss > 0 (the pitch judge) and train.speaker_loss "
                             "or train.cycle_loss > 0 (the cross conversions it shifts)")
        if self.content_loss < 0:
            raise ValueError(f"train.content_loss must be >= 0, got {self.content_loss}")
        if self.content_loss > 0 and not self.converts:
            raise ValueError("train.content_loss needs train.speaker_loss or train.cycle_loss > 0 (the cross "
                             "conversions it listens to)")
        if self.adversarial_cross < 0:
            raise ValueError(f"train.adversarial_cross must be >= 0, got {self.adversarial_cross}")
        if self.adversarial_cross > 0 and (self.adversarial_loss == 0 or not self.converts):
            raise ValueError("train.adversarial_cross needs train.adversarial_loss > 0 (the discriminator) and "
                             "train.speaker_loss or train.cycle_loss > 0 (the cross conversions)")

    @property
    def converts(self) -> bool:
        """Whether each step also converts every crop into another training voice."""
        return self.speaker_loss > 0 or self.cycle_loss > 0


def relative_pitch(log_f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, F) log-F0 -> (contour minus each row's voiced median (:func:`pitch_levels`), 0 where
    unvoiced; voiced flag as float)."""
    voiced = log_f0 > 0
    rel = torch.where(voiced, log_f0 - pitch_levels(log_f0)[:, None], torch.zeros_like(log_f0))
    return rel, voiced.float()


def pitch_levels(log_f0: torch.Tensor) -> torch.Tensor:
    """(B, F) log-F0 (0 = unvoiced) -> (B,) each row's voiced median (0 for a row with no voiced
    frame: unknown), the ``level`` a ``pitch_level`` decoder reads."""
    voiced = log_f0 > 0
    return torch.stack([row[mask].median() if mask.any() else row.new_zeros(())
                        for row, mask in zip(log_f0, voiced, strict=True)])


def band_mask(bins: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) band counts -> (B, M) float mask of each row's lowest ``bins[b]`` bands of ``like`` (B, M, F)."""
    return (torch.arange(like.shape[1], device=like.device)[None, :] < bins[:, None]).to(like.dtype)


def within_band(pred: torch.Tensor, real: torch.Tensor, bins: torch.Tensor | None) -> torch.Tensor:
    """``pred`` (B, M, F) with each row's bands above ``bins[b]`` (the recording's Nyquist) taken
    from ``real``, so that a judge of ``pred`` sees only the bands the recording has (``bins``
    None: ``pred`` unchanged)."""
    if bins is None:
        return pred
    keep = band_mask(bins, pred)[..., None]
    return keep * pred + (1 - keep) * real


def band_l1(pred: torch.Tensor, target: torch.Tensor, bins: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |pred - target| over (B, M, F), counting only each row's lowest ``bins[b]`` bands."""
    if bins is None:
        return (pred - target).abs().mean()
    mask = band_mask(bins, pred)
    return ((pred - target).abs() * mask[..., None]).sum() / (mask.sum() * pred.shape[-1])


class DecoderCrops(Dataset):
    """Random crops of cached utterances: versions (V, M, F), log-F0 (F,), speaker index, and
    optionally the number of mel bands with signal per utterance (``bins``; default all) and a
    sampling weight per utterance (``weights``; default uniform).

    With ``reference_frames`` > 0 every item also has a ``reference``: (M, reference_frames)
    clean log-mel of the same speaker's other speech, for a decoder with reference attention:
    their other utterances and the rest of this one, :data:`REFERENCE_MARGIN` frames away from
    the crop on each side (joined in random order, then cropped). Most LibriSpeech training
    voices have one utterance each; without the rest of it they would drop out. An utterance
    with neither (no other utterance and too short a rest) is not drawn.

    ``reference_phone``: share of the items whose whole reference is taken from another version
    of the same speech (a random one of versions 1..V-1: the phone-line copies of the caches), as
    a reference taken from a recorded call would be; the crop's target stays clean. 0 = always
    version 0 (clean), as before session 41.
    """

    def __init__(self, mels: list[torch.Tensor], log_f0: list[torch.Tensor], speaker: torch.Tensor,
                 embeddings: torch.Tensor, frames: int, items: int, bins: torch.Tensor | None = None,
                 weights: torch.Tensor | None = None, reference_frames: int = 0,
                 reference_phone: float = 0.0) -> None:
        if not 0.0 <= reference_phone <= 1.0:
            raise ValueError(f"reference_phone must be in [0, 1], got {reference_phone}")
        if reference_phone and min(m.shape[0] for m in mels) < 2:
            raise ValueError("reference_phone needs a second (phone-line) version of every utterance; some have one")
        keep = [i for i, m in enumerate(mels) if m.shape[-1] >= frames]
        if not keep:
            raise ValueError(f"no utterance has {frames} frames")
        if bins is not None and len(bins) != len(mels):
            raise ValueError(f"bins has {len(bins)} entries for {len(mels)} utterances")
        self.mels, self.log_f0 = [mels[i] for i in keep], [log_f0[i] for i in keep]
        self.speaker, self.embeddings = speaker[keep], embeddings
        self.bins = (bins[keep] if bins is not None else torch.full((len(keep),), mels[0].shape[-2])).long()
        self.weights = (weights[keep] if weights is not None else torch.ones(len(keep))).double()
        self.frames, self.items = frames, items
        self.reference_frames, self.reference_phone = reference_frames, reference_phone
        self.others: list[list[torch.Tensor]] = []
        if reference_frames:
            by_speaker: dict[int, list[int]] = {}
            for i, who in enumerate(speaker.tolist()):
                by_speaker.setdefault(who, []).append(i)
            self.others = [[mels[j] for j in by_speaker[int(speaker[i])] if j != i] for i in keep]
            short = frames + 2 * REFERENCE_MARGIN + MIN_REST
            alone = torch.tensor([not others and m.shape[-1] < short for others, m in zip(self.others, self.mels,
                                                                                             strict=True)])
            self.weights[alone] = 0.0
            if not self.weights.sum() > 0:
                raise ValueError(f"reference attention needs speakers with two or more utterances, or utterances of "
                                 f"{short} frames or more; there are none")

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        utt = int(torch.multinomial(self.weights, 1))
        mel = self.mels[utt]
        start = int(torch.randint(0, mel.shape[-1] - self.frames + 1, ()))
        crop = slice(start, start + self.frames)
        version = int(torch.randint(0, mel.shape[0], ()))
        item = {"mel": mel[0, :, crop].float(), "source": mel[version, :, crop].float(),
                "log_f0": self.log_f0[utt][crop].float(), "speaker": self.embeddings[self.speaker[utt]].float(),
                "bins": self.bins[utt]}
        if self.reference_frames:
            heard = 0
            if self.reference_phone and float(torch.rand(())) < self.reference_phone:
                heard = int(torch.randint(1, mel.shape[0], ()))
            rest = [mel[heard, :, :max(0, start - REFERENCE_MARGIN)], mel[heard, :, start + self.frames + REFERENCE_MARGIN:]]
            rest = [piece for piece in rest if piece.shape[-1] >= MIN_REST] or [piece for piece in rest if piece.shape[-1]]
            pieces = [other[min(heard, other.shape[0] - 1)] for other in self.others[utt]] + rest
            item["reference"] = reference_crop(pieces, self.reference_frames).float()
        return item


REFERENCE_MARGIN = 100
"""Frames on each side of a training crop that its reference may not contain (the crop's own
sounds and their context): training crops and fine-tuning crops alike."""
MIN_REST = 100
"""The shortest piece of a crop's own utterance that its reference uses."""


def repeat_to(mels: list[torch.Tensor], frames: int) -> torch.Tensor:
    """``mels`` (M, F_i) joined in their order, repeated until at least ``frames`` long."""
    total = sum(m.shape[-1] for m in mels)
    return torch.cat(mels * (frames // total + 1), dim=-1)


def reference_crop(mels: list[torch.Tensor], frames: int) -> torch.Tensor:
    """A random ``frames``-long crop of ``mels`` (M, F_i) joined in random order (repeated when
    they are shorter together)."""
    joined = repeat_to([mels[int(i)] for i in torch.randperm(len(mels))], frames)
    start = int(torch.randint(0, joined.shape[-1] - frames + 1, ()))
    return joined[:, start:start + frames]


def decoder_inputs(content: ContentEncoder | None, decoder: ConversionDecoder, source: torch.Tensor,
                   log_f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, M, F) source log-mel and (B, F) log-F0 -> the decoder's content features (no gradient),
    relative pitch and voiced flag."""
    with torch.no_grad():
        features = decoder.encode(source, None if content is None else content.to(source.device))
    rel, voiced = relative_pitch(log_f0)
    return features, rel, voiced


def convert_batch(content: ContentEncoder | None, decoder: ConversionDecoder, source: torch.Tensor,
                  log_f0: torch.Tensor, speaker: torch.Tensor, reference: torch.Tensor | None = None,
                  reference_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Each crop decoded in ``speaker``'s voice at its own pitch (``log_f0``'s level, for a
    ``pitch_level`` decoder)."""
    level = pitch_levels(log_f0) if decoder.config.pitch_level else None
    return decoder(*decoder_inputs(content, decoder, source, log_f0), speaker, reference, reference_mask, level)


def widen_for_pitch_level(decoder: ConversionDecoder, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` of a decoder without ``pitch_level``, made to fit ``decoder`` (one with it): the
    input layer's weights for the new pitch channel start at zero, so the start decodes exactly
    as the old decoder did. Any other state is returned as it is."""
    weight = state.get("content_in.weight")
    wanted = decoder.content_in.weight
    if (weight is None or not decoder.config.pitch_level or weight.shape[1] + 1 != wanted.shape[1]
            or weight.shape[0] != wanted.shape[0]):
        return state
    widened = torch.cat([weight, weight.new_zeros(weight.shape[0], 1, weight.shape[2])], dim=1)
    return {**state, "content_in.weight": widened}


def blend_voices(first: torch.Tensor, second: torch.Tensor, share: float) -> torch.Tensor:
    """(B, S) unit embeddings -> for a random ``share`` of the rows, ``w first + (1 - w) second``
    renormalised (w uniform in [0, 1) per row); the other rows are ``first``."""
    weight = torch.rand(len(first), 1, device=first.device, dtype=first.dtype)
    mixed = nn.functional.normalize(weight * first + (1 - weight) * second, dim=-1)
    pick = torch.rand(len(first), 1, device=first.device) < share
    return torch.where(pick, mixed, first)


def cross_losses(decoder: ConversionDecoder, content: ContentEncoder | None, judge: SpeakerEncoder,
                 to_judge_mel: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 batch: dict[str, torch.Tensor], cfg: TrainConfig,
                 level: torch.Tensor | None = None,
                 content_judge: ContentEncoder | None = None) -> dict[str, torch.Tensor]:
    """The speaker-consistency, cycle and content terms (see :class:`TrainConfig`) for one batch, whose
    :func:`decoder_inputs` are ``inputs``.

    Crop i is decoded with crop i+1's voice (and reference frames, for a decoder with reference
    attention), or, for a ``cfg.cross_mix`` share of the crops, with a blend of crop i+1's and
    crop i+2's voices (:func:`blend_voices`); pairs of one speaker are left out of the speaker term. Returns the unweighted
    ``speaker`` and ``cycle`` losses (0 when the batch has a single speaker) and the ``converted``
    mel itself (with its gradient, for ``cfg.adversarial_cross``). ``level``: (B,) the crops' own
    pitch levels, for a ``pitch_level`` decoder: a crop decoded in crop i+1's voice is asked for
    crop i+1's level too, and back in its own voice for its own. ``content_judge``: the frozen
    content encoder that ``cfg.content_loss`` listens with; the ``content`` term is returned
    with the others when that weight is above 0.
    """
    speaker, mel = batch["speaker"], batch["mel"]
    judge.to(mel.device)
    to_judge_mel.to(mel.device)
    order = torch.roll(torch.arange(len(speaker), device=speaker.device), 1)
    other = speaker[order]
    reference = batch.get("reference")
    if cfg.cross_mix > 0:
        if reference is not None:
            raise ValueError("train.cross_mix needs a decoder without reference attention (a blend has no frames)")
        if decoder.config.pitch_level:
            raise ValueError("train.cross_mix needs a decoder without model.pitch_level (a blend has no pitch level)")
        other = blend_voices(other, speaker[torch.roll(order, 1)], cfg.cross_mix)
    differ = ((other - speaker).abs().sum(-1) > 1e-6).to(mel.dtype)
    other_reference = None if reference is None else reference[order]
    features, rel, voiced = inputs
    cross_level = None if level is None else level[order]
    if cross_level is not None and cfg.level_shift > 0:
        shift = (2 * torch.rand(len(cross_level), device=cross_level.device) - 1) * cfg.level_shift * SEMITONE
        cross_level = torch.where(cross_level > 0, cross_level + shift, cross_level)
    cross = decoder(features, rel, voiced, other, other_reference, level=cross_level)
    out = {"converted": cross}
    if cross_level is not None:
        out["converted_level"] = cross_level
    heard = judge.centred(judge.raw_embed(to_judge_mel(cross)))
    cosine = (heard * judge.centred(other)).sum(-1)
    out["speaker"] = ((1 - cosine) * differ).sum() / differ.sum().clamp_min(1.0)
    if cfg.cycle_loss > 0:
        back = decoder(decoder.encode(cross, content), rel, voiced, speaker, reference,  # with gradient
                       batch.get("reference_mask"), level)
        out["cycle"] = band_l1(back, mel, batch.get("bins"))
    else:
        out["cycle"] = torch.zeros((), device=mel.device)
    if cfg.content_loss > 0:
        out["content"] = content_term(content_judge, cross, mel, batch.get("bins"))
    return out


def content_term(judge: ContentEncoder | None, converted: torch.Tensor, source: torch.Tensor,
                 bins: torch.Tensor | None = None) -> torch.Tensor:
    """1 - cosine between the content ``judge`` hears in ``converted`` (B, M, F; with its
    gradient) and in ``source`` (the crops it was converted from), mean over frames. With
    ``bins`` (crops recorded at 8 kHz), the bands above each row's signal are the source's in the
    conversion too, so the term asks for the words, not for the source's empty top."""
    if judge is None:
        raise ValueError("train.content_loss needs the content encoder (build_task(content_judge=...))")
    judge.to(source.device)
    converted = within_band(converted, source, bins)
    with torch.no_grad():
        wanted = judge(source)
    return (1 - (judge(converted) * wanted).sum(-1)).mean()


SEMITONE = math.log(2) / 12
"""One semitone in natural-log F0."""


def pitch_terms(judge: PitchJudge, optimizer: torch.optim.Optimizer, real: torch.Tensor, log_f0: torch.Tensor,
                cfg: TrainConfig, out: dict[str, float], pred: torch.Tensor, rel: torch.Tensor, voiced: torch.Tensor,
                converted: torch.Tensor | None = None, converted_level: torch.Tensor | None = None) -> torch.Tensor:
    """One judge step on the real crops (``real`` (B, M, F) and their ``log_f0``, voiced frames),
    then, once the judge has warmed up (``cfg.pitch_warmup``), the decoder's weighted pitch term:
    the reconstructions ``pred`` must read as the crops' own pitch, and, for a ``pitch_level``
    decoder, the cross conversions ``converted`` as the source contour ``rel`` at the
    ``converted_level`` they were asked for (rows without a level are left out). Frames: the
    source's voiced ones. Logged into ``out``."""
    mask = voiced > 0
    target = log_f0 - PITCH_CENTRE
    loss = (judge(real) - target).abs()[mask].mean() if mask.any() else real.new_zeros(())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    judge.updates.add_(1)
    out["loss/pitch_judge"] = float(loss.detach())
    if int(judge.updates) <= cfg.pitch_warmup or not mask.any():
        return pred.new_zeros(())
    term = (judge(pred) - target).abs()[mask].mean()
    out["loss/pitch"] = float(term.detach())
    if converted is not None and converted_level is not None:
        rows = mask & (converted_level > 0)[:, None]  # a row decoded without a level asks for no pitch
        if rows.any():
            asked = rel + (converted_level - PITCH_CENTRE)[:, None]
            cross = (judge(converted) - asked).abs()[rows].mean()
            out["loss/pitch_cross"] = float(cross.detach())
            term = term + cross
    return cfg.pitch_loss * term


def train_step(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               batch: dict[str, torch.Tensor], cfg: TrainConfig, mel_config: MelConfig,
               content: ContentEncoder | None, judge: SpeakerEncoder | None = None,
               to_judge_mel: nn.Module | None = None, content_judge: ContentEncoder | None = None) -> dict[str, float]:
    """One mel-L1 step (plus the cross-conversion terms when ``cfg.converts``). ``content``:
    the frozen content encoder, or None for a decoder that reads the cepstrum
    (``content_input: cepstrum``) and needs none; ``judge`` / ``to_judge_mel``: the frozen
    speaker encoder and the re-analysis of the decoder's mel into its mel; ``content_judge``: the
    frozen content encoder that ``cfg.content_loss`` listens with."""
    decoder = modules["decoder"]
    assert isinstance(decoder, ConversionDecoder)
    source = augment(batch["source"], cfg, mel_config)
    speaker = batch["speaker"]
    if cfg.speaker_dropout > 0:
        if decoder.reference is None:
            raise ValueError("train.speaker_dropout needs a decoder with reference attention (model.reference_heads)")
        keep = torch.rand(len(speaker), 1, device=speaker.device) >= cfg.speaker_dropout
        speaker = speaker * keep
    inputs = decoder_inputs(content, decoder, source, batch["log_f0"])
    level = None
    if decoder.config.pitch_level:
        level = pitch_levels(batch["log_f0"])
        if cfg.level_dropout > 0:
            level = level * (torch.rand(len(level), device=level.device) >= cfg.level_dropout)
    pred = decoder(*inputs, speaker, batch.get("reference"), batch.get("reference_mask"), level)
    loss = band_l1(pred, batch["mel"], batch.get("bins"))
    out = {"loss/mel_l1": float(loss.detach())}
    converted = converted_level = None  # the cross conversions and the level they were asked for
    if cfg.level_shift > 0 and not decoder.config.pitch_level:
        raise ValueError("train.level_shift needs a decoder with model.pitch_level (a level to shift)")
    if cfg.converts:
        if judge is None or to_judge_mel is None:
            raise ValueError("train.speaker_loss / train.cycle_loss need the speaker encoder (build_task(judge=...))")
        terms = cross_losses(decoder, content, judge, to_judge_mel, inputs, batch, cfg, level, content_judge)
        converted = terms.pop("converted")
        converted_level = terms.pop("converted_level", None)
        loss = loss + cfg.speaker_loss * terms["speaker"] + cfg.cycle_loss * terms["cycle"]
        if "content" in terms:
            loss = loss + cfg.content_loss * terms["content"]
        out.update({f"loss/cross_{k}": float(v.detach()) for k, v in terms.items()})
    if cfg.adversarial_loss > 0:
        loss = loss + adversarial_terms(modules["discriminator"], optimizers["discriminator"], pred, batch["mel"],
                                        cfg, out, batch.get("bins"),
                                        converted if cfg.adversarial_cross > 0 else None)
    if cfg.pitch_loss > 0:
        judge_net = modules["pitch_judge"]
        assert isinstance(judge_net, PitchJudge)
        loss = loss + pitch_terms(judge_net, optimizers["pitch_judge"], batch["mel"], batch["log_f0"], cfg, out, pred,
                                  inputs[1], inputs[2], converted, converted_level)
    optimizer = optimizers["decoder"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        out["grad_norm/decoder"] = float(nn.utils.clip_grad_norm_(decoder.parameters(), cfg.grad_clip))
    optimizer.step()
    out["lr"] = optimizer.param_groups[0]["lr"]
    return out


def adversarial_terms(disc: nn.Module, optimizer: torch.optim.Optimizer, pred: torch.Tensor, real: torch.Tensor,
                      cfg: TrainConfig, out: dict[str, float], bins: torch.Tensor | None = None,
                      converted: torch.Tensor | None = None) -> torch.Tensor:
    """One discriminator step on (real crops, detached reconstructions), then the decoder's weighted
    adversarial and feature-matching terms against the updated discriminator (logged into ``out``).

    With ``bins`` (crops recorded at 8 kHz), the bands above each row's signal are the real crop's
    in the reconstruction too, as mel L1 ignores them: the discriminator cannot tell a narrowband
    crop by its empty top, so the decoder is never taught to leave the top empty.

    With ``converted`` (the crops' cross conversions, ``cfg.adversarial_cross``), the discriminator
    also learns to reject those (the fakes are the reconstructions and conversions together), and
    the decoder gets the adversarial term on them too, weighted by ``cfg.adversarial_cross``."""
    pred = within_band(pred, real, bins)
    if converted is not None:
        converted = within_band(converted, real, bins)
    fakes = pred.detach() if converted is None else torch.cat([pred.detach(), converted.detach()])
    d_loss = discriminator_loss([disc(real)[0]], [disc(fakes)[0]])
    optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizer.step()
    with torch.no_grad():
        real_feats = disc(real)[1]
    score, feats = disc(pred)
    adversarial, matching = generator_loss([score]), feature_matching_loss([real_feats], [feats])
    out.update({"loss/disc": float(d_loss.detach()), "loss/adversarial": float(adversarial.detach()),
                "loss/feature_matching": float(matching.detach())})
    total = cfg.adversarial_loss * adversarial + cfg.feature_loss * matching
    if converted is not None:
        cross = generator_loss([disc(converted)[0]])
        out["loss/adversarial_cross"] = float(cross.detach())
        total = total + cfg.adversarial_cross * cross
    return total


def eval_step(modules: dict[str, nn.Module], batch: dict[str, torch.Tensor],
              content: ContentEncoder | None) -> dict[str, float]:
    """Mel L1 on unseen speakers' crops, reconstructed from their own content, pitch and voice.

    With paired dev crops (``recipes/conversion/build_paired.py``), also ``eval/paired_mel_l1``:
    the real crop predicted from a text-to-speech rendering of the same words, time-aligned to
    it (its own pitch and voice), i.e. how far a rendering's envelope is turned into real speech.

    Args:
        batch: ``mel`` (1, N, M, F), ``log_f0`` (1, N, F), ``speaker`` (1, N, S), and for a
            decoder with reference attention ``reference`` (1, N, M, R); optionally
            ``paired_source`` / ``paired_mel`` (1, K, M, F), ``paired_log_f0`` (1, K, F),
            ``paired_speaker`` (1, K, S).
    """
    decoder = modules["decoder"]
    assert isinstance(decoder, ConversionDecoder)
    mel, log_f0, speaker = batch["mel"][0], batch["log_f0"][0], batch["speaker"][0]
    pred = convert_batch(content, decoder, mel, log_f0, speaker, batch["reference"][0] if "reference" in batch else None)
    out = {"eval/mel_l1": float((pred - mel).abs().mean())}
    if "paired_source" in batch:
        pred = convert_batch(content, decoder, batch["paired_source"][0], batch["paired_log_f0"][0],
                             batch["paired_speaker"][0])
        out["eval/paired_mel_l1"] = float((pred - batch["paired_mel"][0]).abs().mean())
    return out


def build_task(model: DecoderConfig, mel: MelConfig, cfg: TrainConfig, content: ContentEncoder | None,
               metadata: dict | None = None, judge: SpeakerEncoder | None = None,
               judge_mel: MelConfig | None = None, content_judge: ContentEncoder | None = None) -> TrainTask:
    """Everything :func:`voicefake.train.loop.fit` needs to train a conversion decoder
    (``content``: the frozen content encoder; None for a cepstrum decoder; ``judge`` and its
    ``judge_mel``: the frozen speaker encoder that ``train.speaker_loss`` / ``cycle_loss``
    need, the one whose embeddings condition the decoder; ``content_judge``: the frozen content
    encoder that ``train.content_loss`` needs, on the same mel)."""
    decoder = ConversionDecoder(model, mel)
    if content is None and model.content_input != "cepstrum":
        raise ValueError(f"a decoder with content_input {model.content_input!r} needs the content encoder")
    content = None if content is None else content.eval().requires_grad_(False)
    to_judge_mel = None
    if cfg.converts:
        if judge is None or judge_mel is None:
            raise ValueError("train.speaker_loss / train.cycle_loss need the speaker encoder and its mel configuration")
        if judge.config.emb_dim != model.speaker_dim:
            raise ValueError(f"the speaker encoder makes {judge.config.emb_dim}-d embeddings and the decoder is "
                             f"conditioned on {model.speaker_dim}-d ones: use the encoder that made the decoder cache")
        judge = judge.eval().requires_grad_(False)
        to_judge_mel = MelReanalysis(mel, judge_mel)
    if cfg.content_loss > 0:
        if content_judge is None:
            raise ValueError("train.content_loss needs the content encoder (build_task(content_judge=...))")
        if content_judge.mel != mel:
            raise ValueError("train.content_loss: the content encoder reads another mel than the decoder writes; "
                             "use one trained on the decoder's mel")
        content_judge = content_judge.eval().requires_grad_(False)
    modules: dict[str, nn.Module] = {"decoder": decoder}
    if cfg.adversarial_loss > 0:
        modules["discriminator"] = MelDiscriminator()
    if cfg.pitch_loss > 0:
        modules["pitch_judge"] = PitchJudge(mel.n_mels)
    optimizers: dict[str, torch.optim.Optimizer] = {name: torch.optim.AdamW(module.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
                                                      for name, module in modules.items()}
    return TrainTask(
        modules=modules,
        optimizers=optimizers,
        schedulers={name: torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_lambda, cfg=cfg))
                    for name, opt in optimizers.items()},
        train_step=partial(train_step, cfg=cfg, mel_config=mel, content=content, judge=judge,
                           to_judge_mel=to_judge_mel, content_judge=content_judge),
        eval_step=partial(eval_step, content=content),
        exports={"decoder": ("conversion", mel)},
        metadata=dict(metadata or {}),
    )
