"""Vocoder benchmark: copy-synthesis quality on unseen speakers, and CPU speed.

    PYTHONPATH=. VOICEFAKE_DATA=../shared/data python benchmarks/vocoder.py quality --per-speaker 3
    PYTHONPATH=. python benchmarks/vocoder.py speed
    PYTHONPATH=. VOICEFAKE_DATA=../shared/data python benchmarks/vocoder.py detect --per-speaker 3
    PYTHONPATH=. VOICEFAKE_DATA=../shared/data python benchmarks/vocoder.py refine --phase-iterations 1 2 4 8 16
    PYTHONPATH=. VOICEFAKE_DATA=../shared/data python benchmarks/vocoder.py dnsmos --per-speaker 10 --phase-iterations 12 16
    PYTHONPATH=. VOICEFAKE_DATA=../shared/data python benchmarks/vocoder.py variants

``--vocoder DIR`` measures another checkpoint (an exported one, e.g. a candidate before it
replaces the bundled model); ``--systems`` picks a subset (a quick check of a candidate:
``--systems vocoder``). Two diagnostic systems (Vocos head only) split the error between the
two halves of the head's prediction: ``true-phase`` (the vocoder's magnitude with the real
STFT phase) and ``true-mag`` (the real STFT magnitude with the vocoder's phase).
``--phase-iterations N [N ...]`` measures the vocoder at each setting of its phase refinement
(quality and speed; default: the checkpoint's own setting), side by side in one run.
``--precision P [P ...]`` does the same for the network's arithmetic (``auto``, ``float32``,
``bfloat16``; :mod:`voicefake.nn.precision`); in ``speed`` the random-weight generators run at
each precision too. Row names carry the precision that ran.

Quality: LibriSpeech test-other speakers (never trained on) and held-out VCTK utterances,
first 6 s of each, through (a) the bundled vocoder, (b) Griffin-Lim (64 iterations) on the same
mel, (c) WORLD analysis-synthesis (pyworld). Metrics against the original: PESQ wideband, STOI,
log-mel L1 (MEL_16K_80), MCD (dB, 13 MFCCs without c0 from the same mel; an MFCC-based
approximation of mel-cepstral distortion, no time warping since copy-synthesis is aligned) and
DNSMOS overall (no reference).
Detect: the same utterances and systems through the bundled detector (``voicefake detect``):
mean p_fake and the share flagged at its default threshold, so a change of the vocoder's
output that the detector no longer recognises shows up here.
Speed: times real time for 10 s of audio from a mel, 1 and 2 threads, bundled model against
random-weight HiFi-GAN V1 / V3 and Vocos-base generators at the same 16 kHz / hop 160 setting.
Refine: the phase refinement alone on 10 s of held-out speech, one thread: the shipped code
against the same computation written with torch's built-ins (``refine_reference``), interleaved
in one process (best of 15), with the largest difference between their waveforms.
DNSMOS: the vocoder against Griffin-Lim-64 from ``--seeds`` random starts, paired per utterance
(mean difference, standard error, share of utterances where the vocoder scores higher).
Variants: other phase-retrieval updates and settings (``VARIANTS``: fast Griffin-Lim's momentum
and re-matching, RAAR), written with torch's built-ins, from the network's STFT, on 20 held-out
utterances that the quality benchmark does not read (``dev_files(2, skip=3)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicefake import api  # noqa: E402
from voicefake.audio.features import MEL_16K_80, MelSpectrogram, stft  # noqa: E402
from voicefake.audio.io import load_audio  # noqa: E402
from voicefake.data.manifests import data_root, read_manifest  # noqa: E402
from voicefake.nn.precision import autocast, compute_dtype, dtype_name  # noqa: E402
from voicefake.vocoder.model import Vocoder, VocoderConfig  # noqa: E402

SR = 16000


def dev_files(per_speaker: int, skip: int = 0) -> list[Path]:
    """Held-out files (LibriSpeech test-other, VCTK utterances 023-024): each speaker's
    ``per_speaker`` files after its first ``skip``. ``skip=3`` gives files that the quality
    benchmark (``--per-speaker 3``) does not read: test-other only, as VCTK holds out two."""
    root = data_root()
    rows = read_manifest(root / "manifest.csv")
    picked: dict[str, list[Path]] = defaultdict(list)
    for row in rows:
        held_vctk = row.folder == "vctk_autovc" and Path(row.path).stem.split("_")[1] in {"023", "024"}
        if "/test-other/" in row.path or held_vctk:
            picked[row.speaker].append(root / row.path)
    return [p for paths in picked.values() for p in paths[skip : skip + per_speaker]]


def griffin_lim(mel: torch.Tensor, seed: int | None = None) -> np.ndarray:
    """Griffin-Lim, 64 iterations, on librosa's inverse of the mel (``mel_to_audio``'s steps),
    from a random initial phase: drawn from ``seed``, or from fresh entropy when it is None."""
    import librosa

    m = MEL_16K_80
    magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(mel.numpy()), sr=SR, n_fft=m.n_fft, power=1.0, fmin=m.f_min, fmax=m.f_max)
    return librosa.griffinlim(magnitude, n_iter=64, hop_length=m.hop_length, win_length=m.win_length,
                              n_fft=m.n_fft, random_state=seed).astype(np.float32)


def world(wav: np.ndarray) -> np.ndarray:
    import pyworld

    x = wav.astype(np.float64)
    f0, t = pyworld.harvest(x, SR)
    sp = pyworld.cheaptrick(x, f0, t, SR)
    ap = pyworld.d4c(x, f0, t, SR)
    return pyworld.synthesize(f0, sp, ap, SR).astype(np.float32)


def metrics(ref: np.ndarray, out: np.ndarray, mel_fn: MelSpectrogram) -> dict[str, float]:
    from pesq import pesq
    from pystoi import stoi
    from speechmos import dnsmos

    n = min(len(ref), len(out))
    ref, out = ref[:n], out[:n]
    mel_ref, mel_out = mel_fn(torch.from_numpy(ref)), mel_fn(torch.from_numpy(out))
    dct = torch.from_numpy(_dct(80, 14))
    c_ref, c_out = dct @ mel_ref, dct @ mel_out
    mcd = 10 / np.log(10) * torch.sqrt(2 * ((c_ref[1:] - c_out[1:]) ** 2).sum(0)).mean()
    return {
        "pesq_wb": float(pesq(SR, ref, out, "wb")),
        "stoi": float(stoi(ref, out, SR)),
        "mel_l1": float((mel_ref - mel_out).abs().mean()),
        "mcd_db": float(mcd),
        "dnsmos_ovr": float(dnsmos.run(np.clip(out, -1, 1), SR)["ovrl_mos"]),
    }


def _dct(n_in: int, n_out: int) -> np.ndarray:
    k, n = np.arange(n_out)[:, None], np.arange(n_in)[None]
    mat = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2 / n_in)
    mat[0] /= np.sqrt(2)
    return mat.astype(np.float32)


SYSTEMS = ("vocoder", "griffin-lim", "world", "original")
DIAGNOSTICS = ("true-phase", "true-mag")
NAMES = {
    "vocoder": "voicefake-vocoder", "griffin-lim": "griffin-lim-64", "world": "world",
    "original": "original (ceiling)", "true-phase": "diagnostic: vocoder magnitude + real phase",
    "true-mag": "diagnostic: real magnitude + vocoder phase",
}


def synthesize(system: str, mel: torch.Tensor, wav: np.ndarray, vocoder: str,
               iterations: int | None = None, precision: str = "auto") -> np.ndarray:
    """One system's output for the utterance ``wav`` (whose mel is ``mel``)."""
    if system == "vocoder":
        return api.vocode(mel, vocoder, phase_iterations=iterations, precision=precision).numpy()
    if system == "griffin-lim":
        return griffin_lim(mel)
    if system == "world":
        return world(wav)
    if system in DIAGNOSTICS:
        return oracle(mel, wav, vocoder, "mag" if system == "true-phase" else "phase")
    return wav


