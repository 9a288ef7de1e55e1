"""Fine-tuning the conversion decoder on one voice (``voicefake finetune``).

The bundled decoder learnt ~130 voices from their embeddings; a few minutes of one voice let
a copy of it learn that voice's own spectra: the copy trains on random 2 s crops of the
target's audio (content from warped, level-shifted mels, as in pre-training; the speaker input
is the target's fixed embedding). The result is stored inside the voice profile.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from voicefake.audio.features import MelSpectrogram
from voicefake.conversion.decoder_training import REFERENCE_MARGIN, TrainConfig, train_step
from voicefake.conversion.model import ContentEncoder, ConversionDecoder
from voicefake.conversion.voice import VoiceProfile, estimate_log_f0

_log = logging.getLogger(__name__)


def finetune_decoder(decoder: ConversionDecoder, content: ContentEncoder | None, wavs: list[np.ndarray],
                     embedding: torch.Tensor, features: MelSpectrogram, steps: int, batch_size: int = 8,
                     crop_frames: int = 200, lr: float = 2e-4, seed: int = 0,
                     keep: float = 1.0) -> tuple[ConversionDecoder, list[float]]:
    """Returns (a fine-tuned copy of ``decoder``, its loss every step). ``content`` may be None
    for a decoder that reads the cepstrum. ``keep``: the share of the weights' change that the
    copy keeps (1: all of it; 0.5: halfway between the multi-speaker decoder and the fine-tuned
    one, a weight-space ensemble as in WiSE-FT)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    torch.manual_seed(seed)
    mels = [features(torch.from_numpy(w)) for w in wavs]
    f0 = [estimate_log_f0(torch.from_numpy(w), features.config)[: m.shape[-1]] for w, m in zip(wavs, mels, strict=True)]
    usable = [i for i, m in enumerate(mels) if m.shape[-1] >= crop_frames]
    if not usable:
        raise ValueError(f"fine-tuning needs recordings of at least {crop_frames / 100:.0f} s")
    # a decoder with reference attention reads all of the voice's audio except the crop itself
    # (reading the crop would teach it to copy frames, not to take the voice)
    reference = torch.cat(mels, dim=-1)[None] if decoder.reference is not None else None
    offsets = [0]
    for m in mels:
        offsets.append(offsets[-1] + m.shape[-1])
    tuned = copy.deepcopy(decoder).train().requires_grad_(True)
    cfg = TrainConfig(lr=lr, warmup_steps=1, total_steps=steps, grad_clip=5.0)
    optimizer = torch.optim.AdamW(tuned.parameters(), lr, weight_decay=cfg.weight_decay)
    frozen = None if content is None else content.eval().requires_grad_(False)
    losses = []
    for step in range(steps):
        batch: dict[str, list[torch.Tensor]] = {"mel": [], "source": [], "log_f0": [], "reference_mask": []}
        for _ in range(batch_size):
            i = usable[int(torch.randint(0, len(usable), ()))]
            start = int(torch.randint(0, mels[i].shape[-1] - crop_frames + 1, ()))
            crop = mels[i][:, start:start + crop_frames]
            batch["mel"].append(crop)
            batch["source"].append(crop)
            batch["log_f0"].append(f0[i][start:start + crop_frames])
            if reference is not None:
                batch["reference_mask"].append(reference_mask(offsets[-1], offsets[i] + start, crop_frames))
        tensors = {k: torch.stack(v) for k, v in batch.items() if v}
        tensors["speaker"] = embedding[None].expand(batch_size, -1)
        if reference is not None:
            tensors["reference"] = reference.expand(batch_size, -1, -1)
        losses.append(train_step({"decoder": tuned}, {"decoder": optimizer}, tensors, cfg,
                                 features.config, frozen)["loss/mel_l1"])
        if step % 50 == 0:
            _log.info("finetune step %d/%d mel L1 %.4f", step, steps, losses[-1])
    if keep < 1:
        with torch.no_grad():
            for tuned_param, param in zip(tuned.parameters(), decoder.parameters(), strict=True):
                tuned_param.copy_(param + keep * (tuned_param - param))
    return tuned.eval().requires_grad_(False), losses


def reference_mask(frames: int, start: int, length: int, margin: int = REFERENCE_MARGIN) -> torch.Tensor:
    """(frames,) True = readable: everything but ``[start - margin, start + length + margin)``.
    Never empty: when that would hide every frame, the frames farthest from the crop stay."""
    mask = torch.ones(frames, dtype=torch.bool)
    mask[max(0, start - margin):start + length + margin] = False
    if not mask.any():
        mask[0 if start + length / 2 > frames / 2 else frames - 1] = True
    return mask


def without_decoder(profile: VoiceProfile) -> VoiceProfile:
    """A copy of ``profile`` without its own decoder: the zero-shot voice of the same reference."""
    import dataclasses

    out = VoiceProfile(dataclasses.replace(profile.config, decoder=None), profile.mel)
    out.load_state_dict({k: v for k, v in profile.state_dict().items() if not k.startswith("decoder.")})
    out.content_model = profile.content_model
    return out.eval()


def with_decoder(profile: VoiceProfile, decoder: ConversionDecoder) -> VoiceProfile:
    """A copy of ``profile`` that carries ``decoder`` (its config and weights)."""
    import dataclasses

    config = dataclasses.replace(profile.config, decoder=decoder.config)
    out = VoiceProfile(config, profile.mel)
    state = {k: v for k, v in profile.state_dict().items() if not k.startswith("decoder.")}
    state.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    out.load_state_dict(state)
    return out.eval()
