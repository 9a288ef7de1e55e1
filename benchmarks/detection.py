"""Synthetic-speech detector benchmark: LOGO EER/ECE, false alarms, localisation, speed.

    VOICEFAKE_DATA=../shared/data nice -n 5 python benchmarks/detection.py \
        --data runs/detection/data --folds runs/detection/logo --out runs/detection/benchmark.json

Inputs come from ``recipes/detection/prepare_shared.py`` (manifest + spliced calls) and from
the fold runs ``runs/detection/logo/<family>`` (``recipes/detection/train.py`` with
``data.exclude_family=<family>``). For each fold: the fold's model is calibrated on dev data
without the held-out family, then scored on dev real speech + every fake of the held-out
family (never seen in training or calibration). EER and ECE are reported per channel
(clean / phone / wideband); pooled EER pools the fold scores. The bundled model is then
measured for false alarms on dev real recordings at its default threshold, for timeline
localisation on the spliced calls, and for speed. With ``--chain-folds``, leave-one-chain-out
folds (``data.exclude_corpus=<corpus>``) are scored the same way on the held-out corpus's own
reals against the fakes made from them (``--chain-control``: the same recipe trained on every
corpus, for comparison on the corpora's dev splits).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.data.manifests import ManifestRow, read_manifest
from voicefake.detection.benford import benford_stats
from voicefake.detection.inference import (
    NARROWBAND_BELOW_DB,
    Scored,
    calibrate_scored,
    detect_waveform,
    high_band_db,
    network_scores,
    prepare,
    score_against_truth,
)
from voicefake.detection.model import PairMaxPool
from voicefake.metrics import compute_eer, expected_calibration_error, reliability_table
from voicefake.train import state as run_state

log = logging.getLogger("benchmark")
CHANNELS = ("clean", "phone", "wideband")
MIN_VOICE_RECORDINGS = 20  # a voice's own false-alarm rate needs this many recordings to mean anything



def latest(run: Path) -> torch.nn.Module:
    return run_state.last_step_checkpoint(run, "detector").build("cpu").eval()


class Cache:
    """Loads (and prepares) each recording once; Benford statistics do not depend on the model."""

    def __init__(self, root: Path) -> None:
        self.root, self.waves, self.benford, self.high_band = root, {}, {}, {}

    def __call__(self, row: ManifestRow) -> np.ndarray:
        if row.path not in self.waves:
            self.waves[row.path] = prepare(load_audio(self.root / row.path, 16000, allow_silence=True), 16000)
        return self.waves[row.path]

    def score(self, module: torch.nn.Module, row: ManifestRow) -> Scored:
        """:func:`score_recording` with the Benford part cached."""
        wav = self(row)
        if row.path not in self.benford:
            self.benford[row.path] = benford_stats(wav)
            self.high_band[row.path] = high_band_db(wav, 16000)
        logit, frames = network_scores(module, torch.from_numpy(wav))
        return Scored(logit, frames, self.benford[row.path], wav.size / 16000, self.high_band[row.path])


def eer_or_none(scores: list[float], labels: list[int]) -> float | None:
    if len(set(labels)) < 2:
        return None
    return round(compute_eer(scores, labels)[0], 4)


def fold_rows(rows: list[ManifestRow], family: str = "", corpus: str = "") -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(calibration rows, test rows) of a fold. Leave-one-generator-out (``family``): dev without the
    family; dev reals and every fake of the family. Leave-one-chain-out (``corpus``, see
    ``ManifestRow.corpus``): dev without the corpus; every real recording of the
    corpus and every fake made from one, both splits."""
    def held(r: ManifestRow) -> bool:
        return r.folder == family if family else r.corpus == corpus

    dev = [r for r in rows if r.tags["split"] == "dev" and not held(r)]
    test = [r for r in rows if held(r) or (family and r.tags["split"] == "dev" and not r.is_fake)]
    return dev, test


def fold(held: str, run: Path, rows: list[ManifestRow], cache: Cache, far: float, kind: str = "family") -> dict:
    """Calibrate on dev without the held-out ``family`` or ``corpus`` (``kind``); score the fold's
    test rows (:func:`fold_rows`)."""
    module = latest(run)
    dev, test = fold_rows(rows, **{kind: held})
    dev_scored = [cache.score(module, r) for r in dev]
    dev_labels = np.array([int(r.is_fake) for r in dev])
    calibration = calibrate_scored(module, dev_scored, dev_labels, far)
    net_only = calibrate_scored(module, dev_scored, dev_labels, far, use_benford=False)
    by_path = {r.path: s for r, s in zip(dev, dev_scored, strict=True)}
    result: dict = {kind: held, "steps": run_state.list_steps(run)[-1], "conditions": {}}
    records = []
    for row in test:
        scored = by_path.get(row.path) or cache.score(module, row)
        records.append({"channel": row.tags["channel"], "split": row.tags["split"], "label": int(row.is_fake),
                        "logit": scored.logit,
                        "p": calibration.file_probability(scored.logit, scored.benford),
                        "threshold": calibration.thresholds(scored.high_band)[0],
                        "p_net": net_only.file_probability(scored.logit, scored.benford)})
    result["conditions"] = conditions(records)
    # the held-out family's dev-split fakes only: its train-split copy-synthesis fakes are copies of
    # recordings whose real versions were trained on as real, so they test the recording as well as
    # the generator (dev copies are made from dev speakers; shared and TTS fakes split by a path hash)
    result["conditions_dev_split"] = conditions([r for r in records if not r["label"] or r["split"] == "dev"])
    if kind == "corpus":  # the corpus's dev split alone, reals and fakes: comparable with a model that trained on its train split
        result["conditions_dev_only"] = conditions([r for r in records if r["split"] == "dev"])
    result["records"] = records
    return result


