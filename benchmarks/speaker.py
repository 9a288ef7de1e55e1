"""Speaker-encoder benchmark: EER on speaker-disjoint dev trials, ours vs Resemblyzer, and speed.

Trials: every pair of the 100 LibriSpeech test-other utterances in $VOICEFAKE_DATA (10 unseen
speakers x 10; 450 same-speaker and 4500 different-speaker trials), scored as ``verify`` scores them
(our model: its ``SpeakerEncoder.score``, AS-norm when it has a cohort, with the cosine EER beside
it; Resemblyzer: cosine):

* ``clean``: both sides as recorded;
* ``phone``: both sides through ``voicefake.channel.phone_call`` (seeded per utterance, a new
  random call for each side);
* ``cross``: clean enrollment against a phone-line test.

Resemblyzer (pretrained GE2E, weights in its wheel) embeds the very same waveforms with its
own standard preprocessing (``preprocess_wav``: VAD trimming + volume normalisation).
Speed: embeddings per second and times real time of 10 s inputs, 1 and 2 torch threads.

With ``--calibrate OUT`` the checkpoint is also calibrated on these trials (logistic
regression on the pooled clean + phone scores, threshold at ``--far``) and written to OUT
(float16), with the rejections / false accepts at that threshold per condition and a
speaker-split check of it. Without ``--calibrate``, a calibrated checkpoint's own threshold is
checked the same way (the shipped float16 model scores a trial or two differently from the
float32 run it was calibrated on).

    VOICEFAKE_DATA=../shared/data python benchmarks/speaker.py [--checkpoint speaker] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from voicefake import api
from voicefake.audio.io import load_audio
from voicefake.channel import phone_call
from voicefake.checkpoint import Checkpoint
from voicefake.data.manifests import data_root, read_manifest
from voicefake.metrics import compute_eer, min_dcf
from voicefake.speaker.inference import fit_calibration

SAMPLE_RATE = 16000


def dev_set(root: Path) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(clean waves, phone waves, speaker ids) of the test-other dev utterances."""
    rows = [r for r in read_manifest(root / "manifest.csv") if "/test-other/" in r.path and r.label == "real"]
    speakers = sorted({r.speaker for r in rows})
    clean = [load_audio(root / r.path, SAMPLE_RATE) for r in rows]
    phone = [phone_call(w, SAMPLE_RATE, seed=1000 + i)[0] for i, w in enumerate(clean)]
    return clean, phone, np.array([speakers.index(r.speaker) for r in rows])


def ours(checkpoint: str):
    return lambda wav: api.embed(wav, checkpoint)


def our_scorer(checkpoint: str):
    """The checkpoint's verification scoring (:meth:`SpeakerEncoder.score`)."""
    module = api.load(checkpoint, kind="speaker").module
    return lambda a, b: module.score(a.float(), b.float())


def resemblyzer():
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)
    return lambda wav: encoder.embed_utterance(preprocess_wav(wav, SAMPLE_RATE))


def score(embed, clean: list[np.ndarray], phone: list[np.ndarray], groups: np.ndarray, scorer=None) -> dict:
    """EER / min-DCF per condition, plus the raw trial scores.

    ``scorer(a, b)`` -> (N, M) scores of embedding sets (our model's :meth:`SpeakerEncoder.score`,
    AS-norm when it has a cohort); None scores by cosine. With a scorer, the cosine EER is
    reported too (``eer_cosine``).
    """
    emb_clean = torch.tensor(np.stack([embed(w) for w in clean]))
    emb_phone = torch.tensor(np.stack([embed(w) for w in phone]))
    cosine = lambda a, b: nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).T  # noqa: E731
    n = len(groups)
    same = groups[:, None] == groups[None, :]
    iu, ju = np.triu_indices(n, 1)
    off = ~np.eye(n, dtype=bool)
    out: dict = {"trials": {}}
    for name, (a, b) in {"clean": (emb_clean, emb_clean), "phone": (emb_phone, emb_phone),
                         "cross": (emb_clean, emb_phone)}.items():
        # clean / phone: every unordered pair; cross: enrol clean i, test phone j, i != j
        pick = (lambda m: m[iu, ju]) if name != "cross" else (lambda m: m[off])
        labels = pick(same).astype(int)
        with torch.inference_mode():
            cos = pick(cosine(a, b).numpy())
            scores = cos if scorer is None else pick(scorer(a, b).numpy())
        eer, threshold = compute_eer(scores, labels)
        out[name] = {"eer": eer, "eer_threshold": threshold, "min_dcf_0.01": min_dcf(scores, labels, 0.01)}
        if scorer is not None:
            out[name]["eer_cosine"] = compute_eer(cos, labels)[0]
        out["trials"][name] = (scores, labels)
    return out


