"""The frozen-feature LOGO comparison (benchmarks/detection_features.py) scores what it says."""

from __future__ import annotations

import numpy as np
import pytest

from voicefake.data.manifests import ManifestRow

pytest.importorskip("sklearn", reason="scikit-learn is not installed (requirements-dev.txt)")
features_benchmark = pytest.importorskip("benchmarks.detection_features")


def synthetic(seed: int = 0) -> tuple[np.ndarray, list[ManifestRow]]:
    """Two fake families: "loud" sits far from real speech in feature 0 (any probe finds it when
    held out); "hidden" differs only in feature 1, which no other family uses, so a probe trained
    without it cannot find it."""
    rng = np.random.default_rng(seed)
    rows, features = [], []
    for split in ("train", "dev"):
        for channel in ("clean", "phone", "wideband"):
            for folder, shift in (("human", (0, 0)), ("loud", (6, 0)), ("hidden", (0, 6)), ("other", (6, 0))):
                for i in range(30):
                    rows.append(ManifestRow(path=f"{split}/{channel}/{folder}/{i}.flac", label="real" if folder == "human" else "fake",
                                            folder=folder, notes=f"split={split};channel={channel}"))
                    features.append(rng.normal(size=4) + np.array([*shift, 0, 0]))
    return np.array(features), rows


def test_logo_probe_finds_a_family_like_the_trained_ones_and_not_an_unlike_one() -> None:
    features, rows = synthetic()
    result = features_benchmark.evaluate(features, rows, c=1.0)
    assert set(result["logo"]) == {"loud", "hidden", "other"}
    loud, hidden = result["logo"]["loud"], result["logo"]["hidden"]
    assert loud["n_fake"] == 180  # every fake of the family, both splits and all channels
    assert all(loud[ch] < 0.05 for ch in ("clean", "phone", "wideband"))
    assert all(hidden[ch] > 0.3 for ch in ("clean", "phone", "wideband"))
    assert result["dev_all_families"]["pooled"] < 0.1  # in distribution every family is found
    assert set(result["logo_pooled"]) == {"clean", "phone", "wideband"}


def test_fusion_with_fold_scores_uses_both() -> None:
    features, rows = synthetic()
    label = np.array([int(r.is_fake) for r in rows])
    rng = np.random.default_rng(1)
    # fold scores that separate every fake (as if each fold's detector had found a mark all
    # generators share): the fusion, fitted on dev without the held-out family, learns to trust
    # them, and they rescue the family the probe cannot find
    fold_scores = {f: 4.0 * label + rng.normal(size=len(rows)) for f in ("loud", "hidden", "other")}
    result = features_benchmark.evaluate(features, rows, c=1.0, lcnn=fold_scores)
    assert result["logo"]["hidden"]["clean"] > 0.3
    assert result["logo_lcnn"]["hidden"]["clean"] < 0.15
    # the probe pulls the other way on this family, so the fusion lands between the two
    assert result["logo_fused"]["hidden"]["clean"] < result["logo"]["hidden"]["clean"] - 0.1
    assert result["logo_fused"]["loud"]["clean"] < 0.05
    assert {"logo_fused_pooled", "logo_lcnn_mean", "logo_probe_dev_calibrated"} <= set(result)
    # LCNN + alpha x probe, alpha chosen on the other folds: here the fold scores find every
    # family and the probe misses one, so the other folds never ask for much of the probe
    nested = result["logo_fused_nested"]
    assert set(nested) == {"loud", "hidden", "other"}
    assert all(nested[f]["alpha"] <= 1.0 for f in nested)
    assert nested["hidden"]["clean"] < 0.15
    assert set(result["alpha_all_folds"]) == {str(a) for a in features_benchmark.ALPHAS}


def test_unseen_false_alarms_threshold_at_one_percent_of_dev_reals() -> None:
    dev_y = np.r_[np.zeros(1000), np.ones(100)]
    dev_p = np.r_[np.linspace(0, 1, 1000), np.full(100, 0.5)]
    new_p = np.r_[np.full(10, 0.995), np.full(90, 0.2)]
    voices = np.array(["a"] * 50 + ["b"] * 50)
    channels = np.array(["as recorded", "phone"] * 50)
    out = features_benchmark.unseen_false_alarms(dev_p, dev_y, dev_p, dev_y, new_p, voices, channels, None)
    assert out["dev_miss"] == 1.0  # 0.5 is under the 99th percentile of the real scores
    assert out["as recorded"]["pooled"] == pytest.approx(0.1)
    assert out["phone"]["pooled"] == pytest.approx(0.1)