def conditions(records: list[dict]) -> dict:
    """EER, ECE and the rates at the threshold per channel, of fold records (reals and fakes)."""
    out = {}
    for channel in CHANNELS:
        subset = [r for r in records if r["channel"] == channel]
        labels = [r["label"] for r in subset]
        if len(set(labels)) < 2:
            continue
        out[channel] = {
            "n_real": labels.count(0), "n_fake": labels.count(1),
            "eer": eer_or_none([r["p"] for r in subset], labels),
            "eer_network_only": eer_or_none([r["p_net"] for r in subset], labels),
            "ece": round(expected_calibration_error([r["p"] for r in subset], labels), 4),
            "miss_rate_at_threshold": round(float(np.mean([r["p"] < r["threshold"] for r in subset if r["label"]])), 4),
            "false_alarm_at_threshold": round(float(np.mean([r["p"] >= r["threshold"] for r in subset if not r["label"]])), 4),
        }
    return out


def bundled_dev(rows: list[ManifestRow], cache: Cache, checkpoint: str = "detection",
                points: list | None = None) -> tuple[dict, dict]:
    """Bundled model on dev: false alarms at its default threshold on dev real recordings (by
    corpus and channel), and EER per fake family vs dev reals (its calibration set). ``points``,
    when given, receives ``(p_fake, is_fake, narrowband)`` per dev recording (for :func:`threshold_sweep`)."""
    from voicefake.detection.inference import Calibration

    loaded = api.load(checkpoint)
    cal = Calibration.from_metadata(loaded.checkpoint.metadata)
    probs: dict = defaultdict(list)
    alarms: dict = defaultdict(list)
    for row in rows:
        if row.tags["split"] != "dev":
            continue
        scored = cache.score(loaded.module, row)
        p = cal.file_probability(scored.logit, scored.benford)
        probs[(row.folder, row.tags["channel"])].append(p)
        if points is not None:
            points.append((p, row.is_fake, scored.high_band < NARROWBAND_BELOW_DB))
        if not row.is_fake:
            parts = row.path.split("/")  # audio/<channel>/shared/<corpus>/... or audio/<channel>/<stage>/...
            alarms[(parts[3] if parts[2] == "shared" else parts[2], row.tags["channel"])].append(
                p >= cal.thresholds(scored.high_band)[0])
    false_alarm: dict = defaultdict(dict)
    for (corpus, channel), flags in sorted(alarms.items()):
        false_alarm[corpus][channel] = {"n": len(flags), "false_alarm_rate": round(float(np.mean(flags)), 4)}
    all_real = [f for flags in alarms.values() for f in flags]
    false_alarm["all dev real"]["all"] = {"n": len(all_real), "false_alarm_rate": round(float(np.mean(all_real)), 4)}
    eers: dict = defaultdict(dict)
    for (family, channel), values in probs.items():
        if family != "human":
            reals = probs[("human", channel)]
            eers[family][channel] = eer_or_none(values + reals, [1] * len(values) + [0] * len(reals))
    return dict(false_alarm), dict(eers)


def decide(module: torch.nn.Module, cal: Any, wav: np.ndarray) -> tuple[float, bool, bool]:
    """(p_fake, flagged at the threshold for its bandwidth, narrowband) of one 16 kHz mono
    recording, as ``voicefake detect`` decides a mono file (``cal``: its ``Calibration``)."""
    audio = prepare(wav, 16000)
    logit, _ = network_scores(module, torch.from_numpy(audio))
    p = cal.file_probability(logit, benford_stats(audio))
    band = high_band_db(audio, 16000)
    return p, bool(p >= cal.thresholds(band)[0]), band < NARROWBAND_BELOW_DB


def voices_in(rows: list[ManifestRow]) -> frozenset[str]:
    """The speakers of a data manifest's real recordings: voices the detector was trained or
    calibrated on, which an unseen-voice check must leave out (e.g. stage ktuberling's)."""
    return frozenset(row.speaker for row in rows if not row.is_fake and row.speaker)


def unseen_rows(folder: Path, trained: frozenset[str] = frozenset()) -> list:
    """(index, row) of the recordings of at least 1 s of the voices ``folder``'s manifest marks
    ``new_voice=1``, less the voices in ``trained`` (those a candidate was trained on)."""
    return [(i, row) for i, row in enumerate(read_manifest(folder / "manifest.csv"))
            if "new_voice=1" in row.notes and row.duration_s >= 1.0 and row.speaker not in trained]