def oracle(mel: torch.Tensor, wav: np.ndarray, vocoder: str, keep: str) -> np.ndarray:
    """The vocoder's STFT prediction with one half replaced by the real audio's.

    keep: "mag" (predicted magnitude, real phase) or "phase" (real magnitude, predicted phase).
    """
    gen = api.load(vocoder).module.generator
    with torch.no_grad():
        log_mag, phase = gen.spectrum(mel[None])
        real = stft(torch.from_numpy(wav), gen.n_fft, gen.hop_length, gen.n_fft)[None]
        frames = min(real.shape[-1], phase.shape[-1])
        log_mag, phase, real = log_mag[..., :frames], phase[..., :frames], real[..., :frames]
        if keep == "mag":
            out = gen.synthesize(log_mag, torch.angle(real))
        else:
            out = gen.synthesize(torch.log(real.abs().clamp_min(1e-7)), phase)
    return out[0].clamp(-1, 1).numpy()


def vocoder_name(iterations: int | None, precision: str = "auto") -> str:
    settings = ([] if iterations is None else [f"phase iterations {iterations}"]) + [
        dtype_name(compute_dtype(precision))]
    return f"{NAMES['vocoder']} ({', '.join(settings)})"


def outputs(per_speaker: int, seconds: float, vocoder: str, systems: tuple[str, ...],
            iterations: tuple[int | None, ...], precisions: tuple[str, ...] = ("auto",),
            ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(system name, original, that system's copy) for every held-out utterance and system."""
    torch.set_num_threads(2)
    mel_fn = MelSpectrogram(MEL_16K_80)
    files = dev_files(per_speaker)
    for i, path in enumerate(files):
        wav = load_audio(path, SR)[: int(seconds * SR)]
        mel = mel_fn(torch.from_numpy(wav))
        for key in systems:
            settings = [(n, p) for n in iterations for p in precisions] if key == "vocoder" else [(None, "auto")]
            for n, p in settings:
                name = vocoder_name(n, p) if key == "vocoder" else NAMES[key]
                yield name, wav, synthesize(key, mel, wav, vocoder, n, p)
        print(f"[{i + 1}/{len(files)}] {path.name}", file=sys.stderr)


def quality(per_speaker: int, seconds: float, vocoder: str = "vocoder",
            systems: tuple[str, ...] = SYSTEMS, iterations: tuple[int | None, ...] = (None,),
            precisions: tuple[str, ...] = ("auto",)) -> dict[str, dict[str, float]]:
    mel_fn = MelSpectrogram(MEL_16K_80)
    scores: dict[str, list[dict[str, float]]] = defaultdict(list)
    for name, wav, out in outputs(per_speaker, seconds, vocoder, systems, iterations, precisions):
        scores[name].append(metrics(wav, out, mel_fn))
    return {name: {k: float(np.mean([s[k] for s in rows])) for k in rows[0]} | {"n": len(rows)}
            for name, rows in scores.items()}


def dnsmos_paired(per_speaker: int, seconds: float, vocoder: str = "vocoder",
                  iterations: tuple[int | None, ...] = (None,), seeds: int = 3) -> dict[str, dict[str, float]]:
    """DNSMOS of each vocoder setting against Griffin-Lim-64, paired per utterance.

    Griffin-Lim starts from a random phase, and its DNSMOS moves with that start by more than the
    differences measured here; so it runs from ``seeds`` starts, and each setting is compared
    with their mean on the same utterance: mean difference, its standard error, and the share of
    utterances where the vocoder scores higher.
    """
    from speechmos import dnsmos

    def score(wav: np.ndarray) -> float:
        return float(dnsmos.run(np.clip(wav, -1, 1), SR)["ovrl_mos"])

    torch.set_num_threads(2)
    mel_fn = MelSpectrogram(MEL_16K_80)
    rows: dict[str, list[float]] = defaultdict(list)
    files = dev_files(per_speaker)
    for i, path in enumerate(files):
        wav = load_audio(path, SR)[: int(seconds * SR)]
        mel = mel_fn(torch.from_numpy(wav))
        for n in iterations:
            rows[vocoder_name(n)].append(score(api.vocode(mel, vocoder, phase_iterations=n).numpy()))
        for seed in range(seeds):
            rows[f"{NAMES['griffin-lim']} (seed {seed})"].append(score(griffin_lim(mel, seed)))
        print(f"[{i + 1}/{len(files)}] {path.name}", file=sys.stderr)
    scores = {name: np.array(values) for name, values in rows.items()}
    reference = np.mean([scores[f"{NAMES['griffin-lim']} (seed {seed})"] for seed in range(seeds)], axis=0)
    out: dict[str, dict[str, float]] = {}
    for name, values in scores.items():
        out[name] = {"dnsmos_ovr": float(values.mean()), "n": len(values)}
        if name.startswith(NAMES["vocoder"]):
            diff = values - reference
            out[name] |= {"minus_griffin_lim": float(diff.mean()),
                          "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
                          "share_higher": float((diff > 0).mean())}
    return out


def detectability(per_speaker: int, seconds: float, vocoder: str = "vocoder",
                  systems: tuple[str, ...] = SYSTEMS, iterations: tuple[int | None, ...] = (None,),
                  detector: str = "detection", precisions: tuple[str, ...] = ("auto",),
                  ) -> dict[str, dict[str, float]]:
    """The bundled detector's verdicts on each system's copy-synthesis of the held-out utterances."""
    scores: dict[str, list[float]] = defaultdict(list)
    flagged: dict[str, list[bool]] = defaultdict(list)
    for name, _, out in outputs(per_speaker, seconds, vocoder, systems, iterations, precisions):
        report = api.detect(out, detector, evidence=False)
        scores[name].append(report.p_fake)
        flagged[name].append(report.label == "fake")
    return {name: {"mean_p_fake": float(np.mean(scores[name])), "flagged": float(np.mean(flagged[name])),
                   "n": len(scores[name])} for name in scores}


def speed(seconds: float = 10.0, repeats: int = 3, vocoder: str | tuple[str, ...] = "vocoder",
          iterations: tuple[int | None, ...] = (None,),
          precisions: tuple[str, ...] = ("auto",)) -> dict[str, dict[str, float]]:
    """Times real time of each model at each precision, 1 and 2 threads, in one run (best of ``repeats``)."""
    frames = int(seconds * SR / MEL_16K_80.hop_length) + 1
    mel = torch.randn(1, MEL_16K_80.n_mels, frames)
    vocoders = (vocoder,) if isinstance(vocoder, str) else vocoder
    dtypes = {p: compute_dtype(p) for p in precisions}
    models: dict[str, tuple[torch.nn.Module, torch.dtype]] = {}
    for p, dtype in dtypes.items():
        models |= {f"{vocoder_name(n, p)} ({path})": (_Fixed(api.load(path).module, n), dtype)
                   for path in vocoders for n in iterations}
    for dtype in dtypes.values():
        models |= {
            f"vocos-base (random, {dtype_name(dtype)})": (Vocoder(VocoderConfig.vocos_base(), MEL_16K_80).eval(), dtype),
            f"hifigan-v1 (random, {dtype_name(dtype)})": (Vocoder(VocoderConfig.hifigan_v1(), MEL_16K_80).eval(), dtype),
            f"hifigan-v3 (random, {dtype_name(dtype)})": (Vocoder(VocoderConfig.hifigan_v3(), MEL_16K_80).eval(), dtype),
        }
    out: dict[str, dict[str, float]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, (model, dtype) in models.items():
            with torch.inference_mode(), autocast(dtype):
                model(mel[..., :50])
                best = min(_time(model, mel) for _ in range(repeats))
            out.setdefault(name, {})[f"x_real_time_{threads}t"] = seconds / best
            out[name]["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    return out


def refine_reference(log_mag: torch.Tensor, phase: torch.Tensor, log_mel: torch.Tensor, iterations: int,
                     momentum: float = 0.99, rematch_from: int | None = None) -> torch.Tensor:
    """The refinement written with torch's built-ins (torch.polar, torch.istft, torch.sgn,
    three-operation momentum, filters made per call): what ``voicefake.vocoder.phase.refine``
    computes, as it was written before its CPU fast paths (session 17). ``rematch_from``: the
    first iteration that re-matches the mel (default: the shipped ``REMATCH_FROM``)."""
    from voicefake.vocoder.phase import REMATCH_FROM

    mag, filters, consistent, finish = _reference_parts(log_mag, phase, log_mel)
    rematch_from = REMATCH_FROM if rematch_from is None else rematch_from
    spec, previous = torch.polar(mag, phase), None
    for index in range(iterations):
        rebuilt = consistent(spec)
        step = rebuilt if previous is None else rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        if index >= rematch_from:
            mag = match_mel_once(rebuilt.abs(), log_mel, filters)
        spec = torch.sgn(step).mul_(mag)
    return finish(spec)


def raar_reference(log_mag: torch.Tensor, phase: torch.Tensor, log_mel: torch.Tensor, iterations: int,
                   beta: float, rematch_from: int | None = None) -> torch.Tensor:
    """The same refinement with RAAR (relaxed averaged alternating reflections; Peer, Welker and
    Gerkmann, IWAENC 2022) in place of fast Griffin-Lim: x <- beta (P_C(2 P_A x - x) - P_A x + x)
    + (1 - beta) P_A x, with P_A the magnitude projection and P_C the consistency projection;
    the output is the inverse STFT of P_A x. A tried alternative (docs/benchmarks/vocoder.md,
    session 22), not shipped."""
    from voicefake.vocoder.phase import REMATCH_FROM

    mag, filters, consistent, finish = _reference_parts(log_mag, phase, log_mel)
    rematch_from = REMATCH_FROM if rematch_from is None else rematch_from
    x = torch.polar(mag, phase)
    for index in range(iterations):
        projected = torch.sgn(x) * mag
        rebuilt = consistent(2 * projected - x)
        if index >= rematch_from:
            mag = match_mel_once(rebuilt.abs(), log_mel, filters)
        x = beta * (rebuilt - projected + x) + (1 - beta) * projected
    return finish(torch.sgn(x) * mag)


def _reference_parts(log_mag: torch.Tensor, phase: torch.Tensor, log_mel: torch.Tensor) -> tuple[Any, ...]:
    """What the reference refinements share: the mel-matched magnitude, the head's filters, the
    consistency projection and the final inverse STFT (torch built-ins, the head's framing)."""
    from voicefake.vocoder.phase import head_filterbank, match_mel

    mel, n_fft = MEL_16K_80, 640
    hop, window = mel.hop_length, torch.hann_window(n_fft)
    filters = head_filterbank(mel, n_fft, n_fft)
    mag = match_mel(torch.exp(log_mag).clamp(max=1e2), log_mel, filters, mel.log_floor)
    length = (phase.shape[-1] - 1) * hop

    def finish(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, n_fft, hop, n_fft, window, center=True, length=length)

    def consistent(spec: torch.Tensor) -> torch.Tensor:
        return stft(finish(spec), n_fft, hop, n_fft)[..., : spec.shape[-1]]

    return mag, filters, consistent, finish


def match_mel_once(mag: torch.Tensor, log_mel: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    from voicefake.vocoder.phase import match_mel

    return match_mel(mag, log_mel, filters, MEL_16K_80.log_floor, passes=1)


# (name, update, iterations, settings): the phase-retrieval variants of `variants`
VARIANTS: tuple[tuple[str, str, int, dict[str, float]], ...] = (
    ("fast Griffin-Lim (shipped), 6", "fgla", 6, {}),
    ("fast Griffin-Lim (shipped), 8", "fgla", 8, {}),
    ("fast Griffin-Lim, momentum 1.2, 6", "fgla", 6, {"momentum": 1.2}),
    ("fast Griffin-Lim, momentum 1.5, 6", "fgla", 6, {"momentum": 1.5}),
    ("fast Griffin-Lim, re-match from 2, 6", "fgla", 6, {"rematch_from": 2}),
    ("fast Griffin-Lim, never re-match, 6", "fgla", 6, {"rematch_from": 10**6}),
    ("RAAR beta 0.8, 5", "raar", 5, {"beta": 0.8}),
    ("RAAR beta 0.8, 6", "raar", 6, {"beta": 0.8}),
    ("RAAR beta 0.8, re-match from 3, 6", "raar", 6, {"beta": 0.8, "rematch_from": 3}),
    ("RAAR beta 0.7, 6", "raar", 6, {"beta": 0.7}),
    ("RAAR beta 0.95, 6", "raar", 6, {"beta": 0.95}),
    ("RAAR beta 0.9, re-match from 2, 6", "raar", 6, {"beta": 0.9, "rematch_from": 2}),
    ("RAAR beta 0.9, never re-match, 6", "raar", 6, {"beta": 0.9, "rematch_from": 10**6}),
)


def phase_variants(seconds: float, vocoder: str = "vocoder") -> dict[str, dict[str, float]]:
    """Each of :data:`VARIANTS` from the network's STFT (float32), and Griffin-Lim-64 (seed 0), on
    20 held-out files that the quality benchmark does not read (``dev_files(2, skip=3)``): the
    benchmark's metrics, averaged."""
    from voicefake.vocoder.model import VocosGenerator

    torch.set_num_threads(2)
    generator = api.load(vocoder).module.generator
    assert isinstance(generator, VocosGenerator)
    mel_fn = MelSpectrogram(MEL_16K_80)
    updates = {"fgla": refine_reference, "raar": raar_reference}
    scores: dict[str, list[dict[str, float]]] = defaultdict(list)
    files = dev_files(2, skip=3)
    for i, path in enumerate(files):
        wav = load_audio(path, SR)[: int(seconds * SR)]
        mel = mel_fn(torch.from_numpy(wav))
        with torch.inference_mode():
            log_mag, phase = generator.spectrum(mel[None])
            for name, update, n, settings in VARIANTS:
                out = updates[update](log_mag, phase, mel[None], n, **settings)[0].numpy()
                scores[name].append(metrics(wav, out, mel_fn))
        scores[NAMES["griffin-lim"]].append(metrics(wav, griffin_lim(mel, 0), mel_fn))
        print(f"[{i + 1}/{len(files)}] {path.name}", file=sys.stderr)
    return {name: {k: float(np.mean([s[k] for s in rows])) for k in rows[0]} | {"n": len(rows)}
            for name, rows in scores.items()}


def refine_speed(seconds: float = 10.0, repeats: int = 15, vocoder: str = "vocoder",
                 iterations: tuple[int, ...] = (1, 2, 4, 8, 16)) -> dict[str, dict[str, float]]:
    """The refinement alone (the network's STFT computed once), reference against shipped code,
    interleaved in one process on one thread (best of ``repeats``); and their largest difference."""
    from voicefake.vocoder.model import VocosGenerator

    torch.set_num_threads(1)
    generator = api.load(vocoder).module.generator
    assert isinstance(generator, VocosGenerator)
    mel = MelSpectrogram(MEL_16K_80)(torch.from_numpy(_speech(seconds))[None])
    out: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        log_mag, phase, _ = generator.spectrum_parts(mel)
        runs = {
            "reference (torch built-ins)": lambda n: refine_reference(log_mag, phase, mel, n),
            "shipped": lambda n: generator.synthesize(log_mag, phase, mel=mel, phase_iterations=n),
        }
        best: dict[tuple[str, int], float] = {}
        for _ in range(repeats):
            for n in iterations:
                for name, run in runs.items():
                    start = time.perf_counter()
                    run(n)
                    best[name, n] = min(best.get((name, n), float("inf")), time.perf_counter() - start)
        network = min(_time(lambda m: generator.spectrum_parts(m), mel) for _ in range(repeats))
        with autocast(torch.bfloat16):
            half = min(_time(lambda m: generator.spectrum_parts(m), mel) for _ in range(repeats))
        for n in iterations:
            diff = (runs["shipped"](n) - runs["reference (torch built-ins)"](n)).abs().max()
            for name in runs:
                out.setdefault(name, {"network_ms": 1000 * network, "network_bfloat16_ms": 1000 * half})
                out[name][f"refine_{n}_ms"] = 1000 * best[name, n]
            out["shipped"][f"max_diff_{n}"] = float(diff)
    return out


def _speech(seconds: float) -> np.ndarray:
    """A fixed stretch of held-out speech (LibriSpeech test-other) when the data is there, else noise."""
    try:
        files = dev_files(1)
    except FileNotFoundError:  # no VOICEFAKE_DATA: the timing does not depend on the content
        return np.random.default_rng(0).standard_normal(int(seconds * SR)).astype(np.float32) * 0.1
    wav = np.concatenate([load_audio(f, SR) for f in files])
    return wav[: int(seconds * SR)].astype(np.float32)


class _Fixed(torch.nn.Module):
    """The vocoder called with one phase-refinement setting."""

    def __init__(self, vocoder: torch.nn.Module, iterations: int | None) -> None:
        super().__init__()
        self.vocoder, self.iterations = vocoder, iterations

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.vocoder(mel, phase_iterations=self.iterations)


def _time(model: Any, mel: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(mel)
    return time.perf_counter() - start


def table(results: dict[str, dict[str, float]]) -> str:
    """A markdown table of every row's values (a row without a column shows a dash)."""
    keys = list(dict.fromkeys(k for row in results.values() for k in row))
    lines = ["| system | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3g}" if k in row else "–" for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["quality", "speed", "detect", "refine", "dnsmos", "variants"])
    parser.add_argument("--per-speaker", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--vocoder", nargs="+", default=["vocoder"],
                        help="checkpoint(s) to measure, side by side in one run (default: the bundled one)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {','.join(SYSTEMS + DIAGNOSTICS)} (quality, detect)")
    parser.add_argument("--detector", default="detection", help="detector checkpoint for 'detect' (default: bundled)")
    parser.add_argument("--phase-iterations", type=int, nargs="+", default=[None],
                        help="vocoder phase-refinement settings to measure (default: the checkpoint's)")
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "float32", "bfloat16"],
                        help="the network's arithmetic, each measured side by side (default: auto, as shipped)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="'dnsmos': Griffin-Lim's random starts, each scored (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    iterations = tuple(args.phase_iterations)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = set(systems) - set(SYSTEMS + DIAGNOSTICS)
    if unknown:
        parser.error(f"unknown system(s) {sorted(unknown)}; choose from {', '.join(SYSTEMS + DIAGNOSTICS)}")
    if args.what == "speed":
        results = speed(vocoder=tuple(args.vocoder), iterations=iterations, precisions=tuple(args.precision))
    elif args.what == "variants":
        results = phase_variants(args.seconds, args.vocoder[0])
    elif args.what == "dnsmos":
        results = dnsmos_paired(args.per_speaker, args.seconds, args.vocoder[0], iterations, args.seeds)
    elif args.what == "refine":
        picked = tuple(n for n in iterations if n is not None) or (1, 2, 4, 8, 16)
        results = refine_speed(vocoder=args.vocoder[0], iterations=picked)
    else:
        results = {}
        for index, path in enumerate(args.vocoder):
            # the other systems once; each further checkpoint adds its own vocoder rows
            mine = systems if index == 0 else tuple(s for s in systems if s == "vocoder")
            if args.what == "quality":
                part = quality(args.per_speaker, args.seconds, path, mine, iterations, tuple(args.precision))
            else:
                part = detectability(args.per_speaker, args.seconds, path, mine, iterations, args.detector,
                                     tuple(args.precision))
            ours = NAMES["vocoder"]
            results |= {(f"{name} [{path}]" if name.startswith(ours) and path != "vocoder" else name): row
                        for name, row in part.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
