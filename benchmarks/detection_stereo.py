"""Stereo call recordings: each leg scored apart (``channels="auto"``) against the two averaged.

    VOICEFAKE_DATA=../shared/data python benchmarks/detection_stereo.py \
        --data runs/detection/data --unseen runs/data/asterisk --calls 100 --out runs/bench/stereo.json

A PBX records a call as two channels, one per party. Each call here has two legs of two turns
each (A, B, A, B, 0.4 s apart): a leg holds its party's turns and digital silence while the
other party speaks, and then goes through its own simulated phone line
(:func:`voicefake.channel.phone_call`, one seed per leg), so the same channel reaches real and
synthetic legs alike. Three kinds of call, every party a different voice:

* ``real + real, dev voices``: two real dev speakers (the calibration set's voices);
* ``real + real, unseen voices``: two of the Asterisk voices no model here saw (8 kHz prompts,
  three per turn; ``recipes/detection/prepare_asterisk.py``);
* ``real + fake, dev voices``: leg 0 a real dev speaker, leg 1 the dev fakes (every generator
  of the dev split, clean copies) of another.

``--echo-db`` adds to each leg the other leg's signal, 40 ms late, at that level: the echo that a
PBX leg often carries.

For each call: the bundled detector's verdict with the legs averaged (``channels="mix"``),
with the legs scored apart (``"auto"``), which leg decided, each leg alone as a mono file
(silences included), and each party's turns alone (0.4 s apart, no silence for the other
party) through a line drawn from the same seed: the party as one ordinary mono call, the
ceiling of scoring the legs apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.channel import phone_call
from voicefake.data.manifests import ManifestRow, read_manifest

log = logging.getLogger("benchmark")
RATE = 16000
GAP_S = 0.4
ECHO_DELAY_S = 0.04



def by_speaker(rows: list[ManifestRow], root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = defaultdict(list)
    for row in rows:
        out[row.speaker].append(root / row.path)
    return dict(out)


def legs(turns_a: list[np.ndarray], turns_b: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two legs of an A, B, A, B call: each party's turns, digital silence while the other speaks."""
    gap = np.zeros(int(GAP_S * RATE), np.float32)
    a, b = [], []
    for turn_a, turn_b in zip(turns_a, turns_b, strict=True):
        a += [turn_a, gap, np.zeros_like(turn_b), gap]
        b += [np.zeros_like(turn_a), gap, turn_b, gap]
    return np.concatenate(a), np.concatenate(b)


def turn(paths: list[Path]) -> np.ndarray:
    """One turn: the recordings one after the other, 0.2 s apart."""
    pause = np.zeros(int(0.2 * RATE), np.float32)
    return np.concatenate([x for p in paths for x in (load_audio(p, RATE, allow_silence=True), pause)])


def score(path: Path, channels: str, checkpoint: str) -> dict:
    report = api.detect(path, checkpoint, evidence=False, channels=channels)
    info = report.evidence["channels"]
    return {"label": report.label, "p_fake": report.p_fake, "mode": info["mode"], "deciding": info.get("deciding")}


def run_call(kind: str, turns_a: list[np.ndarray], turns_b: list[np.ndarray], seed: int, folder: Path,
             checkpoint: str, echo_db: float | None = None) -> dict:
    leg_a, leg_b = legs(turns_a, turns_b)
    leg_a = phone_call(leg_a, RATE, seed=2 * seed)[0]
    leg_b = phone_call(leg_b, RATE, seed=2 * seed + 1)[0]
    if echo_db is not None:  # each leg also carries the other's voice, delayed and attenuated
        gain, delay = 10 ** (echo_db / 20), int(ECHO_DELAY_S * RATE)
        leg_a, leg_b = (leg_a + gain * np.pad(leg_b, (delay, 0))[: leg_b.size],
                        leg_b + gain * np.pad(leg_a, (delay, 0))[: leg_a.size])
    stereo = folder / f"{seed}.wav"
    sf.write(stereo, np.stack([leg_a, leg_b], axis=1), RATE, subtype="PCM_16")
    out = {"kind": kind, "mix": score(stereo, "mix", checkpoint), "auto": score(stereo, "auto", checkpoint)}
    gap = np.zeros(int(GAP_S * RATE), np.float32)
    for index, (leg, turns) in enumerate(((leg_a, turns_a), (leg_b, turns_b))):
        mono = folder / f"{seed}_leg{index}.wav"
        sf.write(mono, leg, RATE, subtype="PCM_16")
        out[f"leg{index}_alone"] = score(mono, "auto", checkpoint)
        party = phone_call(np.concatenate([x for t in turns for x in (t, gap)]), RATE, seed=2 * seed + index)[0]
        sf.write(mono, party, RATE, subtype="PCM_16")
        out[f"party{index}_alone"] = score(mono, "auto", checkpoint)
    return out