def unseen_voices(folder: Path, checkpoint: str = "detection", points: list | None = None,
                  trained: frozenset[str] = frozenset()) -> dict:
    """False alarms at the default threshold on real voices that no model here was trained or
    calibrated on (``new_voice=1`` rows of a prepare recipe's manifest), as recorded and through
    a simulated phone call: ``recipes/detection/prepare_asterisk.py`` (8 kHz studio prompts, two
    of them GSM-coded) or ``prepare_klettres.py`` (wideband letters and syllables, 20 languages).

    Returns per voice and channel ``{"n", "false_alarm_rate"}``, plus ``all unseen voices
    (<folder>)`` (every recording pooled) and ``mean over voices (<folder>)`` (each voice
    weighted equally, so one prolific voice does not decide it; voices with at least
    :data:`MIN_VOICE_RECORDINGS` recordings). ``points``, when given, receives
    ``(folder name, channel, p_fake, narrowband)`` per scored recording."""
    from voicefake.channel import phone_call
    from voicefake.detection.inference import Calibration

    loaded = api.load(checkpoint)
    cal = Calibration.from_metadata(loaded.checkpoint.metadata)
    flags: dict = defaultdict(list)
    pooled_key = f"all unseen voices ({folder.name})"
    for index, row in unseen_rows(folder, trained):
        wav = load_audio(folder / row.path, 16000, allow_silence=True)
        for channel, audio in (("as recorded", wav), ("phone", phone_call(wav, 16000, seed=index)[0])):
            p, flagged, narrowband = decide(loaded.module, cal, audio)
            if points is not None:
                points.append((folder.name, channel, p, narrowband))
            flags[(row.speaker, channel)].append(flagged)
            flags[(pooled_key, channel)].append(flagged)
    out: dict = defaultdict(dict)
    for (speaker, channel), values in sorted(flags.items(), key=lambda kv: (kv[0][0].startswith("all "), kv[0])):
        out[speaker][channel] = {"n": len(values), "false_alarm_rate": round(float(np.mean(values)), 4)}
    voices = [v for k, v in out.items() if not k.startswith("all ")]
    for channel in ("as recorded", "phone"):
        rates = [v[channel]["false_alarm_rate"] for v in voices if v.get(channel, {}).get("n", 0) >= MIN_VOICE_RECORDINGS]
        if rates:
            out[f"mean over voices ({folder.name})"][channel] = {"n": len(rates), "false_alarm_rate": round(float(np.mean(rates)), 4)}
    return dict(out)


def unseen_by_length(folder: Path, counts: list[int], checkpoint: str = "detection",
                     trained: frozenset[str] = frozenset()) -> dict:
    """False alarms on the unseen voices when their prompts are joined into longer recordings.

    Each voice's recordings (``new_voice=1``, at least 1 s) are shuffled (seed 0) and joined
    ``n`` at a time, 0.3 s apart, for each ``n`` in ``counts`` (n = 1 is one prompt per
    recording, as in :func:`unseen_voices`; a leftover group shorter than ``n`` is dropped).
    Each joined recording is scored as recorded and through a simulated phone call, at the
    model's thresholds. Returns per ``n``: recordings, mean seconds, false-alarm rates.
    """
    from voicefake.channel import phone_call
    from voicefake.detection.inference import Calibration

    loaded = api.load(checkpoint)
    cal = Calibration.from_metadata(loaded.checkpoint.metadata)
    voices: dict = defaultdict(list)
    for _, row in unseen_rows(folder, trained):
        voices[row.speaker].append(load_audio(folder / row.path, 16000, allow_silence=True))
    gap = np.zeros(int(0.3 * 16000), np.float32)
    out = {}
    for n in counts:
        flags: dict = defaultdict(list)
        seconds = []
        for voice, (_, waves) in enumerate(sorted(voices.items())):
            order = np.random.default_rng(0).permutation(len(waves))
            for group, start in enumerate(range(0, len(order) - n + 1, n)):
                wav = np.concatenate([x for i in order[start : start + n] for x in (waves[i], gap)][:-1])
                seconds.append(wav.size / 16000)
                line = phone_call(wav, 16000, seed=10000 * voice + group)[0]
                for channel, audio in (("as recorded", wav), ("phone", line)):
                    audio = prepare(audio, 16000)
                    logit, _ = network_scores(loaded.module, torch.from_numpy(audio))
                    p = cal.file_probability(logit, benford_stats(audio))
                    flags[channel].append(p >= cal.thresholds(high_band_db(audio, 16000))[0])
        out[str(n)] = {"recordings": len(seconds), "mean_seconds": round(float(np.mean(seconds)), 2),
                       **{f"false_alarm_rate_{c.replace(' ', '_')}": round(float(np.mean(f)), 4) for c, f in flags.items()}}
        log.info("unseen voices joined %d at a time: %s", n, out[str(n)])
    return out


