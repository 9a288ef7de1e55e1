"""Detector training: the labelled crop dataset, its augmentation, and one training step
(binary cross-entropy, or OC-softmax for the one-class head).

Augmentation treats both labels identically (the label must never be readable from the
channel): random crop length, random low-pass at 3.4-4 kHz (narrowband emulation, so that
bandwidth is not a cue), dither noise that fills digital silence, and a random gain. With
``p_channel`` a crop first goes through a random phone call or recording chain of
:mod:`voicefake.channel`, drawn afresh for each crop (a pair's two crops share theirs), for
corpora that have no channel copies of their own (``configs/full.yaml``).

Spliced crops (``p_splice``) teach the per-frame logits, which make the segment timeline,
where a fake starts and stops: a span of a real crop is replaced by a span of another clip,
a fake one (those frames are labelled synthetic) or, just as often, another real one (all
frames stay real), so that a splice itself is never the cue. They are trained with a per-frame
loss; whole crops keep the utterance loss.

Paired crops (``p_pair``) ask the detector to tell a copy-synthesis fake from the very recording
it was made from: the same span of both, through the same augmentation, side by side in a batch.
Within such a pair the voice, the words, the room, the microphone and the coding are shared, so
only the generator's traces tell them apart; a margin loss on the pair's logit difference is
added to the two crops' own losses. The recording chain is then no help in training, which is
what an unseen chain needs (session 30: the detector's scores follow the recording chain).
Waveforms flagged ``pair_only`` (a fake and its source sent through one and the same phone or
wideband channel, ``recipes/detection/prepare_shared.py --stage pairs``) take part only in such
pairs, so they add the channel to the pairs without changing what the single crops draw from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import PurePosixPath
from typing import cast, overload

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from voicefake.audio.io import load_audio
from voicefake.channel import apply_chain, draw_phone_steps, draw_recording_steps, effects
from voicefake.checkpoint import unwrap
from voicefake.data.manifests import ManifestRow
from voicefake.detection.augment import rawboost
from voicefake.detection.losses import detection_loss, one_class_loss, pair_margin_loss
from voicefake.detection.model import Detector, DetectorConfig
from voicefake.train.loop import TrainTask, warmup_cosine

CHANNEL_DRAWS = {"phone": draw_phone_steps, "recording": draw_recording_steps}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and augmentation settings.

    Attributes:
        lr / weight_decay: AdamW.
        warmup_steps / total_steps: linear warm-up, then cosine decay to 5 % of ``lr``.
        grad_clip: max grad norm (0 disables).
        segment_seconds: length of the crops the dataset returns.
        min_seconds: each batch is cut to a random length in [min_seconds, segment_seconds].
        p_lowpass: probability of a 3.4-4 kHz low-pass (both labels).
        p_dither: probability of added low-level white noise (-85 to -55 dBFS).
        gain_db: random gain range, +- dB.
        label_smoothing: targets become 0 + s/2 and 1 - s/2.
        p_splice: probability that a training crop is a spliced one (see the module doc).
        splice_fraction: the inserted span's share of the crop, drawn in this range.
        p_speed: probability that a crop is played faster or slower by a factor drawn from
            ``speed_range`` (:func:`voicefake.channel.effects.speed`, band-limited resampling)
            before the other augmentation (both labels): pitch, formants and tempo move
            together, as between two speakers, so the detector meets more voices than the data
            has.
        speed_range: the resampling factor's range (> 1: faster and higher).
        p_rawboost: probability of one RawBoost distortion (:func:`voicefake.detection.augment.rawboost`:
            a random notch-filter channel with non-linear terms, impulsive errors, or coloured
            noise) before the other augmentation, both labels.
        p_channel: probability that a crop is first sent through a random channel of
            :mod:`voicefake.channel`, drawn for that crop from ``channel_kinds`` (equally likely):
            "phone" (:func:`~voicefake.channel.draw_phone_steps`: room, noise, handset, an 8 kHz
            codec, packet loss) or "recording" (:func:`~voicefake.channel.draw_recording_steps`:
            microphone response, sample rate, level, noise floor, a lossy file format). Both
            labels alike, and a pair's real and fake crop through the same chain. It costs about
            55 ms (recording) to 75 ms (phone) of CPU per 4 s crop on one thread
            (``benchmarks/detection_loading.py``), so give the loader workers.
        channel_kinds: the chain kinds ``p_channel`` draws from.
        oc_margins: (m_real, m_fake) cosine margins of the one-class loss
            (:func:`~voicefake.detection.losses.one_class_loss`), used when the model's
            ``head`` is "one_class"; the linear head trains with binary cross-entropy.
        p_pair: when > 0, every dataset item is a real crop and a fake crop (so
            ``loop.batch_size`` counts pairs); with this probability the fake is a
            copy-synthesis fake and the real crop is the same span of its source recording,
            both through the same augmentation (see the module doc). Otherwise the two crops
            are drawn apart, as without pairing.
        pair_margin / pair_weight: the paired crops' margin loss
            (:func:`~voicefake.detection.losses.pair_margin_loss`) and its weight.
        sam_rho: when > 0, sharpness-aware minimisation (SAM, Foret et al. 2021; for speech
            deepfake detection: Shim et al. 2023, Huang et al. 2025): each step first moves the
            weights ``sam_rho`` up the batch's gradient (:func:`sam_ascent`), takes the gradient
            there, and applies it at the original weights, so training prefers minima whose
            loss stays low around them. It costs a second forward and backward pass per step.
        sam_adaptive: ASAM (Kwon et al. 2021): the ascent is scaled by each weight's magnitude, so
            that ``sam_rho`` means the same for large and small weights (typical rho: 0.5-2).
        sam_warmup_steps: the ascent grows linearly from 0 to ``sam_rho`` over this many optimiser
            steps (counted by the optimiser, so a resumed run continues the ramp). From a random
            start the detector's gradients are small at first; with the full ascent from step 0
            one LOGO fold in two sat in that flat start for good (session 44).
    """

    lr: float = 2e-3
    weight_decay: float = 1e-3
    warmup_steps: int = 50
    total_steps: int = 2000
    grad_clip: float = 5.0
    segment_seconds: float = 4.0
    min_seconds: float = 1.5
    p_lowpass: float = 0.3
    p_dither: float = 0.5
    gain_db: float = 3.0
    label_smoothing: float = 0.05
    p_splice: float = 0.0
    splice_fraction: tuple[float, float] = (0.2, 0.6)
    p_speed: float = 0.0
    speed_range: tuple[float, float] = (0.87, 1.15)
    p_rawboost: float = 0.0
    p_channel: float = 0.0
    channel_kinds: tuple[str, ...] = ("phone", "recording")
    oc_margins: tuple[float, float] = (0.9, 0.2)
    p_pair: float = 0.0
    pair_margin: float = 2.0
    pair_weight: float = 1.0
    sam_rho: float = 0.0
    sam_adaptive: bool = False
    sam_warmup_steps: int = 0

    def __post_init__(self) -> None:
        if not -1.0 <= self.oc_margins[1] < self.oc_margins[0] <= 1.0:
            raise ValueError(f"TrainConfig.oc_margins must be (m_real, m_fake) with -1 <= m_fake < m_real <= 1, "
                             f"got {self.oc_margins}")
        if not 0.0 <= self.p_pair <= 1.0:
            raise ValueError(f"TrainConfig.p_pair must be a probability in [0, 1], got {self.p_pair}")
        if not 0.0 <= self.p_channel <= 1.0:
            raise ValueError(f"TrainConfig.p_channel must be a probability in [0, 1], got {self.p_channel}")
        unknown = sorted(set(self.channel_kinds) - set(CHANNEL_DRAWS))
        if not self.channel_kinds or unknown:
            raise ValueError(f"TrainConfig.channel_kinds must name one or more of {sorted(CHANNEL_DRAWS)}, "
                             f"got {list(self.channel_kinds)}")
        if not math.isfinite(self.sam_rho) or self.sam_rho < 0:
            raise ValueError(f"TrainConfig.sam_rho must be a finite number >= 0 (0 turns SAM off), got {self.sam_rho}")
        if self.sam_warmup_steps < 0:
            raise ValueError(f"TrainConfig.sam_warmup_steps must be >= 0, got {self.sam_warmup_steps}")