def speed(embed, threads: int, seconds: float = 10.0, repeats: int = 10) -> dict:
    """Embeddings per second and times real time on ``seconds``-long speech-like input
    (median and best of ``repeats``; the best is the least disturbed by other jobs)."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wav = (0.1 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 3 * t) > 0) + 0.01 * rng.standard_normal(t.size))
    wav = wav.astype(np.float32)
    embed(wav)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        embed(wav)
        times.append(time.perf_counter() - start)
    median, best = float(np.median(times)), min(times)
    return {"threads": threads, "embeddings_per_s_median": 1 / median, "x_real_time_median": seconds / median,
            "embeddings_per_s_best": 1 / best, "x_real_time_best": seconds / best}


def calibrate(checkpoint: str, trials: dict, groups: np.ndarray, far: float, out: Path) -> dict:
    """Fits the calibration on pooled clean + phone trials and writes the calibrated checkpoint."""
    scores = np.concatenate([trials["clean"][0], trials["phone"][0]])
    labels = np.concatenate([trials["clean"][1], trials["phone"][1]])
    cal = fit_calibration(scores, labels, far)
    ckpt = Checkpoint.load(checkpoint)
    ckpt.metadata["calibration"] = {
        "scale": cal.scale, "offset": cal.offset, "threshold": cal.threshold, "far": far,
        "trials": "all pairs of LibriSpeech test-other dev utterances (10 speakers x 10), clean and "
                  "both sides through phone_call; the same trials the EER is reported on",
    }
    ckpt.save(out, half=True)
    return {"scale": cal.scale, "offset": cal.offset, "threshold": cal.threshold, "far": far,
            "at_threshold": at_threshold(trials, cal.threshold), "split_check": split_check(trials, groups, far)}


def at_threshold(trials: dict, threshold: float) -> dict:
    """Per condition: same-speaker trials rejected (frr) and different-speaker trials accepted (far)."""
    out = {}
    for name, (scores, labels) in trials.items():
        same = np.asarray(labels).astype(bool)
        scores = np.asarray(scores)
        out[name] = {"frr": float((scores[same] < threshold).mean()), "far": float((scores[~same] >= threshold).mean())}
    return out


def split_check(trials: dict, groups: np.ndarray, far: float) -> list[dict]:
    """Threshold fitted on trials among 5 speakers, FAR/FRR measured on the other 5."""
    i, j = np.triu_indices(len(groups), 1)
    results = []
    for fold in (0, 1):
        fit_side = np.isin(groups, np.arange(10)[fold::2])
        pick_fit = fit_side[i] & fit_side[j]
        pick_test = ~fit_side[i] & ~fit_side[j]
        s = np.concatenate([trials[c][0] for c in ("clean", "phone")])
        y = np.concatenate([trials[c][1] for c in ("clean", "phone")])
        fit_mask, test_mask = np.tile(pick_fit, 2), np.tile(pick_test, 2)
        t = fit_calibration(s[fit_mask], y[fit_mask], far).threshold
        st, yt = s[test_mask], y[test_mask].astype(bool)
        results.append({"threshold": t, "far_heldout": float((st[~yt] >= t).mean()),
                        "frr_heldout": float((st[yt] < t).mean())})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="speaker")
    parser.add_argument("--calibrate", type=Path, help="write the calibrated checkpoint here")
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--systems", default="voicefake,resemblyzer", help="comma-separated subset")
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args()
    root = data_root()
    assert root is not None
    clean, phone, groups = dev_set(root)
    report: dict = {"trials": {"utterances": len(groups), "speakers": int(groups.max() + 1)}}
    makers = {"voicefake": lambda: ours(args.checkpoint), "resemblyzer": resemblyzer}
    systems = {name: makers[name]() for name in args.systems.split(",")}
    for name, embed in systems.items():
        result = score(embed, clean, phone, groups, our_scorer(args.checkpoint) if name == "voicefake" else None)
        trials = result.pop("trials")
        result["speed"] = [speed(embed, threads) for threads in (1, 2)]
        report[name] = result
        if name == "voicefake" and args.calibrate:
            report["calibration"] = calibrate(args.checkpoint, trials, groups, args.far, args.calibrate)
        elif name == "voicefake" and "calibration" in (shipped := Checkpoint.load(args.checkpoint).metadata):
            threshold = shipped["calibration"]["threshold"]
            report["calibration"] = {"threshold": threshold, "at_threshold": at_threshold(trials, threshold)}
        print(name, json.dumps(result, indent=1), flush=True)
    if "calibration" in report:
        print("calibration", json.dumps(report["calibration"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