def dev_operating_point(dev_points: list, narrowband_threshold: float, wideband_threshold: float) -> dict:
    """False alarms, misses and EER of ``(p_fake, is_fake, narrowband)`` dev points at one
    threshold per band (a checkpoint's own), for all inputs and per band: the figures that compare
    checkpoints calibrated on different dev lists when scored on one."""
    out: dict = {}
    for name, keep in (("all", lambda nb: True), ("narrowband", lambda nb: nb), ("wideband", lambda nb: not nb)):
        points = [(p, fake, nb) for p, fake, nb in dev_points if keep(nb)]
        alarms = [p >= (narrowband_threshold if nb else wideband_threshold) for p, fake, nb in points if not fake]
        misses = [p < (narrowband_threshold if nb else wideband_threshold) for p, fake, nb in points if fake]
        out[name] = {"reals": len(alarms), "fakes": len(misses),
                     "false_alarm_rate": round(float(np.mean(alarms)), 4) if alarms else None,
                     "miss_rate": round(float(np.mean(misses)), 4) if misses else None}
    out["all"]["eer"] = eer_or_none([p for p, _, _ in dev_points], [int(fake) for _, fake, _ in dev_points])
    return out


def threshold_sweep(dev_points: list, unseen_points: list, thresholds: list[float],
                    checkpoint: str = "detection", band: str = "narrowband") -> list[dict]:
    """What a stricter decision point costs and buys, for one band's inputs: for each threshold
    of ``band`` ("narrowband": calls; "wideband": everything else; the other band keeps the
    model's own threshold), the false alarms and misses on that band's dev recordings, and the
    false alarms on each unseen-voice folder, as recorded and through the phone chain. The dev
    figures are the calibration set's; the unseen voices are not in it."""
    from voicefake.detection.inference import Calibration

    if band not in ("narrowband", "wideband"):
        raise ValueError(f"band must be narrowband or wideband, got {band!r}")
    cal = Calibration.from_metadata(api.load(checkpoint).checkpoint.metadata)
    own = {"wideband": cal.threshold, "narrowband": cal.narrowband_threshold}
    swept_nb = band == "narrowband"
    rows = []
    for t in thresholds:
        limits = {**own, band: t}
        real = [p >= t for p, fake, nb in dev_points if nb == swept_nb and not fake]
        fake = [p < t for p, fake, nb in dev_points if nb == swept_nb and fake]
        row = {f"{band}_threshold": t, **{f"{b}_threshold": round(float(v), 4) for b, v in own.items() if b != band and v is not None},
               f"dev_{band}_false_alarm_rate": round(float(np.mean(real)), 4) if real else None,
               f"dev_{band}_miss_rate": round(float(np.mean(fake)), 4) if fake else None, "unseen": {}}
        for name, channel in sorted({(n, c) for n, c, _, _ in unseen_points}):
            flags = [p >= limits["narrowband" if nb else "wideband"] for n, c, p, nb in unseen_points if (n, c) == (name, channel)]
            row["unseen"][f"{name}, {channel}"] = round(float(np.mean(flags)), 4)
        rows.append(row)
    return rows


def localisation(spliced: Path, checkpoint: str = "detection") -> dict:
    out: dict = defaultdict(list)
    for audio in sorted(spliced.glob("*.flac")):
        truth = json.loads(audio.with_suffix(".json").read_text())["segments"]
        report = api.detect(audio, checkpoint=checkpoint, evidence=False)
        out["phone" if "phone" in audio.stem else "clean"].append(score_against_truth(report, truth))
    summary = {}
    for channel, items in out.items():
        fake = sum(i["fake_seconds"] for i in items)
        real = sum(i["real_seconds"] for i in items)
        summary[channel] = {
            "calls": len(items), "fake_seconds": round(fake, 1), "real_seconds": round(real, 1),
            "fake_seconds_found": round(sum(i["found_fake_seconds"] for i in items) / max(fake, 1e-9), 4),
            "false_alarm_seconds_per_minute": round(sum(i["false_alarm_seconds"] for i in items) / max(real / 60, 1e-9), 3),
            "calls_labelled_fake": sum(i["file_label"] == "fake" for i in items),
        }
    return summary


def parse_size(text: str) -> tuple[tuple[int, int, int, int], int]:
    """``"8,16,32,48:48"`` -> ((8, 16, 32, 48), 48): the four LCNN block widths and the frame head's width."""
    try:
        widths, hidden = text.split(":")
        channels, head = tuple(int(w) for w in widths.split(",")), int(hidden)
        if len(channels) != 4 or min(*channels, head) <= 0:
            raise ValueError
        return (channels[0], channels[1], channels[2], channels[3]), head
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected four positive block widths and the head's width, "
                                         "e.g. 8,16,32,48:48") from None


def size_speed(module: torch.nn.Module, sizes: list[tuple[tuple[int, int, int, int], int]],
               audio: torch.Tensor, rounds: int = 6) -> list[dict]:
    """Times real time on one thread of networks of other sizes (untrained: the weights do not change
    the cost), interleaved with ``module`` round by round so that a busy machine slows all alike."""
    import dataclasses

    from voicefake.detection.model import Detector

    nets = [("bundled", module)] + [
        (f"{','.join(map(str, channels))}:{hidden}",
         Detector(dataclasses.replace(module.config, channels=channels, hidden=hidden)).eval())
        for channels, hidden in sizes]
    speeds = interleaved_speed(nets, audio, module.config.sample_rate, rounds)
    return [{"size": name, "parameters": sum(p.numel() for p in net.parameters()),
             "channels": list(net.config.channels), "hidden": net.config.hidden,
             "x_real_time_1_thread_wall": speeds[name]} for name, net in nets]