def copy_sources(rows: Sequence[ManifestRow]) -> list[int]:
    """For each row, the index of the real recording that it was copied from, or -1.

    A copy-synthesis fake keeps its source's speaker and is named after it
    (``<source name>_<n>``, ``recipes/detection/prepare_shared.py``). Of those, only
    ``channel=clean`` rows are paired: a recording's channel copy and its fake's went through
    channels drawn apart. Rows tagged ``pair=<id>`` (stage ``pairs``: a fake and its source
    through one and the same channel) are paired by that tag instead, fake to real. A clean fake
    tagged ``utterance=<id>`` (WaveFake, ``prepare_corpora.py``: its vocoders' copies of LJSpeech
    and JSUT keep the source's id, not its file name) pairs with the clean real recording of
    the same speaker and utterance.
    """
    def clean(row: ManifestRow) -> bool:
        return row.tags.get("channel") == "clean" and "pair" not in row.tags

    reals = {(r.speaker, PurePosixPath(r.path).stem): i for i, r in enumerate(rows) if clean(r) and not r.is_fake}
    tagged = {r.tags["pair"]: i for i, r in enumerate(rows) if "pair" in r.tags and not r.is_fake}
    said = {(r.speaker, r.tags["utterance"]): i for i, r in enumerate(rows)
            if clean(r) and not r.is_fake and "utterance" in r.tags}
    sources = []
    for row in rows:
        if "pair" in row.tags:
            sources.append(tagged.get(row.tags["pair"], -1) if row.is_fake else -1)
            continue
        if "utterance" in row.tags:
            paired = row.is_fake and clean(row)
            sources.append(said.get((row.speaker, row.tags["utterance"]), -1) if paired else -1)
            continue
        base, _, number = PurePosixPath(row.path).stem.rpartition("_")
        paired = row.is_fake and clean(row) and number.isdigit()
        sources.append(reals.get((row.speaker, base), -1) if paired else -1)
    return sources