def test_fused_operating_point_sets_a_threshold_per_bandwidth() -> None:
    """Narrowband and wideband dev reals get their own 1 % threshold; new voices are judged by
    the threshold of their own bandwidth."""
    dev_y = np.r_[np.zeros(200), np.ones(20)]
    narrow = np.r_[np.ones(100, bool), np.zeros(100, bool), np.ones(10, bool), np.zeros(10, bool)]
    # narrowband reals score 0-1, wideband reals 10-11; every fake scores 5
    dev = np.r_[np.linspace(0, 1, 100), np.linspace(10, 11, 100), np.full(20, 5.0)]
    new = np.array([5.0, 0.5, 12.0, 10.5])  # narrowband, narrowband, wideband, wideband
    new_narrow = np.array([True, True, False, False])
    channels = np.array(["as recorded", "phone", "as recorded", "phone"])
    out = features_benchmark.fused_operating_point(dev, dev_y, narrow, new, new_narrow, channels)
    assert out["dev_miss"] == 0.5  # the narrowband fakes pass 0.99; the wideband ones stay under 10.99
    assert out["unseen_as_recorded"] == 1.0 and out["unseen_phone"] == 0.0


def test_speaker_weights_make_every_voice_of_a_class_count_the_same() -> None:
    speakers = np.array(["a"] * 8 + ["b"] * 2 + ["c"] * 3 + ["d"])
    labels = np.array([0] * 10 + [1] * 4)
    w = features_benchmark.speaker_weights(speakers, labels)
    assert w[:8].sum() == pytest.approx(w[8:10].sum()) == pytest.approx(5.0)  # 10 reals: 5 each
    assert w[10:13].sum() == pytest.approx(w[13]) == pytest.approx(2.0)       # 4 fakes: 2 each
    # a probe fitted with them no longer learns the dominant voice as "real"
    x = np.c_[(speakers == "a").astype(float), np.zeros(len(speakers))]
    plain = features_benchmark.fit_predict(x, labels, x, c=10.0)
    balanced = features_benchmark.fit_predict(x, labels, x, c=10.0, speakers=speakers)
    assert plain[8] - plain[0] > balanced[8] - balanced[0]


def test_chain_probe_scores_each_family_against_the_chains_own_reals() -> None:
    """--chain-probe: fitted on the whole train split, each of the chain's fake families is scored
    against the chain's reals per channel. A family with a trained family's mark is found even
    though the whole chain sits elsewhere (feature 2); one with a mark no training family has is not."""
    features, rows = synthetic()
    train = np.array(["split=train" in r.notes for r in rows])
    label = np.array([int(r.is_fake) for r in rows])
    rng = np.random.default_rng(1)
    probe_rows, probe_x = [], []
    for channel in ("clean", "phone", "wideband"):
        for folder, shift in (("human", (0, 0, 3, 0)), ("loud", (6, 0, 3, 0)), ("novel", (0, 0, 3, 6))):
            for i in range(40):
                probe_rows.append(ManifestRow(path=f"probe/{channel}/{folder}/{i}.flac",
                                              label="real" if folder == "human" else "fake", folder=folder,
                                              notes=f"split=dev;channel={channel}"))
                probe_x.append(rng.normal(size=4) + np.array(shift))
    out = features_benchmark.chain_probe(features[train], label[train], np.array(probe_x), probe_rows, c=1.0)
    assert set(out) == {"all synthetic", "loud", "novel", "within chain"}
    assert all(out["within chain"][ch] < 0.2 for ch in ("clean", "phone", "wideband"))  # learnable in the chain
    assert all(out["loud"][ch] < 0.05 for ch in ("clean", "phone", "wideband"))
    assert all(out["novel"][ch] > 0.3 for ch in ("clean", "phone", "wideband"))
    assert 0.05 < out["all synthetic"]["clean"] < out["novel"]["clean"]
