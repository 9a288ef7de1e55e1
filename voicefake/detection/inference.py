"""From a waveform to a detection report: calibrated probability, decision, timeline, evidence.

The calibration lives in the checkpoint's ``metadata["calibration"]`` (see
:class:`Calibration`), fitted on dev data by ``recipes/detection/calibrate.py``:

* file level: logistic-regression fusion of the network's utterance logit with the two
  Benford divergences (:mod:`voicefake.detection.benford`); this is Platt scaling of the
  fused score, so its output is a calibrated probability;
* segments: Platt scaling (scale, bias) of the network's window logit;
* ``threshold``: chosen on dev real speech (clean and through channels) at a stated
  false-alarm rate ``far_target``; ``segment_threshold`` likewise over dev real windows;
* narrowband input (a phone call: :func:`high_band_db` below ``narrowband_below_db``) gets its
  own pair of thresholds, chosen at the same false-alarm rate on the narrowband dev recordings
  alone. Real calls score higher than wideband real speech, so one threshold for both would
  hold the stated rate on the mixture but not on calls, which is what analysts upload.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from voicefake.audio.io import loudness_normalize, speech_regions
from voicefake.audio.legs import to_original_time
from voicefake.detection.benford import BenfordStats, benford_features, benford_stats
from voicefake.detection.model import Detector, num_model_frames

BANDS_HZ = ((0, 500), (500, 1000), (1000, 2000), (2000, 3000), (3000, 4000), (4000, 6000), (6000, 8000))
SALIENCY_MAX_SECONDS = 30.0
SHORT_SPEECH_S = 8.0
"""Below this much speech a report carries a caution: on voices unlike the calibration data,
short recordings are flagged more often (docs/benchmarks/detection.md, sessions 24 and 46, by length)."""
NARROWBAND_BELOW_DB = -30.0  # dev data (session 10): calls -83 to -78 dB, wideband speech mostly -30 to -5 dB
HIGH_BAND_HZ = 4200.0  # above a telephone channel's band (300-3400 Hz; G.722 wideband goes to 7 kHz)


@dataclass(frozen=True)
class Calibration:
    """Fusion, calibration and decision settings stored with a detector checkpoint.

    Attributes:
        weights: fusion weights for [network logit, log Benford divergence, log pause divergence].
        bias: fusion bias.
        segment_scale / segment_bias: Platt scaling of a window's network logit.
        threshold: decision threshold on the file probability (for wideband input when the
            narrowband thresholds below are set).
        segment_threshold: threshold on a window's probability (likewise).
        far_target: false-alarm rate on dev real speech the thresholds were chosen at.
        benford_range: 1st-99th percentile of each Benford divergence on dev real speech.
        narrowband_below_db: input whose :func:`high_band_db` is below this is narrowband
            (None: one pair of thresholds for every input, as before 0.3.1).
        narrowband_threshold / narrowband_segment_threshold: the thresholds for narrowband
            input, at ``far_target`` on the narrowband dev recordings and their windows.
    """

    weights: tuple[float, float, float] = (1.0, 0.0, 0.0)
    bias: float = 0.0
    segment_scale: float = 1.0
    segment_bias: float = 0.0
    threshold: float = 0.5
    segment_threshold: float = 0.5
    far_target: float = 0.01
    benford_range: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"divergence": (0.0, 1.0), "pause_divergence": (0.0, 1.0)})
    narrowband_below_db: float | None = None
    narrowband_threshold: float | None = None
    narrowband_segment_threshold: float | None = None

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Calibration:
        """Reads ``metadata["calibration"]``; an uncalibrated checkpoint gets the identity."""
        raw = dict(metadata.get("calibration") or {})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown calibration keys {sorted(unknown)}")
        if "weights" in raw:
            raw["weights"] = tuple(raw["weights"])
        if "benford_range" in raw:
            raw["benford_range"] = {k: tuple(v) for k, v in raw["benford_range"].items()}
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (for checkpoint metadata)."""
        return asdict(self)

    def file_probability(self, logit: float, stats: BenfordStats) -> float:
        """Fused, calibrated P(synthetic) of a whole recording."""
        x = np.concatenate([[logit], benford_features(stats)])
        return _sigmoid(float(np.dot(self.weights, x) + self.bias))

    def is_narrowband(self, high_band: float) -> bool:
        """Whether an input with this :func:`high_band_db` gets the narrowband thresholds."""
        return self.narrowband_below_db is not None and self.narrowband_threshold is not None \
            and high_band < self.narrowband_below_db

    def thresholds(self, high_band: float) -> tuple[float, float]:
        """(file threshold, segment threshold) for an input with this :func:`high_band_db`."""
        if self.is_narrowband(high_band):
            assert self.narrowband_threshold is not None
            return self.narrowband_threshold, self.narrowband_segment_threshold or self.segment_threshold
        return self.threshold, self.segment_threshold

    def segment_probability(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated P(synthetic) of window logits."""
        return 1.0 / (1.0 + np.exp(-(self.segment_scale * logits + self.segment_bias)))


@dataclass
class DetectionReport:
    """What :func:`voicefake.api.detect` returns for one recording.

    Attributes:
        p_fake: calibrated probability that the speech is synthetic.
        label: "fake" if ``p_fake >= threshold`` else "real".
        threshold: the decision threshold for this input's bandwidth (chosen at
            ``evidence["far_target"]`` on dev; ``evidence["bandwidth"]`` says which applied).
        segments: ``{"start", "end", "p_fake"}`` windows (seconds) covering the file.
        evidence: saliency bands and spans, flagged spans, Benford statistics with their
            reference range on real speech, the raw network logit, the input's bandwidth.
        model: ``{"name", "version"}``.
        duration: seconds.
        channels: for a recording whose channels were scored apart (:func:`voicefake.audio.legs.plan_channels`),
            one report per scored channel (``evidence["channel"]`` names it, 0 = left); the
            fields above are then the deciding channel's (:func:`combine_channels`). None
            otherwise; ``evidence["channels"]`` always says how the channels were used.
    """

    p_fake: float
    label: str
    threshold: float
    segments: list[dict[str, float]]
    evidence: dict[str, Any]
    model: dict[str, str]
    duration: float
    channels: list[DetectionReport] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``channels`` only when the channels were scored apart)."""
        out = asdict(self)
        if self.channels is None:
            del out["channels"]
        else:
            out["channels"] = [channel.to_dict() for channel in self.channels]
        return out

    def at_threshold(self, threshold: float) -> DetectionReport:
        """The same report decided at a threshold of the user's, for every input.

        ``label`` is recomputed; ``evidence`` gains ``threshold_set_by: "user"`` and
        ``model_threshold`` (the model's own for this input). The timeline keeps the model's
        segment threshold. A stricter threshold trades missed fakes for fewer false alarms on
        voices unlike the calibration data (model card: "Threshold guidance for calls").

        Raises:
            ValueError: ``threshold`` outside [0, 1] (:func:`check_threshold`).
        """
        threshold = check_threshold(threshold)
        if self.channels:  # each channel at the user's threshold, then decided again across them
            return combine_channels([channel.at_threshold(threshold) for channel in self.channels],
                                    self.evidence["channels"])
        return self.decided_at(threshold, "user")

    def decided_at(self, threshold: float, set_by: str) -> DetectionReport:
        """This (single-channel) report decided at ``threshold``; ``evidence`` records who set it
        (``"user"``, or ``"legs"``: :func:`threshold_for_legs`) and keeps ``model_threshold``."""
        model_threshold = self.evidence.get("model_threshold", self.threshold)
        evidence = {**self.evidence, "threshold_set_by": set_by, "model_threshold": model_threshold}
        return replace(self, threshold=round(threshold, 4) if set_by != "user" else threshold,
                       label="fake" if self.p_fake >= threshold else "real", evidence=evidence)