def interleaved_speed(nets: list[tuple[str, torch.nn.Module]], audio: torch.Tensor, sample_rate: int,
                      rounds: int = 6) -> dict[str, float]:
    """Times real time of each network on one thread (best wall time of ``rounds``), the networks
    taking turns within each round so that a busy machine slows all of them alike."""
    torch.set_num_threads(1)
    walls: dict[str, list[float]] = {name: [] for name, _ in nets}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, net in nets:
                wall = time.perf_counter()
                net(audio[None])
                walls[name].append(time.perf_counter() - wall)
    seconds = audio.numel() / sample_rate
    return {name: round(seconds / min(times), 1) for name, times in walls.items()}


def speed(sizes: list[tuple[tuple[int, int, int, int], int]] | None = None) -> dict:
    """Times real time of the network (CPU time and wall) and the full timeline of a 10-min call
    (one pass) and of a 60-min call (six 10-minute pieces); with ``sizes``, also networks of other
    widths beside the bundled one (:func:`size_speed`)."""
    loaded = api.load("detection")
    module = loaded.module
    out = {}
    rng = np.random.default_rng(0)
    minute = torch.from_numpy((0.05 * rng.standard_normal(60 * 16000)).astype(np.float32))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            module(minute[None])
            walls, cpus = [], []
            for _ in range(3):
                wall, cpu = time.perf_counter(), time.process_time()
                module(minute[None])
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        out[f"network_x_real_time_{threads}_thread_wall"] = round(60 / min(walls), 1)
        out[f"network_x_real_time_{threads}_thread_cpu"] = round(60 / min(cpus), 1)
    # side by side, runs interleaved: the same weights with torch's max_pool2d in place of
    # PairMaxPool (the network before session 48)
    torch.set_num_threads(1)
    pooled = copy.deepcopy(module)
    pooled.stem_pool = torch.nn.MaxPool2d(pooled.stem_pool.pool, ceil_mode=True)
    for block in pooled.blocks:
        if isinstance(block.pool, PairMaxPool):
            block.pool = torch.nn.MaxPool2d(block.pool.pool, ceil_mode=True)
    with torch.inference_mode():
        if not torch.equal(pooled(minute[None]).frame_logits, module(minute[None]).frame_logits):
            raise AssertionError("PairMaxPool and max_pool2d disagree")
    side = interleaved_speed([("pair_max_pool", module), ("max_pool2d", pooled)], minute, 16000)
    for name, x_real_time in side.items():
        out[f"network_x_real_time_1_thread_wall_{name}_interleaved"] = x_real_time
    if sizes:
        out["sizes_interleaved"] = size_speed(module, sizes, minute)
    torch.set_num_threads(2)
    call = prepare((0.05 * rng.standard_normal(600 * 16000)).astype(np.float32), 16000)
    from voicefake.detection.inference import Calibration

    cal = Calibration.from_metadata(loaded.checkpoint.metadata)
    for evidence in (False, True):
        wall = time.perf_counter()
        report = detect_waveform(module, call, cal, {"name": "x", "version": "x"}, evidence=evidence)
        out[f"ten_minute_call_seconds_2_threads{'_with_saliency' if evidence else ''}"] = round(time.perf_counter() - wall, 2)
    out["ten_minute_call_segments"] = len(report.segments)
    hour = prepare((0.05 * rng.standard_normal(3600 * 16000)).astype(np.float32), 16000)
    wall = time.perf_counter()
    report = detect_waveform(module, hour, cal, {"name": "x", "version": "x"})  # 10-minute pieces
    out["sixty_minute_call_seconds_2_threads_with_saliency"] = round(time.perf_counter() - wall, 2)
    out["sixty_minute_call_segments"] = len(report.segments)
    return out


def reliability(rows: list[ManifestRow], cache: Cache, checkpoint: str = "detection", far: float = 0.01) -> dict:
    """Reliability of ``p_fake`` on recordings the calibration did not see: the dev split is cut
    in two by speaker (a fixed hash), the calibration is fitted on one half with the recipe's
    method and applied to the other, both ways; the pooled held-out probabilities are binned
    (all inputs, narrowband, wideband). The shipped calibration's in-sample table is beside it."""
    import zlib

    from voicefake.detection.inference import Calibration

    loaded = api.load(checkpoint)
    shipped = Calibration.from_metadata(loaded.checkpoint.metadata)
    dev = [r for r in rows if r.tags["split"] == "dev"]
    scored = [cache.score(loaded.module, r) for r in dev]
    labels = np.array([int(r.is_fake) for r in dev])
    half = np.array([zlib.crc32(r.speaker.encode()) % 2 for r in dev])
    held_out = np.zeros(len(dev))
    for side in (0, 1):
        fit = np.flatnonzero(half != side)
        cal = calibrate_scored(loaded.module, [scored[i] for i in fit], labels[fit], far)
        for i in np.flatnonzero(half == side):
            held_out[i] = cal.file_probability(scored[i].logit, scored[i].benford)
    in_sample = np.array([shipped.file_probability(s.logit, s.benford) for s in scored])
    narrow = np.array([shipped.is_narrowband(s.high_band) if shipped.narrowband_below_db is not None
                       else s.high_band < NARROWBAND_BELOW_DB for s in scored])
    out: dict = {"recordings": len(dev), "halves": [int((half == 0).sum()), int((half == 1).sum())]}
    for name, mask in (("all", np.ones(len(dev), bool)), ("narrowband", narrow), ("wideband", ~narrow)):
        out[name] = {"n": int(mask.sum()),
                     "ece_held_out": round(expected_calibration_error(held_out[mask], labels[mask]), 4),
                     "ece_in_sample": round(expected_calibration_error(in_sample[mask], labels[mask]), 4),
                     "table_held_out": reliability_table(held_out[mask], labels[mask])}
    return out


