"""Benford first-digit statistics."""

from __future__ import annotations

import numpy as np

from voicefake.detection.benford import (
    BENFORD,
    benford_stats,
    digit_histogram,
    first_digits,
    js_divergence,
)


def test_first_digits() -> None:
    assert first_digits(np.array([1.0, 23.0, 0.0456, 9.99, 0.0, -3.0])).tolist() == [1, 2, 4, 9]


def test_benford_reference_sums_to_one_and_matches_itself() -> None:
    assert abs(BENFORD.sum() - 1) < 1e-12
    assert js_divergence(BENFORD) < 1e-12
    uniform = np.full(9, 1 / 9)
    assert 0 < js_divergence(uniform) < 1


def test_log_uniform_data_follows_benford() -> None:
    values = 10 ** np.random.default_rng(0).uniform(-3, 3, 200_000)
    assert js_divergence(digit_histogram(values)) < 1e-4


def test_stats_on_waveform() -> None:
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    stats = benford_stats(wav)
    assert len(stats.histogram) == 9 and abs(sum(stats.histogram) - 1) < 1e-6
    assert 0 <= stats.divergence <= 1 and 0 <= stats.pause_divergence <= 1
    assert set(stats.to_dict()) == {"histogram", "divergence", "pause_divergence"}
    assert benford_stats(np.zeros(10, np.float32)).divergence == 1.0  # nothing to count