def combine_channels(reports: list[DetectionReport], info: dict[str, Any]) -> DetectionReport:
    """One report for a recording whose channels were scored apart (each report's
    ``evidence["channel"]`` names its channel).

    The deciding channel is a "fake" one if any, the highest ``p_fake`` among them (else the
    highest overall): its ``p_fake``, ``label``, ``threshold`` and evidence become the
    recording's. So the recording is "fake" when any channel is; :func:`voicefake.api.detect`
    therefore decides each of ``n`` legs at ``far_target / n`` (:func:`threshold_for_legs`), so
    that a real call is flagged at the stated rate, not up to ``n`` times it. The timeline
    shows, per window, the channel whose party speaks most of it (segments' ``speech``, from
    :func:`detect_waveform` with ``kept``; the highest ``p_fake`` where the shares tie, or
    without them), so a window over a real turn is not flagged for a synthetic reply that
    starts at its edge; each segment names its channel. The flagged spans of every channel are
    listed, each with its channel.
    """
    if not reports:
        raise ValueError("no channel to combine")
    deciding = max(reports, key=lambda r: (r.label == "fake", r.p_fake))
    probs = np.array([[seg["p_fake"] for seg in r.segments] for r in reports])
    speech = np.array([[seg.get("speech", 1.0) for seg in r.segments] for r in reports])
    best = np.lexsort((probs, np.round(speech, 1)), axis=0)[-1]  # most speech, then highest p_fake
    segments = [{"start": seg["start"], "end": seg["end"], "p_fake": float(probs[best[j], j]),
                 "channel": reports[best[j]].evidence["channel"]} for j, seg in enumerate(reports[0].segments)]
    flagged = sorted(({**span, "channel": r.evidence["channel"]} for r in reports for span in r.evidence["flagged_spans"]),
                     key=lambda span: (span["start"], span["channel"]))
    evidence = {k: v for k, v in deciding.evidence.items() if k != "channel"}
    evidence.update(flagged_spans=flagged, channels={**info, "deciding": deciding.evidence["channel"]})
    return DetectionReport(deciding.p_fake, deciding.label, deciding.threshold, segments, evidence, deciding.model,
                           deciding.duration, channels=list(reports))


