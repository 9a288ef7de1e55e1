"""Conversion inference: reference audio -> voice profile; source audio -> mel in that voice.

The pipeline for one source utterance (16 kHz):

1. content = what the decoder reads (``DecoderConfig.content_input``): the source's
   normalised cepstrum, or ContentEncoder(log-mel of the source); log-F0 of the source.
2. decoder: ConversionDecoder(content, the source's intonation, the target's embedding) gives a
   first mel in the target's voice (``blend = 0`` stops here);
3. kNN refinement: every frame of that mel is matched (cosine on standardised MFCCs with
   +-2 frames of context) against the target's own reference frames, and the ``k`` nearest
   reference mels are averaged; because the query is already in the target's voice, the
   match is within one voice, where spectral matching finds the same sounds. The output is
   ``(1 - w) * decoder + w * matched`` with ``w = blend`` where the source is voiced and 0 in its
   unvoiced stretches (:func:`voiced_weight`; since session 40).

A reference taken from a phone call or an 8 kHz recording has nothing above 4 kHz. Whatever
compares the conversion with the reference's frames (the kNN blend, the equaliser and variance
post-filter, the identity steps below) then uses only the bands the reference fills
(:func:`signal_bands`; since session 41), and the output keeps its own upper bands. A decoder
with a narrowband offset (``DecoderConfig.narrowband_offset``, conversion-call-16k since session
42) is also conditioned on such a reference's speaker embedding moved towards where its clean
recording's would lie (:meth:`ConversionDecoder.voice_embedding`); the identity steps start from
that embedding.

Before that, a reference's embedding may be pushed away from the speaker encoder's centre, its
average voice (``contrast``: :func:`voicefake.conversion.model.contrast_embedding`, a caricature; the decoder's
``DecoderConfig.speaker_contrast`` by default: 1 for conversion-ref-16k, 0.5 for conversion-flite-16k since
session 43): the
decoders speak a voice a little closer to the average than its reference is.

Before 2, with ``pitch_range`` > 0, the source's intonation is widened or narrowed towards the
reference's pitch range (:func:`match_pitch_range`; text to speech, since session 47).

Between 1 and 2, with ``identity_steps`` > 0 and a speaker encoder, the target embedding the
decoder is conditioned on is adapted to this source (:func:`adapt_embedding`): a few gradient
steps move it so that the speaker encoder hears the decoder's output as the reference's voice.
The source's content features still carry some of the source speaker; this pushes back against
it, utterance by utterance.

Without a decoder (``decoder=None``) the source's content features are matched against the
reference's directly (plain kNN-VC).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from voicefake.audio.features import MelReanalysis, MelSpectrogram
from voicefake.conversion.decoder_training import relative_pitch
from voicefake.conversion.model import (
    ContentEncoder,
    ConversionDecoder,
    ReferenceMemory,
    cepstral_content,
)
from voicefake.conversion.voice import VoiceConfig, VoiceProfile, estimate_log_f0
from voicefake.speaker.model import SpeakerEncoder


def spectral_keys(mel: torch.Tensor, context: int = 2, coefficients: int = 30) -> torch.Tensor:
    """(M, F) log-mel -> (F, D) unit-norm keys: standardised MFCCs 1..n with +-context frames."""
    x = cepstral_content(mel[None], coefficients - 1)[0]
    padded = F.pad(x.T[None], (context, context), mode="replicate")[0].T
    stacked = torch.cat([padded[i:i + len(x)] for i in range(2 * context + 1)], dim=1)
    return F.normalize(stacked, dim=-1)


def build_profile(wavs: list[np.ndarray], features: MelSpectrogram, content: ContentEncoder,
                  embedding: np.ndarray | None, k: int = 4, pitch_weight: float = 0.0) -> VoiceProfile:
    """A :class:`VoiceProfile` from 16 kHz reference waveforms (their frames, all kept)."""
    mels, contents, f0 = [], [], []
    for wav in wavs:
        tensor = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        mel = features(tensor)
        mels.append(mel.T)
        contents.append(content(mel[None])[0])
        f0.append(estimate_log_f0(tensor, features.config)[: mel.shape[-1]])
    emb = torch.from_numpy(np.asarray(embedding, np.float32)) if embedding is not None else torch.zeros(0)
    config = VoiceConfig(frames=sum(len(m) for m in mels), content_dim=content.config.content_dim,
                         k=k, pitch_weight=pitch_weight, embedding_dim=len(emb))
    profile = VoiceProfile(config, features.config)
    profile.content.copy_(torch.cat(contents))
    profile.mels.copy_(torch.cat(mels))
    profile.log_f0.copy_(torch.cat(f0))
    profile.embedding.copy_(emb)
    return profile


def match_spectra(query: torch.Tensor, profile: VoiceProfile, k: int, chunk: int = 2000,
                  bands: int | None = None) -> torch.Tensor:
    """(M, F) query mel -> (M, F) average of the k reference mels with the nearest spectral keys
    (keys from the lowest ``bands`` mel bands only, e.g. those a narrowband reference fills;
    None = all)."""
    bands = query.shape[0] if bands is None else bands
    coefficients = min(30, bands - 1)
    bank = spectral_keys(profile.mels.T[:bands], coefficients=coefficients)
    keys = spectral_keys(query[:bands], coefficients=coefficients)
    k = min(k, len(bank))
    out = []
    for start in range(0, len(keys), chunk):
        index = (keys[start:start + chunk] @ bank.T).topk(k, dim=1).indices
        out.append(profile.mels[index].mean(dim=1))
    return torch.cat(out).T


def long_term_spectrum(mel: torch.Tensor) -> torch.Tensor:
    """(M, F) log-mel -> (M,) mean log-mel of its louder half of frames (the speech, not the pauses)."""
    energy = mel.mean(dim=0)
    loud = energy >= energy.median()
    return mel[:, loud].mean(dim=1)


EMPTY_BAND_MARGIN = 1.0
"""A reference's mel band is empty when its :func:`long_term_spectrum` lies within this many
natural-log units of the reference's lowest value (the mel's floor)."""
MIN_SIGNAL_BANDS = 16
"""Fewer bands with signal than this (under about 1 kHz of the 16 kHz mel) is not a band-limited
voice: :func:`signal_bands` then counts all bands."""


def signal_bands(reference: torch.Tensor, margin: float = EMPTY_BAND_MARGIN) -> int:
    """How many of the lowest mel bands of ``reference`` (M, N) carry its signal: M for wideband
    speech; fewer for a reference taken from a phone call or recorded at 8 kHz (about 62 of 80
    for the 16 kHz mel: nothing above 4 kHz), whose upper bands hold the mel's floor.

    The count stops below the lowest band from which every band up is empty (within ``margin``
    of the reference's minimum over all its values). A reference with signal in fewer than
    :data:`MIN_SIGNAL_BANDS` bands (none, or nothing above a few hundred Hz: no speech) counts as
    wideband, which leaves it to the old path. Statistics that compare a conversion with
    its reference (the equaliser, the variance post-filter, the kNN blend, the identity steps)
    use only these bands: above them a narrowband reference says nothing of the voice, and
    matching it would muffle the output. Session 41 (docs/benchmarks/cloning.md).
    """
    if reference.shape[-1] == 0:
        return reference.shape[0]
    empty = long_term_spectrum(reference) < reference.min() + margin
    if not empty[-1]:
        return reference.shape[0]
    filled = (~empty).nonzero()
    bands = int(filled.max()) + 1 if len(filled) else 0
    return bands if bands >= MIN_SIGNAL_BANDS else reference.shape[0]


def _on_bands(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], mel: torch.Tensor,
              reference: torch.Tensor, strength: float, bands: int) -> torch.Tensor:
    """``fn(mel, reference, strength)`` on the lowest ``bands`` (those where ``reference`` has
    signal: :func:`signal_bands`); the bands above keep ``mel`` as it is."""
    if bands == mel.shape[0] or strength == 0.0:
        return fn(mel, reference, strength)
    return torch.cat([fn(mel[:bands], reference[:bands], strength), mel[bands:]])


def match_long_term_spectrum(mel: torch.Tensor, reference: torch.Tensor, strength: float,
                             max_gain: float = 2.3, smooth_bands: int = 3) -> torch.Tensor:
    """Moves ``mel`` (M, F) towards the long-term spectrum of ``reference`` (M, N): a static
    equaliser, one gain per mel band for the whole utterance.

    The gain is the difference of the two :func:`long_term_spectrum`, smoothed over
    ``smooth_bands`` neighbouring bands (the envelope, not single harmonics), limited to
    ``max_gain`` (natural-log units of magnitude: 2.3 is 20 dB) and scaled by ``strength``
    (0 = off, 1 = the whole difference). The defaults were chosen on 4 targets x 8 sources
    (docs/benchmarks/cloning.md, session 12). One fixed filter changes no frame relative to
    another: what moves is the overall timbre and the recording channel, not the timing or the
    sounds' order. Measured on unseen targets at strength 1: similarity +0.02-0.03, and 2-4
    points more word errors by the ASR judge.
    """
    if smooth_bands < 1 or smooth_bands % 2 == 0:
        raise ValueError(f"smooth_bands must be a positive odd number, got {smooth_bands}")
    if strength == 0.0 or mel.shape[-1] == 0 or reference.shape[-1] == 0:
        return mel
    gain = long_term_spectrum(reference) - long_term_spectrum(mel)
    pad = smooth_bands // 2
    gain = F.avg_pool1d(F.pad(gain[None, None], (pad, pad), mode="replicate"), smooth_bands, stride=1)[0, 0]
    return mel + strength * gain.clamp(-max_gain, max_gain)[:, None]


def match_global_variance(mel: torch.Tensor, reference: torch.Tensor, strength: float,
                          max_scale: float = 2.0) -> torch.Tensor:
    """Gives back ``mel`` (M, F) the spectral movement a decoder smooths away: a global-variance
    post-filter (the remedy of statistical parametric synthesis for over-smoothed spectra).

    In each mel band, the frames' deviations from the band's mean over the louder half of frames
    (the speech) are scaled by ``(std_reference / std_mel) ** strength``, both standard
    deviations taken over the louder half of each one's frames; the ratio is limited to
    ``[1 / max_scale, max_scale]``. 0 = off, 1 = the reference's whole variance. The louder
    frames' mean stays where it was, so :func:`match_long_term_spectrum` after it sees the same
    long-term spectrum. The conversion decoder's output varies 8-21 % less than its reference
    does; at 0.5 on 10 unseen targets: similarity +0.013, WER -1.4 points, DNSMOS +0.02
    (docs/benchmarks/cloning.md, session 19).
    """
    if max_scale < 1.0:
        raise ValueError(f"max_scale must be >= 1, got {max_scale}")
    if strength == 0.0 or mel.shape[-1] < 4 or reference.shape[-1] < 4:
        return mel

    def loud(x: torch.Tensor) -> torch.Tensor:
        energy = x.mean(dim=0)
        return x[:, energy >= energy.median()]

    speech = loud(mel)
    mean = speech.mean(dim=1, keepdim=True)
    ratio = loud(reference).std(dim=1) / speech.std(dim=1).clamp_min(1e-3)
    scale = ratio.clamp(1.0 / max_scale, max_scale) ** strength
    return mean + (mel - mean) * scale[:, None]


IDENTITY_WEIGHT = 1.0
"""Pull of the adapted embedding back towards the profile's (squared distance weight).

Chosen on 3 unseen targets x 8 sources at 10 steps (docs/benchmarks/cloning.md, session 18):
0 cost 0.21 DNSMOS; 1 kept the embedding at cosine 0.96-0.97 from the profile's, for most of the
similarity gain at 0.08-0.09 DNSMOS; 2 (20 steps) gained less."""
IDENTITY_LR = 0.02
IDENTITY_MAX_FRAMES = 600
"""The adaptation looks at most this many source frames (6 s, the middle of longer input), so
its cost does not grow with the input."""
DIVERGED_LOG_MEL = 20.0
"""A decoder output above this log-mel value is no speech (a full-scale signal stays under about
10): the adaptation has left the region the decoder works in. A voice fine-tuned on one speaker
did so after one step (a log-mel of 251, then NaN) on one of 24 sources (session 19)."""


def adapt_embedding(source_content: torch.Tensor, rel_log_f0: torch.Tensor, voiced: torch.Tensor,
                    profile: VoiceProfile, decoder: ConversionDecoder, speaker: SpeakerEncoder,
                    to_speaker_mel: MelReanalysis, steps: int, weight: float = IDENTITY_WEIGHT,
                    lr: float = IDENTITY_LR, level: torch.Tensor | None = None,
                    start: torch.Tensor | None = None) -> torch.Tensor:
    """The profile's embedding moved, in ``steps`` Adam steps, so that ``speaker`` (a
    :class:`voicefake.speaker.model.SpeakerEncoder`) hears the decoder's output for this source
    as the reference's voice; returns the (D,) unit-norm embedding to condition on.

    Loss: 1 - cosine between the speaker encoder's (centred) embedding of the decoder's output
    and of the reference frames, both re-analysed into the encoder's mel by ``to_speaker_mel``
    (so that the re-analysis's offsets cancel), plus ``weight`` x the squared distance from the
    profile's embedding. A narrowband reference (:func:`signal_bands`) is compared with the output
    as heard through the same band: the output's bands above it take the reference's floor
    values. Only the embedding moves: no model's weights get a gradient. Works
    under ``torch.inference_mode`` too (it leaves it for the steps).

    Divergence is caught: when an embedding makes the decoder's output non-finite or larger than
    :data:`DIVERGED_LOG_MEL` (a decoder fine-tuned on one voice can do that a step away from its
    embedding), the steps stop and the last embedding that decoded sanely is returned (at worst
    the start). :func:`convert_mel` checks the final embedding on the whole input.
    ``level``: (1,) the pitch level a ``pitch_level`` decoder is given (:func:`profile_level`).
    ``start``: the embedding to start from and stay near (default: the profile's; a narrowband
    reference's is first shifted by :meth:`ConversionDecoder.voice_embedding`).
    """
    start = (profile.embedding if start is None else start).detach().clone()
    frames = source_content.shape[1]
    if steps <= 0 or profile.config.frames == 0 or frames == 0:
        return start
    lo = max(0, (frames - IDENTITY_MAX_FRAMES) // 2)
    hi = min(frames, lo + IDENTITY_MAX_FRAMES)
    with torch.inference_mode(False), torch.enable_grad():
        # clones: tensors made under inference mode cannot take part in autograd
        content, rel, mask = (t[:, lo:hi].clone() for t in (source_content, rel_log_f0, voiced))
        start = start.clone()
        reference = to_speaker_mel(profile.mels.T[None].clone())
        bands = signal_bands(profile.mels.T)
        empty = profile.mels.T[bands:].mean(dim=1, keepdim=True)[None]  # (1, M - bands, 1): the floor
        with torch.no_grad():
            goal = speaker.centred(speaker.embed_long(reference, centre=False))
        embedding = start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([embedding], lr=lr)
        good = start
        frames_in = _reference_input(decoder, profile)
        for _ in range(steps):
            out = decoder(content, rel, mask, F.normalize(embedding, dim=-1)[None], reference=frames_in, level=level)
            if not _sane(out):
                return F.normalize(good, dim=-1)
            good = embedding.detach().clone()
            if bands < out.shape[1]:  # heard through the reference's band, as the goal was
                out = torch.cat([out[:, :bands], empty.expand(-1, -1, out.shape[-1])], dim=1)
            heard = speaker.centred(speaker.raw_embed(to_speaker_mel(out)))
            loss = 1 - (heard * goal).sum() + weight * (embedding - start).pow(2).sum()
            (grad,) = torch.autograd.grad(loss, [embedding])
            if not torch.isfinite(grad).all():
                return F.normalize(good, dim=-1)
            embedding.grad = grad
            optimizer.step()
        return F.normalize(embedding.detach(), dim=-1)


PITCH_RATIO_LIMITS = (0.5, 2.5)
"""The pitch-range ratio (reference spread / source spread) is clipped to this range before
``pitch_range`` is applied, so that an octave error in either contour cannot multiply the source's
intonation by 10 (session 47: the ratio averaged 1.9 over 50 flite sentences, min 0.52, max at the clip)."""
MIN_VOICED_FRAMES = 50
"""A contour's spread is read from at least this many voiced frames (0.5 s); with fewer, in the
reference or in the source, the contour is left as it is."""


def pitch_spread(log_f0: torch.Tensor) -> float:
    """The spread of a log-F0 contour's voiced frames (0 = unvoiced): its 10-90 % quantile range in
    natural-log units (0.0 with fewer than :data:`MIN_VOICED_FRAMES` voiced frames)."""
    voiced = log_f0[log_f0 != 0].float()
    if voiced.numel() < MIN_VOICED_FRAMES:
        return 0.0
    low, high = torch.quantile(voiced, torch.tensor([0.1, 0.9], dtype=voiced.dtype))
    return float(high - low)


def match_pitch_range(rel_log_f0: torch.Tensor, voiced: torch.Tensor, reference_log_f0: torch.Tensor,
                      strength: float) -> torch.Tensor:
    """The source's intonation (``rel_log_f0``, (B, F): log-F0 minus its voiced median, 0 where
    unvoiced) widened or narrowed towards the reference's pitch range (mean-variance log-F0
    conversion, the classic voice-conversion pitch mapping): multiplied by ``ratio ** strength``,
    where ratio = :func:`pitch_spread` of the reference's contour (``reference_log_f0``, the
    profile's frames) / that of the source's voiced frames, clipped to :data:`PITCH_RATIO_LIMITS`.
    0 = the source's own range (the default for conversion); 1 = the reference's.

    The reference's spread is read over all its frames (several utterances, whose levels differ too),
    so it is about twice one sentence's (session 47: 1.9x for flite's sentences, 2.0x for VCTK's);
    the strength absorbs that. Text to speech runs at 0.5 by default (flite's clips: DNSMOS +0.04 and a
    pitch nearer the reference's, with similarity and words level; docs/benchmarks/cloning.md, session 47);
    conversion at 0. Returned unchanged when either contour has fewer than :data:`MIN_VOICED_FRAMES`
    voiced frames.
    """
    if not 0.0 <= strength < float("inf"):
        raise ValueError(f"pitch_range must be >= 0, got {strength}")
    if strength == 0.0:
        return rel_log_f0
    target = pitch_spread(reference_log_f0)
    # shifted by 1 so that a voiced frame at exactly the median (rel 0) is not read as unvoiced
    source = pitch_spread(torch.where(voiced > 0, rel_log_f0 + 1.0, torch.zeros_like(rel_log_f0)))
    if target <= 0.0 or source <= 0.0:
        return rel_log_f0
    ratio = min(PITCH_RATIO_LIMITS[1], max(PITCH_RATIO_LIMITS[0], target / source)) ** strength
    return rel_log_f0 * ratio


def profile_level(decoder: ConversionDecoder, profile: VoiceProfile) -> torch.Tensor | None:
    """(1,) the voiced median log-F0 of the profile's reference frames, for a decoder with
    ``pitch_level`` (0 = unknown: an embedding-only profile, or a reference with no voiced
    frame; the decoder then takes the pitch from the embedding); None for any other decoder."""
    if not decoder.config.pitch_level:
        return None
    return torch.tensor([profile.median_log_f0() if profile.config.frames else 0.0])


def _reference_input(decoder: ConversionDecoder, profile: VoiceProfile) -> ReferenceMemory | None:
    """What a decoder with reference attention reads from the profile's frames, computed once
    for all the decodes of one call (None for a decoder without)."""
    if decoder.reference is None:
        return None
    if profile.config.frames == 0:
        raise ValueError("this conversion decoder reads the target's reference frames, and the voice profile has "
                         "none (an embedding-only profile): build the profile from reference audio")
    with torch.no_grad():
        return decoder.reference_memory(profile.mels.T[None].clone())


def _sane(log_mel: torch.Tensor) -> bool:
    """A decoder output that could be speech: finite and under :data:`DIVERGED_LOG_MEL`."""
    return bool(torch.isfinite(log_mel).all() and log_mel.max() < DIVERGED_LOG_MEL)


def convert_mel(wav: np.ndarray, profile: VoiceProfile, features: MelSpectrogram, content: ContentEncoder,
                decoder: ConversionDecoder | None, blend: float = 0.25, eq: float = 0.0,
                speaker: SpeakerEncoder | None = None, speaker_mel: MelReanalysis | None = None,
                identity_steps: int = 0, gv: float = 0.0, contrast: float = 0.0,
                centre: torch.Tensor | None = None, pitch_range: float = 0.0) -> torch.Tensor:
    """16 kHz source waveform -> (M, F) log-mel in the profile's voice (see the module docstring).

    A profile with its own fine-tuned decoder uses it instead of ``decoder``. ``gv`` in [0, 1]
    then restores the spectral movement towards the reference's (:func:`match_global_variance`),
    and ``eq`` in [0, 1] equalises the result towards the reference's long-term spectrum
    (:func:`match_long_term_spectrum`); both need a profile with reference frames.
    ``identity_steps`` > 0 adapts the target embedding to this source first
    (:func:`adapt_embedding`; needs ``speaker`` and ``speaker_mel``, and a profile with
    reference frames: an embedding-only profile is used as it is).
    ``contrast`` >= 0 pushes the profile's embedding away from ``centre`` first
    (:meth:`ConversionDecoder.voice_embedding`; ``centre`` defaults to ``speaker``'s, one of them is needed).
    ``pitch_range`` >= 0 moves the source's intonation towards the reference's pitch range first
    (:func:`match_pitch_range`; 0 = off; needs a profile with reference frames).
    """
    if not contrast >= 0.0:
        raise ValueError(f"contrast must be >= 0, got {contrast}")
    if contrast and centre is None:
        if speaker is None or not speaker.config.center_embeddings:
            raise ValueError("contrast > 0 needs the speaker encoder's centre (a centred speaker encoder)")
        centre = speaker.get_buffer("center")
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend must be in [0, 1], got {blend}")
    if not 0.0 <= eq <= 1.0:
        raise ValueError(f"eq must be in [0, 1], got {eq}")
    if not 0.0 <= gv <= 1.0:
        raise ValueError(f"gv must be in [0, 1], got {gv}")
    if identity_steps < 0:
        raise ValueError(f"identity_steps must be >= 0, got {identity_steps}")
    if not 0.0 <= pitch_range < float("inf"):
        raise ValueError(f"pitch_range must be >= 0, got {pitch_range}")
    if identity_steps and profile.config.frames and (speaker is None or speaker_mel is None):
        raise ValueError("identity_steps > 0 needs the speaker encoder and its mel re-analysis")
    reference = profile.mels.T
    bands = signal_bands(reference)
    out = _convert_mel(wav, profile, features, content, decoder, blend, speaker, speaker_mel, identity_steps,
                       bands=bands, contrast=contrast, centre=centre, pitch_range=pitch_range)
    if profile.config.frames == 0:
        return out
    out = _on_bands(match_global_variance, out, reference, gv, bands)
    return _on_bands(match_long_term_spectrum, out, reference, eq, bands)


def _convert_mel(wav: np.ndarray, profile: VoiceProfile, features: MelSpectrogram, content: ContentEncoder,
                 decoder: ConversionDecoder | None, blend: float, speaker: SpeakerEncoder | None = None,
                 speaker_mel: MelReanalysis | None = None, identity_steps: int = 0, *,
                 bands: int, contrast: float = 0.0, centre: torch.Tensor | None = None,
                 pitch_range: float = 0.0) -> torch.Tensor:
    """The mel before the post-filters; ``bands``: the reference's :func:`signal_bands`."""
    tensor = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    mel = features(tensor)
    log_f0 = estimate_log_f0(tensor, features.config)[: mel.shape[-1]]
    decoder = profile.decoder if profile.decoder is not None else decoder
    if decoder is None:
        return profile(content(mel[None])[0], log_f0)
    source_content = decoder.encode(mel[None], content)
    if profile.config.embedding_dim != decoder.config.speaker_dim:
        raise ValueError(f"the voice profile has a {profile.config.embedding_dim}-d speaker embedding; "
                         f"the decoder needs {decoder.config.speaker_dim}-d (rebuild the profile)")
    rel, voiced = relative_pitch(log_f0[None])
    if pitch_range and profile.config.frames:
        rel = match_pitch_range(rel, voiced, profile.log_f0, pitch_range)
    level = profile_level(decoder, profile)
    # the caricature, and a narrowband reference's embedding moved towards where its clean recording's would be
    base = decoder.voice_embedding(profile.embedding, narrowband=bands < mel.shape[0], contrast=contrast, centre=centre)
    embedding = base
    if identity_steps and speaker is not None and speaker_mel is not None:
        embedding = adapt_embedding(source_content, rel, voiced, profile, decoder, speaker, speaker_mel,
                                    identity_steps, level=level, start=base)
    frames_in = _reference_input(decoder, profile)
    first = decoder(source_content, rel, voiced, embedding[None], reference=frames_in, level=level)[0]
    if embedding is not base and not _sane(first):
        # the adapted embedding decoded sanely on the adaptation's window but not on the whole input
        first = decoder(source_content, rel, voiced, base[None], reference=frames_in, level=level)[0]
    if blend == 0.0 or profile.config.frames == 0:  # an embedding-only profile has no frames to match
        return first
    weight = blend * voiced_weight(voiced[0], first.shape[-1])[None].repeat(first.shape[0], 1)
    weight[bands:] = 0.0  # above a narrowband reference's bandwidth its frames hold no voice
    return (1 - weight) * first + weight * match_spectra(first, profile, profile.config.k, bands=bands)


# frames over which the voiced/unvoiced decision of the kNN blend is smoothed (50 ms)
BLEND_SMOOTH_FRAMES = 5


def voiced_weight(voiced: torch.Tensor, frames: int, smooth: int = BLEND_SMOOTH_FRAMES) -> torch.Tensor:
    """(F,) 0/1 voicing of the source -> (frames,) weight in [0, 1] of the kNN blend per output frame:
    1 where the source is voiced, 0 in its unvoiced stretches (consonants and pauses keep the
    decoder's mel), a moving average over ``smooth`` frames between them.

    The blend trades words for voice; a voice is heard mostly in voiced speech, and words are lost
    where matched frames smear consonants. Session 40 (docs/benchmarks/cloning.md; 80 conversions into
    10 unseen voices, one thread): blend 0.15 on voiced frames measured 0.748 similarity with 14.2 %
    WER, against 0.750 with 16.7 % for the same blend on every frame and 0.746 with 14.3 % at 0.1.
    """
    weight = voiced.float()
    if smooth > 1 and len(weight):
        weight = F.avg_pool1d(weight[None, None], smooth, stride=1, padding=smooth // 2,
                              count_include_pad=False)[0, 0]
    weight = weight[:frames]
    return F.pad(weight, (0, frames - len(weight))) if len(weight) < frames else weight
