"""Watermark benchmark: robustness to channel attacks, imperceptibility, false alarms, speed.

Usage (from the repository root):
    VOICEFAKE_DATA=../shared/data PYTHONPATH=. python benchmarks/watermark.py \
        --files 30 --noise 1000 --out runs/bench/watermark.json

* Robustness: ``--files`` real recordings (>= 3 s, cut to 10 s) are marked, attacked and
  detected; per attack: detection rate, statistic (min / 10th percentile / median), bit
  accuracy (32 coded bits) and exact payload decodes.
* Imperceptibility: SNR and PESQ-WB (pesq package) of marked against original.
* False alarms: detection on every real recording in the data, plus ``--noise`` clips each
  of white noise, pink-ish noise and digital silence / dither (5 s).
* Speed: embedding and detection, x real time on one CPU thread.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicefake import channel  # noqa: E402
from voicefake.audio.io import load_audio  # noqa: E402
from voicefake.watermark import Payload, detect, embed  # noqa: E402

RATE = 16000
ATTACKS = {
    "none": lambda w, r: w,
    "narrowband 8 kHz": lambda w, r: channel.narrowband(w, RATE),
    "g711": lambda w, r: channel.g711(w, RATE),
    "gsm": lambda w, r: channel.gsm(w, RATE),
    "amr_nb 12.2k": lambda w, r: channel.amr_nb(w, RATE),
    "opus 16k": lambda w, r: channel.opus(w, RATE, bitrate=16000),
    "mp3 64k": lambda w, r: channel.mp3(w, RATE, 64000),
    "aac 64k": lambda w, r: channel.aac(w, RATE, 64000),
    "white noise 20 dB": lambda w, r: channel.add_noise(w, RATE, 20.0, kind="white", seed=r),
    "babble noise 20 dB": lambda w, r: channel.add_noise(w, RATE, 20.0, kind="babble", seed=r),
    "crop 3 s": lambda w, r: _crop(w, r),
    "speed +5%": lambda w, r: channel.speed(w, RATE, 1.05),
    "speed -5%": lambda w, r: channel.speed(w, RATE, 0.95),
    "pitch +1 st": lambda w, r: channel.pitch_shift(w, RATE, 1.0),
    "pitch -1 st": lambda w, r: channel.pitch_shift(w, RATE, -1.0),
    "bandpass 300-3400": lambda w, r: channel.bandpass(w, RATE),
}


def _crop(wav: np.ndarray, seed: int) -> np.ndarray:
    length = 3 * RATE
    start = int(np.random.default_rng(seed).integers(0, max(1, len(wav) - length + 1)))
    return wav[start : start + length]


def real_rows(root: Path) -> list[dict[str, str]]:
    rows = csv.DictReader(open(root / "manifest.csv"))
    return [r for r in rows if r["label"] == "real" and r["media"] == "audio"]


def summary(stats: list[float]) -> dict[str, float]:
    values = np.array(stats)
    return {"min": float(values.min()), "p10": float(np.percentile(values, 10)),
            "median": float(np.median(values)), "max": float(values.max())}


def bit_accuracy(report, payload: Payload) -> float:
    truth = "".join(f"{b:08b}" for b in payload.to_bytes())
    return float(np.mean([a == b for a, b in zip(report.bits, truth, strict=True)]))


def robustness(wavs: list[np.ndarray], others: list[np.ndarray]) -> dict:
    payload = Payload(1, 1, 123)
    results = {name: {"detected": [], "bit_acc": [], "stat": [], "exact": []}
               for name in [*ATTACKS, "concat w/ unmarked"]}
    snrs, pesqs, located = [], [], []
    from pesq import pesq

    for index, wav in enumerate(wavs):
        marked = embed(wav, payload, RATE)
        snrs.append(10 * np.log10(np.sum(wav**2) / np.sum((marked - wav) ** 2)))
        pesqs.append(pesq(RATE, wav, marked, "wb"))
        for name, attack in ATTACKS.items():
            report = detect(attack(marked, index).astype(np.float32), RATE)
            results[name]["detected"].append(report.watermarked)
            results[name]["bit_acc"].append(bit_accuracy(report, payload))
            results[name]["stat"].append(report.statistic)
            results[name]["exact"].append(report.payload == payload)
        filler = others[index % len(others)][: 4 * RATE]
        spliced = np.concatenate([filler, marked, filler])
        report = detect(spliced, RATE)
        results["concat w/ unmarked"]["detected"].append(report.watermarked)
        results["concat w/ unmarked"]["bit_acc"].append(bit_accuracy(report, payload))
        results["concat w/ unmarked"]["stat"].append(report.statistic)
        results["concat w/ unmarked"]["exact"].append(report.payload == payload)
        start, end = len(filler) / RATE, (len(filler) + len(marked)) / RATE
        inside = [s for s in report.segments if s[0] >= start - 0.6 and s[1] <= end + 0.6]
        located.append((len(inside), len(report.segments)))
    table = {name: {"detection_rate": float(np.mean(v["detected"])),
                    "bit_accuracy": float(np.mean(v["bit_acc"])),
                    "payload_exact": float(np.mean(v["exact"])), "statistic": summary(v["stat"])}
             for name, v in results.items()}
    return {"attacks": table, "snr_db": {"mean": float(np.mean(snrs)), "min": float(np.min(snrs))},
            "pesq_wb": {"mean": float(np.mean(pesqs)), "min": float(np.min(pesqs))},
            "splice_segments_inside_marked": int(sum(a for a, _ in located)),
            "splice_segments_total": int(sum(b for _, b in located))}


def false_alarms(root: Path, rows: list[dict[str, str]], noise: int) -> dict:
    stats = []
    for row in rows:
        wav = load_audio(root / row["path"], RATE, allow_silence=True)
        report = detect(wav, RATE)
        stats.append((row["path"], report.statistic, report.watermarked))
    rng = np.random.default_rng(0)
    noise_stats: dict[str, list[float]] = {"white": [], "pink": [], "silence": []}
    noise_hits = 0
    for index in range(noise):
        white = rng.standard_normal(5 * RATE).astype(np.float32) * 0.05
        pink = np.cumsum(rng.standard_normal(5 * RATE)).astype(np.float32)
        pink = (pink - np.convolve(pink, np.ones(64) / 64, "same")) * 0.01
        dither = (index % 2) * 1e-5 * rng.standard_normal(5 * RATE).astype(np.float32)
        silence = np.zeros(5 * RATE, np.float32) + dither
        for kind, wav in (("white", white), ("pink", pink), ("silence", silence)):
            report = detect(wav.astype(np.float32), RATE)
            noise_stats[kind].append(report.statistic)
            noise_hits += report.watermarked
    values = np.array([s for _, s, _ in stats])
    return {"real_files": len(stats), "real_false_alarms": int(sum(w for *_, w in stats)),
            "real_max_statistic": float(values.max()),
            "real_p99_statistic": float(np.percentile(values, 99)),
            "worst": sorted(stats, key=lambda s: -s[1])[:5],
            "noise_silence_clips": 3 * noise, "noise_silence_false_alarms": int(noise_hits),
            "noise_max_statistic": {k: float(max(v)) for k, v in noise_stats.items()}}


def speed(wavs: list[np.ndarray]) -> dict:
    torch.set_num_threads(1)
    audio = np.concatenate(wavs[:10])
    seconds = len(audio) / RATE
    start = time.perf_counter()
    marked = embed(audio, Payload(), RATE)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    detect(marked, RATE)
    detect_s = time.perf_counter() - start
    return {"audio_s": seconds, "embed_x_real_time": seconds / embed_s,
            "detect_x_real_time": seconds / detect_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=30, help="real recordings for robustness")
    parser.add_argument("--noise", type=int, default=1000, help="noise/silence clips per kind")
    parser.add_argument("--seed", type=int, default=0, help="draw of the robustness recordings")
    parser.add_argument("--out", default="runs/bench/watermark.json")
    parser.add_argument("--false-alarms-only", action="store_true", help="skip robustness and speed")
    parser.add_argument("--skip-false-alarms", action="store_true", help="robustness and speed only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(os.environ.get("VOICEFAKE_DATA", "../shared/data"))
    rows = real_rows(root)
    long_rows = [r for r in rows if float(r["duration_s"]) >= 3.0]
    picks = np.random.default_rng(args.seed).choice(len(long_rows), args.files, replace=False)
    wavs = [load_audio(root / long_rows[i]["path"], RATE)[: 10 * RATE] for i in picks]
    others = [load_audio(root / long_rows[i]["path"], RATE) for i in
              np.random.default_rng(1).choice(len(long_rows), 10, replace=False)]
    result: dict = {}
    if not args.false_alarms_only:
        result["speed"] = speed(wavs)
        print(json.dumps(result), flush=True)
        result["robustness"] = robustness(wavs, others)
        print(json.dumps(result["robustness"], indent=1), flush=True)
    if not args.skip_false_alarms:
        result["false_alarms"] = false_alarms(root, rows, args.noise)
        print(json.dumps(result["false_alarms"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