def threshold_for_legs(dev: dict[str, Any], condition: str, model_threshold: float, far: float) -> float:
    """The stricter threshold for one leg of a call whose legs are scored apart.

    A recording with ``n`` legs is "fake" when any leg is; with each leg at the model's
    threshold (``far_target`` of dev reals flagged), a real call is flagged up to ``n`` times as
    often. Each leg is therefore held to ``far_target / n`` (``far``): the threshold where the
    checkpoint's dev table ``dev["roc_<condition>"]`` (false-alarm rate at thresholds 0, 0.01,
    ..., 1; ``dev["roc"]`` without it) reaches ``far``, linearly interpolated, never below the
    model's own. A checkpoint calibrated with re-recorded reals (``dev["chain_reals"]``, whose
    thresholds hold on them too) holds each leg to ``far`` on their table of that condition as
    well. Without a table, the model's threshold.
    """
    tables = [dev.get(f"roc_{condition}") or dev.get("roc"), (dev.get("chain_reals") or {}).get(f"roc_{condition}")]
    return max([model_threshold, *(_far_point(roc, far) for roc in tables if roc)])


def _far_point(roc: dict[str, Any], far: float) -> float:
    """The threshold at which a ``{"thresholds", "far"}`` table falls to ``far`` (interpolated; 0
    when it never exceeds ``far``)."""
    grid, rates = np.asarray(roc["thresholds"], np.float64), np.asarray(roc["far"], np.float64)
    above = np.flatnonzero(rates > far)
    if above.size == 0:
        return 0.0
    i = int(above[-1])  # the last grid point still over the rate; the next is at or under it
    if i + 1 >= grid.size:
        return float(grid[-1])
    step = (rates[i] - far) / max(rates[i] - rates[i + 1], 1e-12)
    return float(grid[i] + step * (grid[i + 1] - grid[i]))


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float if it is a probability (0 to 1), else one clear ValueError."""
    if not 0.0 <= threshold <= 1.0:  # also refuses NaN
        raise ValueError(f"threshold {threshold!r} is not a probability; pass a value from 0 to 1")
    return float(threshold)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -50 else 0.0


def high_band_db(wav: np.ndarray, sample_rate: int, max_seconds: float = 60.0) -> float:
    """Share of the spectral energy above :data:`HIGH_BAND_HZ`, in dB (about -80 for a phone
    call resampled to 16 kHz, -30 to -5 for wideband speech), over at most ``max_seconds``.

    Frames of 25 ms with a Hann window; a silent input returns 0.0 (treated as wideband).
    """
    frame = int(0.025 * sample_rate)
    usable = min(np.asarray(wav).size, int(max_seconds * sample_rate)) // frame * frame
    if usable == 0 or sample_rate <= 2 * HIGH_BAND_HZ:
        return 0.0
    frames = np.asarray(wav[:usable], np.float64).reshape(-1, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    total = float(power.sum())
    if total <= 0.0:
        return 0.0
    high = float(power[:, int(np.ceil(HIGH_BAND_HZ * frame / sample_rate)):].sum())
    return float(10.0 * np.log10(max(high / total, 1e-12)))


def window_bounds(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """Windows of ``window`` s every ``hop`` s covering [0, duration]; the last one ends at the end."""
    if duration <= window:
        return [(0.0, duration)]
    starts = list(np.arange(0.0, duration - window, hop)) + [duration - window]
    return [(float(s), float(s) + window) for s in starts]


def window_logits(frame_logits: np.ndarray, frame_seconds: float,
                  bounds: list[tuple[float, float]]) -> np.ndarray:
    """Mean frame logit inside each window (a window's utterance logit, by construction)."""
    cumulative = np.concatenate([[0.0], np.cumsum(frame_logits, dtype=np.float64)])
    out = []
    for start, end in bounds:
        a = min(int(start / frame_seconds), frame_logits.size - 1)
        b = max(a + 1, min(frame_logits.size, int(math.ceil(end / frame_seconds))))
        out.append((cumulative[b] - cumulative[a]) / (b - a))
    return np.asarray(out)


def prepare(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """The detector's input convention: loudness-normalised float32 at the model rate, on the
    16-bit PCM grid.

    The training and calibration recordings are stored as 16-bit files at the model rate, so
    their quietest parts carry 16-bit quantisation noise. A recording resampled here (an 8 kHz
    call) has none, and the Benford statistics of its pauses then differ from anything seen in
    calibration: real 8 kHz prompts scored 4-15 % false alarms for that reason alone. Rounding to
    the same grid removes the difference.
    """
    normalized = loudness_normalize(np.asarray(wav, dtype=np.float32), sample_rate)
    return (np.round(np.clip(normalized, -1.0, 1.0) * 32767.0) / 32767.0).astype(np.float32)


def saliency(module: Detector, wav: torch.Tensor, sample_rate: int) -> dict[str, Any]:
    """Which frequency bands and time spans pushed the utterance logit towards "synthetic".

    Gradient x input of the logit w.r.t. the (B=1, C, N, F) input planes, positive part only,
    summed over the planes (the log filterbank and, for a phase model, the phase planes).

    Returns:
        ``{"bands": [{"low_hz", "high_hz", "share"}], "spans": [{"start", "end", "share"}]}``.
    """
    with torch.enable_grad():
        spec = module.features(wav[None]).detach().requires_grad_(True)
        module.score_features(spec).logits.sum().backward()
    assert spec.grad is not None
    relevance = (spec.grad * spec).detach().clamp(min=0)[0].sum(dim=0).cpu()  # (N, F)
    n_bands = relevance.shape[0]
    centres = (np.arange(n_bands) + 1) / (n_bands + 1) * sample_rate / 2
    per_band = relevance.sum(dim=1).numpy()
    per_frame = relevance.sum(dim=0).numpy()
    if module.artefact is not None:  # the artefact branch's share, over its own log-mel
        branch_centres, branch_band, branch_frame = _artefact_relevance(module, wav)
        centres, per_band = np.concatenate([centres, branch_centres]), np.concatenate([per_band, branch_band])
        length = min(per_frame.size, branch_frame.size)
        per_frame = per_frame[:length] + branch_frame[:length]
    total = float(per_band.sum()) or 1.0
    bands = [{"low_hz": lo, "high_hz": hi,
              "share": round(float(per_band[(centres >= lo) & (centres < hi)].sum()) / total, 4)}
             for lo, hi in BANDS_HZ]
    hop = module.config.hop_length / sample_rate
    step = max(1, int(round(0.5 / hop)))  # 0.5 s spans
    sums = np.add.reduceat(per_frame, np.arange(0, per_frame.size, step))
    top = np.argsort(sums)[::-1][:3]
    spans = [{"start": round(float(i * step * hop), 3), "end": round(float(min(per_frame.size, (i + 1) * step) * hop), 3),
              "share": round(float(sums[i]) / total, 4)} for i in sorted(top)]
    return {"bands": bands, "spans": spans}


def _artefact_relevance(module: Detector, wav: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient x input of the artefact branch's weighted logit over its (M, F) log-mel (each band's
    mean removed), positive part: (band centre frequencies in Hz, relevance per band, per frame)."""
    import librosa

    assert module.artefact is not None
    mel_config = module.artefact.mel
    with torch.enable_grad():
        mel = module.artefact_mel(wav[None]).detach().requires_grad_(True)
        frames = module.artefact.head(module.artefact.features(mel))
        (module.config.artefact_weight * module.artefact_probe(frames).mean()).backward()
    assert mel.grad is not None
    # against each band's mean level over time, as the network's planes are (log-mel levels are
    # mostly negative, so the raw input would flip the gradient's sign in quiet bands)
    baseline = mel - mel.mean(dim=-1, keepdim=True)
    relevance = (mel.grad * baseline).detach().clamp(min=0)[0].cpu()  # (M, F)
    centres = librosa.mel_frequencies(mel_config.n_mels + 2, fmin=mel_config.f_min, fmax=mel_config.f_max,
                                      htk=mel_config.mel_scale == "htk")[1:-1]
    return centres, relevance.sum(dim=1).numpy(), relevance.sum(dim=0).numpy()


CHUNK_SECONDS = 600.0
"""Inputs longer than this are scored in pieces of this length (memory stays bounded)."""
CHUNK_OVERLAP_SECONDS = 2.0
"""Audio on each side of a piece that its network pass sees, then drops (no edge effects)."""


def network_scores(module: Detector, wav: torch.Tensor, chunk_seconds: float = CHUNK_SECONDS) -> tuple[float, np.ndarray]:
    """(T,) prepared waveform -> (utterance logit, (F',) frame logits every ``frame_hop`` samples).

    A recording up to ``chunk_seconds`` long is one network pass, as in training and
    calibration. A longer one (an hour-long call) is scored in pieces of ``chunk_seconds``, each
    seen with :data:`CHUNK_OVERLAP_SECONDS` of context on both sides: its frame logits are the
    pieces' frames end to end (the same count as one pass), and its utterance logit is their
    mean, as the network's own is. Each piece removes its own per-band means, so a long call is
    normalised per 10 minutes instead of over its whole length.
    """
    hop = module.config.frame_hop
    chunk = int(chunk_seconds * module.config.sample_rate) // hop * hop
    if wav.numel() <= chunk or chunk <= 0:
        with torch.inference_mode():
            out = module(wav[None])
        return float(out.logits[0]), out.frame_logits[0].cpu().numpy().astype(np.float64)
    overlap = int(CHUNK_OVERLAP_SECONDS * module.config.sample_rate) // hop * hop
    total = num_model_frames(wav.numel(), module.config)
    pieces = []
    for start in range(0, wav.numel(), chunk):
        first = max(0, start - overlap)
        with torch.inference_mode():
            out = module(wav[first : start + chunk + overlap][None])
        skip = (start - first) // hop
        pieces.append(out.frame_logits[0, skip : skip + min(chunk // hop, total - start // hop)].cpu().numpy())
    frames = np.concatenate(pieces).astype(np.float64)
    return float(frames.mean()), frames


def detect_waveform(module: Detector, wav: np.ndarray, calibration: Calibration, model: dict[str, str],
                    window: float = 1.5, hop: float = 0.5, evidence: bool = True,
                    kept: list[tuple[int, int]] | None = None, original_length: int | None = None) -> DetectionReport:
    """Scores one (T,) waveform at the model rate (already through :func:`prepare`).

    Args:
        module: the detector in eval mode.
        window / hop: segment timeline window and hop, seconds.
        evidence: compute saliency (one backward pass over at most 30 s).
        kept: when ``wav`` is a call leg with its long silences cut out (:func:`voicefake.audio.legs.leg_speech`),
            the original sample intervals it was joined from, and ``original_length`` the
            leg's length in samples: the timeline and the saliency spans are then laid out on
            the original recording's time axis, and windows with none of this leg's speech
            score 0; each window also gets ``speech``, the share of it that was scored.
    """
    rate = module.config.sample_rate
    tensor = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(next(module.parameters()).device)
    logit, frames = network_scores(module, tensor)
    frame_seconds = module.config.frame_hop / rate
    if kept is None:
        duration = wav.size / rate
        bounds = window_bounds(duration, window, hop)
        seg_p = calibration.segment_probability(window_logits(frames, frame_seconds, bounds))
    else:
        if original_length is None:
            raise ValueError("original_length (the leg's length in samples) is needed with kept")
        duration = original_length / rate
        bounds = window_bounds(duration, window, hop)
        times = to_original_time((np.arange(frames.size) + 0.5) * frame_seconds, kept, rate)
        seg_p, speech = np.zeros(len(bounds)), np.zeros(len(bounds))
        for index, (start, end) in enumerate(bounds):
            inside = (times >= start) & (times < end)
            speech[index] = min(1.0, inside.sum() * frame_seconds / max(end - start, 1e-9))
            if inside.any():
                seg_p[index] = calibration.segment_probability(np.array([frames[inside].mean()]))[0]
    stats = benford_stats(wav)
    p_fake = calibration.file_probability(logit, stats)
    high_band = high_band_db(wav, rate)
    threshold, segment_threshold = calibration.thresholds(high_band)
    segments = [{"start": round(a, 3), "end": round(b, 3), "p_fake": round(float(p), 4)}
                for (a, b), p in zip(bounds, seg_p, strict=True)]
    if kept is not None:  # how much of each window is this leg's speech (its turns)
        for segment, share in zip(segments, speech, strict=True):
            segment["speech"] = round(float(share), 3)
    info: dict[str, Any] = {
        "network_logit": round(logit, 4),
        "far_target": calibration.far_target,
        "segment_threshold": round(segment_threshold, 4),
        "flagged_spans": flagged_spans(bounds, seg_p, segment_threshold),
        "bandwidth": {"high_band_db": round(high_band, 1),
                      "condition": "narrowband" if calibration.is_narrowband(high_band) else "wideband",
                      "narrowband_below_db": calibration.narrowband_below_db},
        "benford": {**stats.to_dict(), "reference_range_real": {k: list(v) for k, v in calibration.benford_range.items()}},
    }
    if kept is not None:
        info["scored_seconds"] = round(wav.size / rate, 3)
    speech_s = float(sum(end - start for start, end in speech_regions(wav, rate)))
    info["speech_seconds"] = round(speech_s, 2)
    if speech_s < SHORT_SPEECH_S:
        info["caution"] = (f"only {speech_s:.1f} s of speech: on unknown voices, recordings of one or two short "
                           "prompts (3.5-7.3 s) were flagged 0-2.2 % of the time at the model's threshold (the "
                           "target is 1 %), against 0-0.5 % from 15 s on; weigh a 'fake' here with other evidence")
    if evidence:
        own_bounds, own_p = bounds, seg_p  # windows on this waveform's own time axis
        if kept is not None:
            own_bounds = window_bounds(wav.size / rate, window, hop)
            own_p = calibration.segment_probability(window_logits(frames, frame_seconds, own_bounds))
        part, offset = _most_suspicious(tensor, own_bounds, own_p, rate)
        found = saliency(module, part, rate)
        for span in found["spans"]:
            a, b = span["start"] + offset, span["end"] + offset
            if kept is not None:
                a, b = (float(t) for t in to_original_time(np.array([a, b - 1e-6]), kept, rate))
            span["start"], span["end"] = round(a, 3), round(b, 3)
        info["saliency"] = found
    label = "fake" if p_fake >= threshold else "real"
    return DetectionReport(round(p_fake, 4), label, round(threshold, 4), segments, info, model, round(duration, 3))


def _most_suspicious(wav: torch.Tensor, bounds: list[tuple[float, float]], probs: np.ndarray,
                     rate: int) -> tuple[torch.Tensor, float]:
    """The whole file, or the 30 s around its most suspicious window when longer; with its start (s)."""
    if wav.numel() <= SALIENCY_MAX_SECONDS * rate:
        return wav, 0.0
    start, end = bounds[int(np.argmax(probs))]
    centre = 0.5 * (start + end)
    a = int(max(0.0, min(centre - SALIENCY_MAX_SECONDS / 2, wav.numel() / rate - SALIENCY_MAX_SECONDS)) * rate)
    return wav[a : a + int(SALIENCY_MAX_SECONDS * rate)], a / rate


def flagged_spans(bounds: list[tuple[float, float]], probs: np.ndarray, threshold: float) -> list[dict[str, float]]:
    """Merged time spans of windows at or above ``threshold``."""
    spans: list[dict[str, float]] = []
    for (start, end), p in zip(bounds, probs, strict=True):
        if p < threshold:
            continue
        if spans and start <= spans[-1]["end"]:
            spans[-1]["end"] = round(end, 3)
        else:
            spans.append({"start": round(start, 3), "end": round(end, 3)})
    return spans


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, steps: int = 200) -> tuple[np.ndarray, float]:
    """Class-balanced L2-regularised logistic regression (Newton's method).

    Classes are weighted equally, so the fitted probabilities assume a 50 % prior of fakes.

    Args:
        features: (N, K) inputs; labels: (N,) 0/1.

    Returns:
        (weights (K,), bias).
    """
    x = np.concatenate([np.asarray(features, np.float64), np.ones((len(features), 1))], axis=1)
    y = np.asarray(labels, np.float64)
    sample_weight = np.where(y > 0, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    theta = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not regularised
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -50, 50)))
        grad = x.T @ (sample_weight * (p - y)) + penalty @ theta
        hessian = (x * (sample_weight * p * (1 - p))[:, None]).T @ x + penalty
        delta = np.linalg.solve(hessian + 1e-9 * np.eye(x.shape[1]), grad)
        theta -= delta
        if np.abs(delta).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


@dataclass(frozen=True)
class ThresholdCheck:
    """Real recordings that the thresholds must also hold on, but that take no part in the
    fusion or the Platt scaling: e.g. dev real speech re-recorded through simulated
    recording chains (``recipes/detection/calibrate.py --chain-reals``), a stand-in for the
    chains of speech the detector never heard.

    Attributes:
        logits / benford / narrowband: (M,), (M, 2) :func:`benford_features` and (M,) bool,
            as in :func:`fit_calibration`.
        window_logits / window_narrowband: (V,) and (V,) bool, their timeline windows.
    """

    logits: np.ndarray
    benford: np.ndarray
    narrowband: np.ndarray
    window_logits: np.ndarray
    window_narrowband: np.ndarray


def fit_calibration(logits: np.ndarray, benford: np.ndarray, labels: np.ndarray, window_logits: np.ndarray,
                    window_labels: np.ndarray, real_stats: np.ndarray, far_target: float = 0.01,
                    use_benford: bool = True, narrowband: np.ndarray | None = None,
                    window_narrowband: np.ndarray | None = None, narrowband_below_db: float | None = None,
                    min_narrowband_real: int = 100, check: ThresholdCheck | None = None) -> Calibration:
    """Fits fusion, Platt scaling and thresholds on dev scores.

    Args:
        logits: (N,) network utterance logits of dev recordings.
        benford: (N, 2) :func:`benford_features` of the same recordings.
        labels: (N,) 1 = synthetic.
        window_logits / window_labels: timeline windows of dev recordings (real and fake).
        real_stats: (R, 2) raw Benford divergences of dev real speech (reference range).
        far_target: false-alarm rate on dev real recordings/windows for the thresholds.
        use_benford: fuse the Benford features (else weights 0 for them).
        narrowband / window_narrowband: (N,) and (W,) booleans, the recordings (and their
            windows) whose :func:`high_band_db` is below ``narrowband_below_db``. With them, and
            at least ``min_narrowband_real`` real recordings on each side, the narrowband
            thresholds are fitted on the narrowband recordings alone and ``threshold`` /
            ``segment_threshold`` on the others (fusion and Platt scaling stay shared).
        check: more real recordings; each threshold is then the higher of the one at
            ``far_target`` on the dev reals and the one at ``far_target`` on the check's
            recordings (or windows) of the same band, where the check has at least
            ``min_narrowband_real`` of them: at most ``far_target`` false alarms on each.
    """
    inputs = np.concatenate([logits[:, None], benford], axis=1) if use_benford else logits[:, None]
    weights, bias = fit_logistic(inputs, labels)
    if not use_benford:
        weights = np.concatenate([weights, [0.0, 0.0]])
    fused = 1 / (1 + np.exp(-(np.concatenate([logits[:, None], benford], axis=1) @ weights + bias)))
    seg_w, seg_b = fit_logistic(window_logits[:, None], window_labels)
    seg_p = 1 / (1 + np.exp(-(seg_w[0] * window_logits + seg_b)))
    real, window_real = labels == 0, window_labels == 0
    wide, window_wide = np.ones(labels.size, bool), np.ones(window_labels.size, bool)
    narrow: dict[str, float] = {}
    split = narrowband is not None and window_narrowband is not None and narrowband_below_db is not None \
        and min(int((narrowband & real).sum()), int((~narrowband & real).sum())) >= min_narrowband_real
    if check is not None:
        check_p = 1 / (1 + np.exp(-(np.concatenate([check.logits[:, None], check.benford], axis=1) @ weights + bias)))
        check_seg = 1 / (1 + np.exp(-(seg_w[0] * check.window_logits + seg_b)))

    def held(threshold: float, band: str, window: bool) -> float:
        """``threshold``, raised to the check's own where it has enough recordings in ``band``."""
        if check is None:
            return threshold
        probs, flags = (check_seg, check.window_narrowband) if window else (check_p, check.narrowband)
        keep = np.ones(probs.size, bool) if not split else (flags if band == "narrow" else ~flags)
        if int(keep.sum()) < min_narrowband_real:
            return threshold
        return max(threshold, threshold_for_far(probs[keep], far_target))

    if split:
        assert narrowband is not None and window_narrowband is not None and narrowband_below_db is not None
        wide, window_wide = ~narrowband, ~window_narrowband
        narrow = {"narrowband_below_db": float(narrowband_below_db),
                  "narrowband_threshold": held(threshold_for_far(fused[narrowband & real], far_target), "narrow", False),
                  "narrowband_segment_threshold": held(threshold_for_far(seg_p[window_narrowband & window_real],
                                                                         far_target), "narrow", True)}
    return Calibration(
        weights=(float(weights[0]), float(weights[1]), float(weights[2])), bias=bias,
        segment_scale=float(seg_w[0]), segment_bias=seg_b,
        threshold=held(threshold_for_far(fused[wide & real], far_target), "wide", False),
        segment_threshold=held(threshold_for_far(seg_p[window_wide & window_real], far_target), "wide", True),
        far_target=far_target,
        benford_range={name: (round(float(np.percentile(real_stats[:, i], 1)), 5),
                              round(float(np.percentile(real_stats[:, i], 99)), 5))
                       for i, name in enumerate(("divergence", "pause_divergence"))},
        **narrow,  # type: ignore[arg-type]
    )


def threshold_for_far(real_probs: np.ndarray, far_target: float) -> float:
    """Smallest threshold at which at most ``far_target`` of real scores are >= it (>= 0.5)."""
    ordered = np.sort(np.asarray(real_probs, np.float64))[::-1]
    allowed = int(np.floor(far_target * ordered.size))
    # the threshold sits just above the (allowed+1)-th highest real score
    above = ordered[allowed] if allowed < ordered.size else 0.0
    return float(min(max(np.nextafter(above, 1.0), 0.5), 1.0))


@dataclass
class Scored:
    """Raw scores of one recording (before calibration), for calibration and benchmarks."""

    logit: float
    frame_logits: np.ndarray
    benford: BenfordStats
    duration: float
    high_band: float = 0.0


def score_recording(module: Detector, wav: np.ndarray) -> Scored:
    """Network logit, frame logits and Benford statistics of one (T,) waveform at the model rate."""
    rate = module.config.sample_rate
    prepared = prepare(wav, rate)
    tensor = torch.from_numpy(prepared).to(next(module.parameters()).device)
    logit, frames = network_scores(module, tensor)
    return Scored(logit, frames, benford_stats(prepared), prepared.size / rate, high_band_db(prepared, rate))


def windows_of(scored: Scored, module: Detector, window: float = 1.5, hop: float = 0.5) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Timeline windows of a scored recording and their network logits."""
    bounds = window_bounds(scored.duration, window, hop)
    frame_seconds = module.config.frame_hop / module.config.sample_rate
    return bounds, window_logits(scored.frame_logits, frame_seconds, bounds)


def calibrate_scored(module: Detector, scored: list[Scored], labels: np.ndarray, far_target: float = 0.01,
                     use_benford: bool = True, narrowband_below_db: float | None = NARROWBAND_BELOW_DB,
                     check_real: list[Scored] | None = None) -> Calibration:
    """Fits a :class:`Calibration` from scored dev recordings (labels: 1 = synthetic); with
    ``narrowband_below_db`` (None: off), narrowband input gets its own thresholds. With
    ``check_real`` (scored real recordings), every threshold also holds ``far_target`` on
    them (:class:`ThresholdCheck`)."""
    from voicefake.detection.benford import benford_features as features

    check = None
    if check_real:
        check_windows = [windows_of(item, module)[1] for item in check_real]
        check_narrow = np.array([narrowband_below_db is not None and s.high_band < narrowband_below_db for s in check_real])
        check = ThresholdCheck(
            logits=np.array([s.logit for s in check_real]), benford=np.stack([features(s.benford) for s in check_real]),
            narrowband=check_narrow, window_logits=np.concatenate(check_windows),
            window_narrowband=np.concatenate([np.full(w.size, n) for w, n in zip(check_windows, check_narrow, strict=True)]))
    labels = np.asarray(labels)
    logits = np.array([s.logit for s in scored])
    feats = np.stack([features(s.benford) for s in scored])
    win_logits, win_labels, win_narrow = [], [], []
    narrow = np.array([narrowband_below_db is not None and s.high_band < narrowband_below_db for s in scored])
    for item, label, is_narrow in zip(scored, labels, narrow, strict=True):
        _, logit_windows = windows_of(item, module)
        win_logits.append(logit_windows)
        win_labels.append(np.full(logit_windows.size, label))
        win_narrow.append(np.full(logit_windows.size, is_narrow))
    raw = np.array([[s.benford.divergence, s.benford.pause_divergence] for s, y in zip(scored, labels, strict=True) if y == 0])
    return fit_calibration(logits, feats, labels, np.concatenate(win_logits), np.concatenate(win_labels),
                           raw, far_target, use_benford, narrow, np.concatenate(win_narrow), narrowband_below_db,
                           check=check)


def score_against_truth(
    report: DetectionReport, truth: list[dict[str, Any]], resolution: float = 0.1,
) -> dict[str, float | str]:
    """Localisation of a report's timeline against ground-truth segments.

    A time tick (every ``resolution`` s) counts as flagged when the window centred nearest
    to it has ``p_fake >= segment_threshold``.

    Args:
        truth: ``[{"start", "end", "speaker", "label": "real"|"fake"}]`` (seconds).

    Returns:
        fake_seconds, found_fake_seconds, fake_recall, real_seconds, false_alarm_seconds,
        false_alarm_seconds_per_minute, file_truth ("fake" if any fake segment), file_label.
        For a stereo call whose truth segments and report windows both name their ``channel``
        (a ``recording: stereo`` scenario, legs scored apart), also
        ``found_fake_seconds_on_its_channel``: fake seconds whose flagged window is from the
        fake segment's own leg.
    """
    for seg in truth:
        if seg.get("label") not in ("real", "fake") or not seg.get("end", 0) > seg.get("start", -1):
            raise ValueError(f"bad ground-truth segment {seg}: need start < end and label real/fake")
    ticks = np.arange(0.0, report.duration, resolution) + resolution / 2
    fake = np.zeros(ticks.size, bool)
    known = np.zeros(ticks.size, bool)
    for seg in truth:
        inside = (ticks >= seg["start"]) & (ticks < seg["end"])
        known |= inside
        fake |= inside & (seg["label"] == "fake")
    centres = np.array([0.5 * (s["start"] + s["end"]) for s in report.segments])
    probs = np.array([s["p_fake"] for s in report.segments])
    nearest = np.abs(ticks[:, None] - centres[None]).argmin(axis=1)
    flagged = probs[nearest] >= report.evidence["segment_threshold"]
    real = known & ~fake
    fake_s, real_s = fake.sum() * resolution, real.sum() * resolution
    false_s = (flagged & real).sum() * resolution
    extra = {}
    if all("channel" in seg for seg in truth) and all("channel" in seg for seg in report.segments):
        leg = np.array([seg["channel"] for seg in report.segments])[nearest]
        own = np.zeros(ticks.size, bool)  # a fake segment's tick, flagged by a window of its own leg
        for seg in truth:
            if seg["label"] == "fake":
                own |= (ticks >= seg["start"]) & (ticks < seg["end"]) & (leg == seg["channel"])
        extra["found_fake_seconds_on_its_channel"] = round(float((flagged & own).sum() * resolution), 2)
    return {
        "fake_seconds": round(float(fake_s), 2),
        "found_fake_seconds": round(float((flagged & fake).sum() * resolution), 2),
        "fake_recall": round(float((flagged & fake).sum() / max(fake.sum(), 1)), 4),
        "real_seconds": round(float(real_s), 2),
        "false_alarm_seconds": round(float(false_s), 2),
        "false_alarm_seconds_per_minute": round(float(false_s / max(real_s / 60, 1e-9)), 3),
        "file_truth": "fake" if fake.any() else "real",
        "file_label": report.label,
        **extra,
    }
