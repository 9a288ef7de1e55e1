"""EER / min-DCF on hand-built score lists with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicefake.metrics import compute_eer, cosine_matrix, min_dcf, pairwise_trials, threshold_at_far


def test_perfect_separation_has_zero_eer() -> None:
    eer, threshold = compute_eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert eer == 0.0
    assert 0.2 < threshold <= 0.8


def test_fully_inverted_scores_have_eer_one() -> None:
    eer, _ = compute_eer([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0])
    assert eer == 1.0


def test_known_eer_one_in_four() -> None:
    # targets 0.9 0.8 0.7 0.3, non-targets 0.6 0.2 0.1 0.05: at t=0.6 FRR=1/4 (0.3), FAR=1/4 (0.6)
    scores = [0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    eer, threshold = compute_eer(scores, labels)
    assert eer == pytest.approx(0.25)
    assert threshold in (0.6, 0.7)


def test_min_dcf_known_values() -> None:
    assert min_dcf([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 0.0
    # nothing separates: best is a trivial system, normalised cost 1
    assert min_dcf([0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert min_dcf([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0], p_target=0.5) == pytest.approx(1.0)
    # p_target 0.5: t=0.9 rejects one target (FRR .5, FAR 0): 0.25 / 0.5
    assert min_dcf([0.9, 0.1, 0.5, 0.4], [1, 1, 0, 0], p_target=0.5) == pytest.approx(0.5)
    assert min_dcf([0.9, 0.45, 0.5, 0.4], [1, 1, 0, 0], p_target=0.5) == pytest.approx(0.5)


def test_threshold_at_far() -> None:
    scores = np.r_[np.linspace(0, 1, 100), [2.0, 3.0]]
    labels = np.r_[np.zeros(100), [1, 1]]
    t = threshold_at_far(scores, labels, far=0.05)
    assert (scores[labels == 0] >= t).mean() <= 0.05
    assert t == pytest.approx(scores[95])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="target"):
        compute_eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="length"):
        compute_eer([0.1, 0.2, 0.3], [1, 0])


def test_pairwise_trials() -> None:
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]])
    scores, labels = pairwise_trials(emb, [0, 0, 1])
    assert labels.tolist() == [1, 0, 0]
    assert scores[0] > 0.99 and abs(scores[2] - 0.05) < 0.01
    assert cosine_matrix(emb, emb).shape == (3, 3)


def test_expected_calibration_error_known_values() -> None:
    from voicefake.metrics import expected_calibration_error

    assert expected_calibration_error([0.0, 1.0], [0, 1]) == 0.0
    # all predictions 0.8, half positive: |0.5 - 0.8| = 0.3
    assert abs(expected_calibration_error([0.8] * 4, [1, 0, 1, 0]) - 0.3) < 1e-9
    with pytest.raises(ValueError):
        expected_calibration_error([1.5], [1])


def test_reliability_table_bins_and_agrees_with_ece() -> None:
    from voicefake.metrics import expected_calibration_error, reliability_table

    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, 4000)
    labels = (rng.uniform(0, 1, 4000) < probs).astype(int)  # calibrated by construction
    table = reliability_table(probs, labels, bins=10)
    assert len(table) == 10 and sum(b["n"] for b in table) == 4000
    assert all(b["low"] <= b["mean_p"] < b["high"] for b in table)
    assert all(abs(b["observed"] - b["mean_p"]) < 0.06 for b in table)
    ece = sum(b["n"] / 4000 * abs(b["observed"] - b["mean_p"]) for b in table)
    assert abs(ece - expected_calibration_error(probs, labels)) < 1e-12
    # an over-confident model: observed rates fall short of its probabilities at the top
    top = reliability_table(np.full(10, 0.95), [1] * 5 + [0] * 5)
    assert len(top) == 1 and top[0]["n"] == 10 and top[0]["observed"] == 0.5
    assert top[0]["low"] == 0.9 and top[0]["mean_p"] == pytest.approx(0.95)
    with pytest.raises(ValueError):
        reliability_table([0.5], [1, 0])