def pooled(folds: list[dict], dev_split: bool = False, dev_only: bool = False) -> dict:
    """Pooled EER / ECE of every fold's records (with ``dev_split``: fakes of the dev split only;
    ``dev_only``: reals and fakes of the dev split only)."""
    out = {}
    for channel in CHANNELS:
        records = [r for f in folds for r in f["records"] if r["channel"] == channel
                   and (not dev_split or not r["label"] or r["split"] == "dev")
                   and (not dev_only or r["split"] == "dev")]
        if records:
            labels = [r["label"] for r in records]
            out[channel] = {"eer": eer_or_none([r["p"] for r in records], labels),
                            "eer_network_only": eer_or_none([r["p_net"] for r in records], labels),
                            "ece": round(expected_calibration_error([r["p"] for r in records], labels), 4)}
    return out


def to_markdown(result: dict) -> str:
    """The benchmark tables for docs/benchmarks/detection.md."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    lines = []
    if "logo" in result:
        lines += ["| held-out family | steps | EER clean | EER phone | EER wideband | ECE clean | ECE phone "
                  "| EER clean, network only | EER phone, network only |", "|---|---|---|---|---|---|---|---|---|"]
        for f in result["logo"]:
            def get(ch: str, key: str, c: dict = f["conditions"]) -> float | None:
                return c.get(ch, {}).get(key)

            lines.append(f"| {f['family']} | {f['steps']} | {pct(get('clean', 'eer'))} | {pct(get('phone', 'eer'))} "
                         f"| {pct(get('wideband', 'eer'))} | {pct(get('clean', 'ece'))} | {pct(get('phone', 'ece'))} "
                         f"| {pct(get('clean', 'eer_network_only'))} | {pct(get('phone', 'eer_network_only'))} |")
        pool = result["logo_pooled"]
        lines += ["", "| pooled LOGO | EER (fused) | EER (network only) | ECE |", "|---|---|---|---|"]
        lines += [f"| {ch} | {pct(v['eer'])} | {pct(v['eer_network_only'])} | {pct(v['ece'])} |" for ch, v in pool.items()]
        if "logo_pooled_dev_split" in result:
            lines += ["", "| held-out family, its dev-split fakes only | fakes (clean) | EER clean | EER phone "
                      "| EER wideband |", "|---|---|---|---|---|"]
            for f in result["logo"]:
                c = f.get("conditions_dev_split", {})
                lines.append(f"| {f['family']} | {c.get('clean', {}).get('n_fake', 0)} | "
                             + " | ".join(pct(c.get(ch, {}).get("eer")) for ch in CHANNELS) + " |")
            lines.append("| **pooled** | | " + " | ".join(pct(result["logo_pooled_dev_split"].get(ch, {}).get("eer"))
                                                        for ch in CHANNELS) + " |")
    if "false_alarms_dev_real" in result:
        lines += ["", "| dev real corpus | channel | recordings | false alarms at the default threshold |", "|---|---|---|---|"]
        for corpus, chans in result["false_alarms_dev_real"].items():
            lines += [f"| {corpus} | {ch} | {v['n']} | {pct(v['false_alarm_rate'])} |" for ch, v in chans.items()]
        if "dev_at_thresholds" in result:
            lines += ["", "| dev recordings of this manifest | reals | fakes | false alarms at the thresholds | misses |",
                      "|---|---|---|---|---|"]
            lines += [f"| {name} | {v['reals']} | {v['fakes']} | {pct(v['false_alarm_rate'])} | {pct(v['miss_rate'])} |"
                      for name, v in result["dev_at_thresholds"].items()]
        lines += ["", "| family (bundled model, dev split) | EER clean | EER phone | EER wideband |", "|---|---|---|---|"]
        for family, chans in result["bundled_dev_eer_by_family"].items():
            lines.append(f"| {family} | {pct(chans.get('clean'))} | {pct(chans.get('phone'))} | {pct(chans.get('wideband'))} |")
        lines += ["", "| spliced calls | calls | fake s | real s | fake seconds found | false-alarm s per minute of real | calls labelled fake |",
                  "|---|---|---|---|---|---|---|"]
        for ch, v in result["localisation_spliced"].items():
            lines.append(f"| {ch} | {v['calls']} | {v['fake_seconds']} | {v['real_seconds']} | {pct(v['fake_seconds_found'])} "
                         f"| {v['false_alarm_seconds_per_minute']} | {v['calls_labelled_fake']} |")
    if "false_alarms_unseen_voices" in result:
        lines += ["", "| unseen real voice (never trained or calibrated on) | channel | recordings | false alarms at the default threshold |",
                  "|---|---|---|---|"]
        for speaker, chans in result["false_alarms_unseen_voices"].items():
            lines += [f"| {speaker} | {ch} | {v['n']} | {pct(v['false_alarm_rate'])} |" for ch, v in chans.items()]
    for name, by_n in result.get("false_alarms_unseen_by_length", {}).items():
        lines += ["", f"| {name}: prompts per recording | recordings | mean length | false alarms as recorded "
                  "| false alarms through a phone line |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {v['recordings']} | {v['mean_seconds']:.1f} s | {pct(v.get('false_alarm_rate_as_recorded'))} "
                  f"| {pct(v.get('false_alarm_rate_phone'))} |" for n, v in by_n.items()]
    for band, key in (("narrowband", "threshold_sweep"), ("wideband", "threshold_sweep_wideband")):
        if not result.get(key):
            continue
        sweep = result[key]
        names = list(sweep[0]["unseen"])
        lines += ["", f"| {band} threshold | dev {band} false alarms | dev {band} misses | "
                  + " | ".join(f"unseen: {n}" for n in names) + " |", "|---" * (3 + len(names)) + "|"]
        for row in sweep:
            lines += [f"| {row[f'{band}_threshold']:.3f} | {pct(row[f'dev_{band}_false_alarm_rate'])} | "
                      f"{pct(row[f'dev_{band}_miss_rate'])} | " + " | ".join(pct(row["unseen"][n]) for n in names) + " |"]
    if "reliability" in result:
        rel = result["reliability"]
        lines += ["", "| reliability (dev halves by speaker, calibrated on the other half) | recordings | ECE held out "
                  "| ECE of the shipped calibration (in sample) |", "|---|---|---|---|"]
        lines += [f"| {name} | {rel[name]['n']} | {pct(rel[name]['ece_held_out'])} | {pct(rel[name]['ece_in_sample'])} |"
                  for name in ("all", "narrowband", "wideband")]
        lines += ["", "| p_fake bin (held out, all inputs) | recordings | mean p_fake | observed fraction synthetic |",
                  "|---|---|---|---|"]
        lines += [f"| {b['low']:.1f}-{b['high']:.1f} | {b['n']} | {b['mean_p']:.3f} | {b['observed']:.3f} |"
                  for b in rel["all"]["table_held_out"]]
    if "speed" in result:
        lines += ["", "| speed | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result["speed"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/detection/data"))
    parser.add_argument("--manifest", type=Path, default=None,
                        help="the manifest to score (default: DATA/manifest.csv), e.g. the merged stage-aux one "
                             "that LOGO folds trained with data.manifest=... read")
    parser.add_argument("--folds", type=Path, default=Path("runs/detection/logo"))
    parser.add_argument("--out", type=Path, default=Path("runs/detection/benchmark.json"))
    parser.add_argument("--chain-folds", type=Path, default=None,
                        help="leave-one-chain-out fold runs (LOGO_HOLD=corpus bash recipes/detection/logo.sh): each "
                             "run's name is the corpus it left out; scored on that corpus's reals and their fakes")
    parser.add_argument("--chain-control", type=Path, default=None, metavar="RUN",
                        help="with --chain-folds: a run trained the same way on every corpus, scored on each "
                             "held-out corpus's dev split (the chain folds' dev_only figures are comparable)")
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--skip", nargs="*", default=[], choices=["logo", "bundled", "unseen", "reliability", "speed"])
    parser.add_argument("--unseen", type=Path, nargs="+", default=[Path("runs/data/asterisk")],
                        help="prepare_asterisk.py / prepare_klettres.py outputs: their new voices give the "
                             "unseen-voice false alarms")
    parser.add_argument("--trained-voices", nargs="*", default=[], metavar="SPEAKER",
                        help="voices of the --unseen folders that the checkpoint was trained on (e.g. the "
                             "fillets stage's fillets-cs-m fillets-cs-v): left out of the unseen check. Voices "
                             "in the --manifest (training or calibration data) are always left out")
    parser.add_argument("--subsample", type=int, default=1, help="keep every N-th manifest row (quick checks)")
    parser.add_argument("--sweep", type=float, nargs="+", default=[], metavar="T",
                        help="narrowband thresholds to compare on dev and on the unseen voices (needs the "
                             "bundled and unseen parts)")
    parser.add_argument("--sweep-wideband", type=float, nargs="+", default=[], metavar="T",
                        help="the same for the wideband threshold (inputs that are not phone-band)")
    parser.add_argument("--by-length", type=int, nargs="+", default=[], metavar="N",
                        help="also score the unseen voices' prompts joined N at a time (e.g. 1 2 4 8): false "
                             "alarms against recording length")
    parser.add_argument("--speed-sizes", type=parse_size, nargs="+", default=[], metavar="W,W,W,W:H",
                        help="with the speed part: also time untrained networks of these sizes on one thread, "
                             "interleaved with the bundled one (four LCNN block widths : frame-head width)")
    parser.add_argument("--checkpoint", default="detection",
                        help="the model of the 'bundled' part: the bundled one, or a calibrated candidate's folder")
    args = parser.parse_args()
    if args.chain_control and not args.chain_folds:
        parser.error("--chain-control needs --chain-folds (the held-out corpora to score it on)")
    for name, folder in (("--chain-folds", args.chain_folds), ("--chain-control", args.chain_control)):
        if folder is not None and not folder.is_dir():
            parser.error(f"{name} {folder}: no such folder; train it with recipes/detection/logo.sh "
                         "(LOGO_HOLD=corpus) or recipes/detection/train.py first")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # one intra-op thread: on a shared, oversubscribed 2-core machine two threads stall each other
    torch.set_num_threads(1)
    manifest = args.manifest or args.data / "manifest.csv"
    if not manifest.is_file():
        parser.error(f"--manifest {manifest}: no such file; make it with recipes/detection/prepare_shared.py")
    rows = read_manifest(manifest)[:: args.subsample]
    cache = Cache(args.data)
    result: dict = {}
    dev_points: list = []
    unseen_points: list = []
    if "bundled" not in args.skip:
        result["false_alarms_dev_real"], result["bundled_dev_eer_by_family"] = bundled_dev(
            rows, cache, args.checkpoint, dev_points)
        result["localisation_spliced"] = localisation(args.data / "spliced", args.checkpoint)
        result["bundled_metadata"] = api.load(args.checkpoint).checkpoint.metadata.get("dev")
        from voicefake.detection.inference import Calibration

        own = Calibration.from_metadata(api.load(args.checkpoint).checkpoint.metadata)
        result["dev_at_thresholds"] = dev_operating_point(
            dev_points, own.narrowband_threshold if own.narrowband_threshold is not None else own.threshold, own.threshold)
        log.info("bundled: %s", {k: result[k] for k in ("false_alarms_dev_real", "localisation_spliced")})
    if "reliability" not in args.skip:
        result["reliability"] = reliability(rows, cache, args.checkpoint, args.far)
        log.info("reliability: %s", {k: v for k, v in result["reliability"].items() if isinstance(v, dict)})
    folders = [f for f in args.unseen if (f / "manifest.csv").exists()]
    trained = frozenset(args.trained_voices) | voices_in(rows)
    for missing in sorted(set(args.unseen) - set(folders)):
        log.warning("%s: no manifest.csv, skipped; make it with recipes/detection/prepare_asterisk.py or "
                    "prepare_klettres.py --out %s", missing, missing)
    if "unseen" not in args.skip and folders:
        result["false_alarms_unseen_voices"] = {
            k: v for f in folders for k, v in unseen_voices(f, args.checkpoint, unseen_points, trained).items()}
        log.info("unseen voices: %s", result["false_alarms_unseen_voices"])
    if args.by_length and folders:
        result["false_alarms_unseen_by_length"] = {f.name: unseen_by_length(f, args.by_length, args.checkpoint, trained)
                                                   for f in folders}
    if args.sweep and dev_points and unseen_points:
        result["threshold_sweep"] = threshold_sweep(dev_points, unseen_points, args.sweep, args.checkpoint)
    if args.sweep_wideband and dev_points and unseen_points:
        result["threshold_sweep_wideband"] = threshold_sweep(dev_points, unseen_points, args.sweep_wideband,
                                                             args.checkpoint, band="wideband")
    if "logo" not in args.skip:
        folds = []
        for run in sorted(p for p in args.folds.iterdir() if run_state.list_steps(p)):
            folds.append(fold(run.name, run, rows, cache, args.far))
            log.info("fold %s: %s", run.name, folds[-1]["conditions"])
            args.out.write_text(json.dumps({**result, "logo_partial": [{k: v for k, v in f.items() if k != "records"} for f in folds]}, indent=1))
        result["logo"] = [{k: v for k, v in f.items() if k != "records"} for f in folds]
        result["logo_pooled"] = pooled(folds)
        result["logo_pooled_dev_split"] = pooled(folds, dev_split=True)
    if args.chain_folds:
        chains = [fold(run.name, run, rows, cache, args.far, kind="corpus")
                  for run in sorted(p for p in args.chain_folds.iterdir() if run_state.list_steps(p))]
        for chain in chains:
            log.info("chain fold %s: %s", chain["corpus"], chain["conditions"])
        result["chains"] = [{k: v for k, v in f.items() if k != "records"} for f in chains]
        result["chains_pooled"] = pooled(chains)
        result["chains_pooled_dev_only"] = pooled(chains, dev_only=True)
        if args.chain_control:
            # one model trained on every corpus, scored on the same corpora's dev splits
            control = [fold(c["corpus"], args.chain_control, rows, cache, args.far, kind="corpus") for c in chains]
            result["chains_control"] = [{k: v for k, v in f.items() if k != "records"} for f in control]
            result["chains_control_pooled_dev_only"] = pooled(control, dev_only=True)
    if "speed" not in args.skip:
        result["speed"] = speed(args.speed_sizes)
    args.out.write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(to_markdown(result) + "\n")
    print(to_markdown(result))


if __name__ == "__main__":
    main()