def summarise(calls: list[dict]) -> dict:
    out: dict = {}
    for kind in sorted({c["kind"] for c in calls}):
        items = [c for c in calls if c["kind"] == kind]
        flagged = {key: round(float(np.mean([c[key]["label"] == "fake" for c in items])), 4)
                   for key in ("mix", "auto", "leg0_alone", "leg1_alone", "party0_alone", "party1_alone")}
        row = {"calls": len(items), "flagged": flagged,
               "auto_split": round(float(np.mean([c["auto"]["mode"] == "split" for c in items])), 4)}
        if "fake" in kind:
            caught = [c for c in items if c["auto"]["label"] == "fake"]
            row["fake_leg_decided_when_flagged"] = round(float(np.mean([c["auto"]["deciding"] == 1 for c in caught])), 4) \
                if caught else None
        out[kind] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/detection/data"))
    parser.add_argument("--unseen", type=Path, default=Path("runs/data/asterisk"))
    parser.add_argument("--calls", type=int, default=100, help="calls of each kind")
    parser.add_argument("--checkpoint", default="detection")
    parser.add_argument("--echo-db", type=float, default=None, metavar="DB",
                        help="give each leg the other leg's signal at this level (e.g. -25), 40 ms late: the "
                             "echo a PBX leg often carries")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/stereo.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    dev = [r for r in read_manifest(args.data / "manifest.csv")
           if r.tags.get("split") == "dev" and r.tags.get("channel") == "clean"]
    real = by_speaker([r for r in dev if not r.is_fake], args.data)
    fake = by_speaker([r for r in dev if r.is_fake], args.data)
    unseen = by_speaker([r for r in read_manifest(args.unseen / "manifest.csv")
                         if "new_voice=1" in r.notes and r.duration_s >= 1.0], args.unseen)
    log.info("dev real voices %d, dev fake voices %d, unseen voices %d", len(real), len(fake), len(unseen))

    def pick(pool: dict[str, list[Path]], speaker: str, count: int) -> list[Path]:
        return [pool[speaker][i] for i in rng.choice(len(pool[speaker]), count, replace=count > len(pool[speaker]))]

    calls = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for index in range(3 * args.calls):
            kind = ("real + real, dev voices", "real + real, unseen voices", "real + fake, dev voices")[index % 3]
            if kind == "real + real, unseen voices":
                a, b = rng.choice(sorted(unseen), 2, replace=False)
                turns_a = [turn(pick(unseen, a, 3)) for _ in range(2)]
                turns_b = [turn(pick(unseen, b, 3)) for _ in range(2)]
            else:
                other = fake if "fake" in kind else real
                a = str(rng.choice(sorted(real)))
                b = str(rng.choice(sorted(s for s in other if s != a)))
                turns_a = [turn(pick(real, a, 1)) for _ in range(2)]
                turns_b = [turn(pick(other, b, 1)) for _ in range(2)]
            calls.append(run_call(kind, turns_a, turns_b, index, folder, args.checkpoint, args.echo_db))
            if (index + 1) % 30 == 0:
                log.info("%d calls: %s", index + 1, summarise(calls))
    result = {"calls_per_kind": args.calls, "echo_db": args.echo_db, "summary": summarise(calls), "calls": calls}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
