"""Speaker check on stereo call recordings: the legs checked apart against the two averaged.

    VOICEFAKE_DATA=../shared/data python benchmarks/speaker_stereo.py --calls 300 --json runs/bench/speaker_stereo.json

Is the enrolled speaker in this call? The 100 LibriSpeech test-other utterances (10 speakers
the speaker encoder never trained on) make the calls. Each call has two legs of one utterance
each, one after the other (A's turn on the left with silence on the right, then B's turn on
the right), each leg through its own simulated phone line (``voicefake.channel.phone_call``).
The enrolled voice is one clean recording of a speaker:

* target calls: the enrolled speaker on one leg (a different recording), another speaker on
  the other; the leg is drawn at random;
* non-target calls: two other speakers.

``verify_embedding`` decides with the legs averaged (``channels="mix"``, as before) and with the
legs checked apart (``"auto"``: the call matches when its best leg does), both at the model's
threshold (1 % false accepts on single-speaker dev trials). The ceiling: the enrolled
speaker's utterance alone through its leg's line, checked as an ordinary recording.
``--echo-db`` adds to each leg the other leg's signal, 40 ms late, at that level (echo). For a mono
recording of both parties, the speaker timeline (``timeline=True``, 3 s windows) is measured
as a decision too: the call matches when any window does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.channel import phone_call
from voicefake.data.manifests import data_root, read_manifest

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="target calls, and as many non-target calls")
    parser.add_argument("--checkpoint", default="speaker")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--echo-db", type=float, default=None, metavar="DB",
                        help="give each leg the other leg's signal at this level (e.g. -25), 40 ms late")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = data_root()
    rows = [r for r in read_manifest(root / "manifest.csv") if "/test-other/" in r.path and r.label == "real"]
    speakers = sorted({r.speaker for r in rows})
    waves = [load_audio(root / r.path, RATE) for r in rows]
    who = np.array([speakers.index(r.speaker) for r in rows])
    rng = np.random.default_rng(0)
    out: dict[str, list] = {"target": [], "non-target": []}
    for index in range(2 * args.calls):
        kind = "target" if index % 2 == 0 else "non-target"
        enrolled_utt = int(rng.integers(len(waves)))
        speaker = who[enrolled_utt]
        others = np.flatnonzero(who != speaker)
        if kind == "target":
            own = [i for i in np.flatnonzero(who == speaker) if i != enrolled_utt]
            legs_utts = [int(rng.choice(own)), int(rng.choice(others))]
            if rng.random() < 0.5:
                legs_utts.reverse()
        else:
            first = int(rng.choice(others))
            legs_utts = [first, int(rng.choice(others[who[others] != who[first]]))]
        a, b = (waves[i] for i in legs_utts)
        left = phone_call(np.concatenate([a, np.zeros_like(b)]), RATE, seed=2 * index)[0]
        right = phone_call(np.concatenate([np.zeros_like(a), b]), RATE, seed=2 * index + 1)[0]
        if args.echo_db is not None:  # each leg also carries the other's voice, 40 ms late
            gain, delay = 10 ** (args.echo_db / 20), int(0.04 * RATE)
            left, right = (left + gain * np.pad(right, (delay, 0))[: right.size],
                           right + gain * np.pad(left, (delay, 0))[: left.size])
        stereo = np.stack([left, right], axis=1)
        enrolled = api.embed_speaker([waves[enrolled_utt]], args.checkpoint)
        mixed = api.verify_embedding(enrolled, stereo, args.checkpoint, channels="mix", timeline=True)
        apart = api.verify_embedding(enrolled, stereo, args.checkpoint, channels="auto")
        true_leg = next((leg for leg, i in enumerate(legs_utts) if who[i] == speaker), None)
        record = {"mix": mixed.same, "mix_any_window": any(seg["same"] for seg in mixed.segments),
                  "mix_windows": len(mixed.segments), "apart": apart.same, "apart_leg": apart.channel, "true_leg": true_leg,
                  "mix_cosine": round(mixed.cosine, 4), "apart_cosine": round(apart.cosine, 4)}
        if true_leg is not None:  # the ceiling: the enrolled speaker's turn alone through its line
            alone = phone_call(waves[legs_utts[true_leg]], RATE, seed=2 * index + true_leg)[0]
            record["alone"] = api.verify_embedding(enrolled, alone, args.checkpoint).same
        out[kind].append(record)
    summary = {
        "target calls": len(out["target"]),
        "accepted, legs averaged": float(np.mean([c["mix"] for c in out["target"]])),
        "accepted, legs averaged, any 3 s window": float(np.mean([c["mix_any_window"] for c in out["target"]])),
        "accepted, legs apart": float(np.mean([c["apart"] for c in out["target"]])),
        "accepted, the speaker's turn alone through its line": float(np.mean([c["alone"] for c in out["target"]])),
        "right leg named when accepted": float(np.mean([c["apart_leg"] == c["true_leg"]
                                                       for c in out["target"] if c["apart"]] or [np.nan])),
        "non-target calls": len(out["non-target"]),
        "false accepts, legs averaged": float(np.mean([c["mix"] for c in out["non-target"]])),
        "false accepts, legs averaged, any 3 s window": float(np.mean([c["mix_any_window"] for c in out["non-target"]])),
        "false accepts, legs apart": float(np.mean([c["apart"] for c in out["non-target"]])),
        "windows per call, mean": float(np.mean([c["mix_windows"] for k in out for c in out[k]])),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, **out}, indent=1))


if __name__ == "__main__":
    main()