class LazyWaves(Sequence[torch.Tensor]):
    """Waveforms read from disk when asked for, not held in memory: corpora of tens of thousands
    of recordings (ASVspoof, In-the-Wild, WaveFake; ``data.lazy`` in ``recipes/detection/train.py``)
    do not fit in RAM as float32. Each access decodes the file, resamples it to ``sample_rate`` and
    keeps its first ``max_samples`` samples, as the in-memory path does. Picklable, so data-loader
    workers each read their own files.
    """

    def __init__(self, paths: Sequence[str], sample_rate: int, max_samples: int) -> None:
        if max_samples <= 0:
            raise ValueError(f"LazyWaves: max_samples must be > 0, got {max_samples}")
        self.paths, self.sample_rate, self.max_samples = [str(p) for p in paths], sample_rate, max_samples

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> list[torch.Tensor]: ...

    def __getitem__(self, index: int | slice) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        wav = load_audio(self.paths[index], self.sample_rate, allow_silence=True)[: self.max_samples]
        return torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))


class DetectionCropDataset(Dataset):
    """Class-balanced random crops: even indices draw a real clip, odd ones a fake clip.

    With ``cfg.p_pair > 0`` each item is a pair instead (see :meth:`pair` and
    :func:`pair_collate`).

    Args:
        waves: (T,) float32 waveforms at the model rate, loudness-normalised, or a
            :class:`LazyWaves` that reads each from disk when it is drawn.
        labels: 1 for synthetic, 0 for real, one per waveform.
        segment_samples: crop length.
        cfg: augmentation settings.
        length: nominal epoch length in items.
        sources: for each waveform, the index of the real waveform it was copied from, or -1
            (:func:`copy_sources`); needed by ``cfg.p_pair``.
        pair_only: for each waveform, True when it is drawn only as one half of a pair (stage
            ``pairs``' channel copies), never as a crop on its own.
    """

    def __init__(self, waves: Sequence[np.ndarray] | LazyWaves, labels: Sequence[int], segment_samples: int,
                 cfg: TrainConfig, sample_rate: int, length: int = 4096,
                 sources: Sequence[int] | None = None, pair_only: Sequence[bool] | None = None) -> None:
        self.waves: Sequence[torch.Tensor] = (
            waves if isinstance(waves, LazyWaves) else [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in waves])
        only = list(pair_only) if pair_only is not None else [False] * len(self.waves)
        if len(only) != len(self.waves):
            raise ValueError(f"DetectionCropDataset: {len(only)} pair_only flags for {len(self.waves)} waveforms")
        self.by_label = {k: [i for i, y in enumerate(labels) if y == k and not only[i]] for k in (0, 1)}
        if not self.by_label[0] or not self.by_label[1]:
            raise ValueError("DetectionCropDataset needs at least one real and one fake waveform")
        self.labels = list(labels)
        self.segment_samples, self.cfg, self.sample_rate, self.length = segment_samples, cfg, sample_rate, length
        sources = list(sources) if sources is not None else [-1] * len(self.waves)
        if len(sources) != len(self.waves):
            raise ValueError(f"DetectionCropDataset: {len(sources)} sources for {len(self.waves)} waveforms")
        self.copies = [(i, s) for i, s in enumerate(sources) if s >= 0 and self.labels[i] == 1 and self.labels[s] == 0]
        if cfg.p_pair > 0 and not self.copies:
            raise ValueError("train.p_pair needs copy-synthesis fakes whose source recordings are in the training "
                             "data (none found); set train.p_pair=0")

    def __len__(self) -> int:
        return self.length

    def _draw(self, label: int, length: int) -> torch.Tensor:
        pool = self.by_label[label]
        wav = self.waves[pool[int(torch.randint(len(pool), ()))]]
        if self.cfg.p_speed > 0 and float(torch.rand(())) < self.cfg.p_speed:
            low, high = self.cfg.speed_range
            factor = float(torch.empty(()).uniform_(low, high))
            # a crop long enough to give `length` samples after the change of speed
            need = int(math.ceil(length * factor)) + 64
            faster = effects.speed(random_crop(wav, need).numpy(), self.sample_rate, factor)
            return random_crop(torch.from_numpy(faster), length)
        return random_crop(wav, length)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        """(crop, label, per-sample target): the target is -1 everywhere for a whole crop (no
        frame target: the utterance loss applies), 0 / 1 per sample for a spliced one. With
        pairing on, :meth:`pair`."""
        if self.cfg.p_pair > 0:
            return self.pair()
        return self.single(index % 2)

    def pair(self) -> tuple[torch.Tensor, ...]:
        """(2, T) crops (real, fake), their labels (0, 1), (2, T) per-sample targets, and a
        (2,) flag that is True when the two are a fake and the same span of its source."""
        if float(torch.rand(())) >= self.cfg.p_pair:
            (real, _, real_target), (fake, _, fake_target) = self.single(0), self.single(1)
            return (torch.stack([real, fake]), torch.tensor([0.0, 1.0]), torch.stack([real_target, fake_target]),
                    torch.zeros(2, dtype=torch.bool))
        fake_index, source_index = self.copies[int(torch.randint(len(self.copies), ()))]
        fake_wav, source_wav = self.waves[fake_index], self.waves[source_index]
        usable = min(fake_wav.shape[0], source_wav.shape[0])  # copy-synthesis keeps the timing, not always the length
        start = crop_start(usable, self.segment_samples)
        fake_crop = random_crop(fake_wav[:usable], self.segment_samples, start=start)
        source_crop = random_crop(source_wav[:usable], self.segment_samples, start=start)
        state = torch.get_rng_state()  # the same augmentation draws for both
        real = augment(source_crop, self.cfg, self.sample_rate)
        torch.set_rng_state(state)
        fake = augment(fake_crop, self.cfg, self.sample_rate)
        return (torch.stack([real, fake]), torch.tensor([0.0, 1.0]), torch.full((2, self.segment_samples), -1.0),
                torch.ones(2, dtype=torch.bool))

    def single(self, label: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One crop of ``label`` (spliced with probability ``p_splice``), as :meth:`__getitem__`."""
        if self.cfg.p_splice > 0 and float(torch.rand(())) < self.cfg.p_splice:
            wav, target = self._splice(label)
        else:
            wav = self._draw(label, self.segment_samples)
            target = torch.full_like(wav, -1.0)
        return augment(wav, self.cfg, self.sample_rate), torch.tensor(float(label)), target

    def _splice(self, label: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A real crop with a span of a ``label`` clip inside, joined by 10 ms cross-fades."""
        n = self.segment_samples
        low, high = self.cfg.splice_fraction
        span = int(n * float(torch.empty(()).uniform_(low, high)))
        start = int(torch.randint(0, n - span + 1, ()))
        wav = self._draw(0, n).clone()
        insert = self._draw(label, span)
        fade = min(int(0.01 * self.sample_rate), span // 4)
        weight = torch.ones(span)
        if fade:
            ramp = torch.linspace(0.0, 1.0, fade)
            weight[:fade], weight[-fade:] = ramp, ramp.flip(0)
        wav[start : start + span] = weight * insert + (1 - weight) * wav[start : start + span]
        target = torch.zeros(n)
        target[start : start + span] = float(label)
        return wav, target


def random_crop(wav: torch.Tensor, length: int, start: int | None = None) -> torch.Tensor:
    """A random (length,) crop; short clips are tiled (not zero-padded: padding is a cue).

    ``start`` fixes the crop's first sample (after tiling; :func:`crop_start` draws one)
    instead of drawing it here.
    """
    if wav.shape[0] < length:
        wav = wav.repeat(math.ceil(length / wav.shape[0]))
    if start is None:
        start = crop_start(wav.shape[0], length)
    start = min(start, wav.shape[0] - length)
    return wav[start : start + length]


def crop_start(num_samples: int, length: int) -> int:
    """A random first sample for a (length,) crop of a ``num_samples`` clip, tiled as
    :func:`random_crop` tiles it when shorter."""
    tiled = num_samples * math.ceil(length / num_samples) if num_samples < length else num_samples
    return int(torch.randint(0, tiled - length + 1, ()))


def pair_collate(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Batches paired items (:meth:`DetectionCropDataset.pair`) as 2B crops, each pair's real
    crop at an even row and its fake crop right after; single items as the default collate."""
    if items[0][0].dim() == 1:
        return default_collate(items)
    return tuple(torch.cat(parts) for parts in zip(*items, strict=True))


def augment(wav: torch.Tensor, cfg: TrainConfig, sample_rate: int) -> torch.Tensor:
    """Label-blind augmentation of one (T,) crop. Every draw comes from torch's generator, so
    replaying its state replays the augmentation (a pair's two crops)."""
    if cfg.p_channel > 0 and float(torch.rand(())) < cfg.p_channel:
        kind = cfg.channel_kinds[int(torch.randint(len(cfg.channel_kinds), ()))]
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        steps = CHANNEL_DRAWS[kind](rng)
        wav = torch.from_numpy(apply_chain(wav.numpy(), sample_rate, steps, seed=rng))
    if cfg.p_rawboost > 0 and float(torch.rand(())) < cfg.p_rawboost:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        wav = torch.from_numpy(rawboost(wav.numpy(), rng, sample_rate))
    if torch.rand(()) < cfg.p_lowpass:
        spec = torch.fft.rfft(wav)
        cutoff = float(torch.empty(()).uniform_(3400.0, 4000.0))
        keep = int(cutoff / (sample_rate / 2) * (spec.shape[0] - 1))
        spec[keep:] = 0
        wav = torch.fft.irfft(spec, n=wav.shape[0])
    if torch.rand(()) < cfg.p_dither:
        level = 10 ** (float(torch.empty(()).uniform_(-85.0, -55.0)) / 20)
        wav = wav + level * torch.randn_like(wav)
    gain = 10 ** (float(torch.empty(()).uniform_(-cfg.gain_db, cfg.gain_db)) / 20)
    return (wav * gain).clamp(-1.0, 1.0)


def build_modules(model: DetectorConfig) -> dict[str, nn.Module]:
    """The detector."""
    return {"detector": Detector(model)}


def build_optimizers(modules: dict[str, nn.Module], cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """AdamW over the detector."""
    return {"detector": torch.optim.AdamW(modules["detector"].parameters(), cfg.lr, weight_decay=cfg.weight_decay)}


def lr_lambda(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5 %."""
    return warmup_cosine(step, cfg.warmup_steps, cfg.total_steps, 0.05)


def loss_for(model: DetectorConfig, cfg: TrainConfig, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss of ``model``'s head: BCE (linear) or OC-softmax (one-class)."""
    if model.head == "one_class":
        return one_class_loss(logits, targets, model.oc_scale, cfg.oc_margins)
    return detection_loss(logits, targets, cfg.label_smoothing)


def decision_logit(model: DetectorConfig, cfg: TrainConfig) -> float:
    """The logit between the two classes' training margins (0 for the linear head)."""
    if model.head == "one_class":
        return -model.oc_scale * sum(cfg.oc_margins) / 2
    return 0.0


def sam_ascent(params: Sequence[nn.Parameter], rho: float, adaptive: bool = False) -> list[torch.Tensor]:
    """Moves ``params`` (in place) to the sharpness-aware point: ``rho`` along their gradients,
    normalised over all of them (ASAM when ``adaptive``: each gradient scaled by its weight's
    magnitude, twice). Returns the steps taken, for :func:`sam_descent` to undo."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    scaled = [g * p.detach().abs() if adaptive else g for g, p in zip(grads, params, strict=True)]
    norm = torch.stack([(g.double() ** 2).sum() for g in scaled]).sum().sqrt().float()
    steps = []
    with torch.no_grad():
        for p, g in zip(params, scaled, strict=True):  # ASAM: T^2 g / |T g|, T = |w|
            e = (g * p.abs() if adaptive else g) * (rho / (norm + 1e-12))
            p.add_(e)
            steps.append(e)
    return steps


def sam_radius(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> float:
    """This step's ascent radius: ``cfg.sam_rho``, ramped in over ``cfg.sam_warmup_steps``
    optimiser steps (the optimiser's own count, so it survives a resume; an optimiser that keeps
    no count gets the full radius from its second step)."""
    if cfg.sam_rho <= 0 or cfg.sam_warmup_steps <= 0:
        return cfg.sam_rho
    state = next((optimizer.state[p] for group in optimizer.param_groups for p in group["params"]
                  if p in optimizer.state), None)
    if state is not None and "step" not in state:
        return cfg.sam_rho  # an optimiser that keeps no step count (e.g. SGD): no ramp
    done = int(state["step"]) if state is not None else 0
    return cfg.sam_rho * min(1.0, done / cfg.sam_warmup_steps)


def sam_descent(params: Sequence[nn.Parameter], steps: Sequence[torch.Tensor]) -> None:
    """Undoes :func:`sam_ascent`: the weights return to where the step started."""
    with torch.no_grad():
        for p, e in zip(params, steps, strict=True):
            p.sub_(e)


@contextmanager
def _frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Inside: batch-norm layers still normalise by the batch, but their running statistics stay
    as they are (SAM's second pass sees the same batch; it must not count it twice)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


def train_step(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               batch: tuple[torch.Tensor, ...], cfg: TrainConfig, sample_rate: int) -> dict[str, float]:
    """One step (the head's loss: :func:`loss_for`) on a batch cut to a random length.

    Args:
        batch: (B, T) waveforms, (B,) labels (1 = synthetic) and optionally (B, T) per-sample
            targets (-1: none; see :class:`DetectionCropDataset`) and a (B,) pair flag
            (:func:`pair_collate`: rows 2i and 2i + 1, real then fake, flagged when they are a
            fake and its source). Items with per-sample targets are trained on their frame
            logits, the others on their utterance logit; flagged pairs add the margin loss.

    With ``cfg.sam_rho`` > 0 the update is SAM's (see :class:`TrainConfig`): the same crops are
    scored again at the ascended weights, and that gradient is applied. The metrics report the
    loss at the weights the step started from.
    """
    wav, labels = batch[0], batch[1]
    low = int(cfg.min_seconds * sample_rate)
    length = int(torch.randint(min(low, wav.shape[1]), wav.shape[1] + 1, ()))
    start = int(torch.randint(0, wav.shape[1] - length + 1, ()))
    detector = modules["detector"]
    model = cast(Detector, unwrap(detector)).config  # unwrap: DistributedDataParallel under torchrun
    hop = model.hop_length
    crop = wav[:, start : start + length]
    target = batch[2][:, start : start + length] if len(batch) > 2 else None
    framed = torch.zeros_like(labels, dtype=torch.bool) if target is None else target[:, 0] >= 0
    whole = ~framed
    paired = batch[3][0::2] if len(batch) > 3 else torch.zeros(0, dtype=torch.bool)

    def scored() -> tuple[torch.Tensor, torch.Tensor]:
        out = detector(crop)
        loss = out.logits.new_zeros(())
        if whole.any():
            loss = loss + loss_for(model, cfg, out.logits[whole], labels[whole]) * whole.float().mean()
        if target is not None and framed.any():
            frames = frame_targets(target[framed], out.frame_logits.shape[-1], 4 * hop)
            loss = loss + loss_for(model, cfg, out.frame_logits[framed].flatten(), frames.flatten()) * framed.float().mean()
        if paired.any():
            real, fake = out.logits[0::2][paired], out.logits[1::2][paired]
            loss = loss + cfg.pair_weight * pair_margin_loss(real, fake, cfg.pair_margin) * paired.float().mean()
        return out.logits, loss

    logits, loss = scored()
    optimizer = optimizers["detector"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    out_metrics: dict[str, float] = {}
    rho = sam_radius(cfg, optimizer)
    if rho > 0:
        params = [p for p in detector.parameters() if p.requires_grad]
        steps = sam_ascent(params, rho, cfg.sam_adaptive)
        optimizer.zero_grad(set_to_none=True)
        with _frozen_norm_statistics(detector):
            _, ascended = scored()
        ascended.backward()
        sam_descent(params, steps)
        out_metrics["loss_sam/detector"] = ascended.item()
        out_metrics["sam_rho"] = rho
    grad = float(torch.nn.utils.clip_grad_norm_(detector.parameters(), cfg.grad_clip or float("inf")))
    optimizer.step()
    out_metrics.update({"loss/detector": loss.item(), "grad_norm/detector": grad,
                        "lr": optimizer.param_groups[0]["lr"], "spliced/train": float(framed.float().mean())})
    if paired.any():
        out_metrics["pair_order/train"] = float((logits[1::2][paired] > logits[0::2][paired]).float().mean())
    if whole.any():
        decided = (logits[whole] > decision_logit(model, cfg)).float()
        out_metrics["acc/train"] = float((decided == labels[whole]).float().mean())
    return out_metrics


def frame_targets(target: torch.Tensor, frames: int, samples_per_frame: int) -> torch.Tensor:
    """(B, T) per-sample 0/1 targets -> (B, frames): the synthetic share of each frame logit's
    span (frame logit j covers samples [j, j + 1) * samples_per_frame; the end is edge-padded)."""
    need = frames * samples_per_frame
    if target.shape[1] < need:
        target = torch.cat([target, target[:, -1:].expand(-1, need - target.shape[1])], dim=1)
    return target[:, :need].reshape(target.shape[0], frames, samples_per_frame).mean(dim=-1)


@torch.no_grad()
def eval_step(modules: dict[str, nn.Module], batch: tuple[torch.Tensor, torch.Tensor],
              cfg: TrainConfig | None = None) -> dict[str, float]:
    """Loss (the head's training loss, without label smoothing) and accuracy on fixed dev crops."""
    wav, labels = batch
    detector = modules["detector"]
    model = cast(Detector, unwrap(detector)).config
    cfg = replace(cfg or TrainConfig(), label_smoothing=0.0)
    logits = detector(wav).logits
    decided = (logits > decision_logit(model, cfg)).float()
    return {"eval/loss": float(loss_for(model, cfg, logits, labels)),
            "eval/acc": float((decided == labels).float().mean())}


def build_task(model: DetectorConfig, cfg: TrainConfig, metadata: dict | None = None) -> TrainTask:
    """Everything :func:`voicefake.train.loop.fit` needs."""
    modules = build_modules(model)
    optimizers = build_optimizers(modules, cfg)
    schedulers = {"detector": torch.optim.lr_scheduler.LambdaLR(optimizers["detector"], partial(lr_lambda, cfg=cfg))}
    return TrainTask(
        modules=modules, optimizers=optimizers, schedulers=schedulers,
        train_step=partial(train_step, cfg=cfg, sample_rate=model.sample_rate),
        eval_step=partial(eval_step, cfg=cfg), exports={"detector": ("detection", None)}, metadata=dict(metadata or {}),
        collate=pair_collate,
    )
