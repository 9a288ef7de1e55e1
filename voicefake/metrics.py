"""Evaluation metrics shared by every capability: EER, min-DCF and cosine scoring.

Scores are "higher means more likely the target class" (same speaker, fake, in sync, ...);
labels are 1 for target trials and 0 for non-target trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def _check(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not y.any() or y.all():
        raise ValueError("need at least one target (label 1) and one non-target (label 0) trial")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def error_rates(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-reject and false-accept rates at every distinct threshold.

    A trial is accepted when ``score >= threshold``. Thresholds are the sorted distinct scores
    plus +inf (accept nothing).

    Returns:
        ``(thresholds, frr, far)``, each (K,), thresholds increasing (frr rising, far falling).
    """
    s, y = _check(scores, labels)
    thresholds = np.append(np.unique(s), np.inf)
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # rejected at threshold t: every trial with score < t
    below = np.searchsorted(s_sorted, thresholds, side="left")
    tgt_below = np.concatenate([[0], np.cumsum(y_sorted)])[below]
    non_below = np.concatenate([[0], np.cumsum(~y_sorted)])[below]
    frr = tgt_below / y.sum()
    far = 1.0 - non_below / (~y).sum()
    return thresholds, frr, far


def compute_eer(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where false accepts meet false rejects.

    The EER is taken where ``|FAR - FRR|`` is smallest over the score thresholds and is the
    mean of the two rates there (exact when they cross at a threshold).

    Args:
        scores: (N,) trial scores, higher = more likely target.
        labels: (N,) 1 for target, 0 for non-target.

    Returns:
        ``(eer, threshold)``: eer in [0, 1]; accept when ``score >= threshold``.

    Raises:
        ValueError: mismatched lengths, a single class, or non-finite scores.
    """
    thresholds, frr, far = error_rates(scores, labels)
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2), float(thresholds[i])


def min_dcf(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
            p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum normalised detection cost (NIST SRE), over all thresholds.

    ``DCF = c_miss * p_target * FRR + c_fa * (1 - p_target) * FAR``, divided by the cost of the
    best trivial system ``min(c_miss * p_target, c_fa * (1 - p_target))``.

    Returns:
        min-DCF >= 0 (1.0 = no better than always accepting or always rejecting).
    """
    if not 0 < p_target < 1:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    _, frr, far = error_rates(scores, labels)
    dcf = c_miss * p_target * frr + c_fa * (1 - p_target) * far
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def threshold_at_far(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                     far: float) -> float:
    """The lowest threshold whose false-accept rate is at most ``far`` (accept ``score >= t``)."""
    thresholds, _, rates = error_rates(scores, labels)
    # tolerance: rates are k / N in floating point (1 - 0.95 > 0.05)
    return float(thresholds[int(np.argmax(rates <= far + 1e-12))])


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarities between rows: a (N, D), b (K, D) -> (N, K)."""
    a = torch.nn.functional.normalize(a.float(), dim=-1)
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    return a @ b.T


def pairwise_trials(emb: torch.Tensor, groups: Sequence[int] | torch.Tensor
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of rows as a trial: cosine score, label 1 if same group.

    Args:
        emb: (N, D) embeddings.
        groups: (N,) group (speaker) ids.

    Returns:
        ``(scores, labels)``, each (N * (N - 1) / 2,).
    """
    groups = torch.as_tensor(groups)
    sims = cosine_matrix(emb, emb)
    i, j = torch.triu_indices(len(groups), len(groups), offset=1)
    return sims[i, j].numpy(), (groups[i] == groups[j]).numpy().astype(np.int64)


def _binned(probs: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
            bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float arrays of probabilities and labels, and each probability's bin index."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"probs and labels must be non-empty and equal in length: {p.size} vs {y.size}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probs must lie in [0, 1]")
    return p, y, np.minimum((p * bins).astype(int), bins - 1)


def reliability_table(probs: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                      bins: int = 10) -> list[dict[str, float]]:
    """The numbers behind a reliability diagram: per equal-width probability bin, how many
    predictions fell in it, their mean probability and the observed rate of label 1.

    A calibrated model has ``observed`` close to ``mean_p`` in every populated bin; the
    expected calibration error is the count-weighted mean of the gaps.

    Returns:
        ``[{"low", "high", "n", "mean_p", "observed"}]`` for the populated bins, in order.
    """
    p, y, index = _binned(probs, labels, bins)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append({"low": b / bins, "high": (b + 1) / bins, "n": int(mask.sum()),
                          "mean_p": float(p[mask].mean()), "observed": float(y[mask].mean())})
    return table


def expected_calibration_error(probs: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                               bins: int = 10) -> float:
    """Expected calibration error of binary probabilities (equal-width bins).

    Args:
        probs: predicted P(label = 1), each in [0, 1].
        labels: 1 or 0.
        bins: number of equal-width probability bins.

    Returns:
        sum over bins of (bin share) * |mean label - mean probability|, in [0, 1].
    """
    p, y, index = _binned(probs, labels, bins)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(error)


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
_CURRENCY = {"$": "dollars", "\u00a3": "pounds", "\u20ac": "euros"}


def spell_number(n: int) -> list[str]:
    """A non-negative integer as English words, American style ("forty thousand", no "and").

    Example:
        >>> spell_number(40250)
        ['forty', 'thousand', 'two', 'hundred', 'fifty']
    """
    if n < 0:
        raise ValueError(f"spell_number takes n >= 0, got {n}")
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (spell_number(n % 10) if n % 10 else [])
    if n < 1000:
        return spell_number(n // 100) + ["hundred"] + (spell_number(n % 100) if n % 100 else [])
    for scale, name in _SCALES:
        if n >= scale:
            return spell_number(n // scale) + [name] + (spell_number(n % scale) if n % scale else [])
    raise AssertionError("unreachable")


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return words[:-1] + [last]


def spell_numbers(text: str) -> str:
    """Writes the numbers in ``text`` as words, so that an ASR's "$40,000" and a script's
    "forty thousand dollars" count as the same words.

    Handles thousands separators, decimals ("3.5" -> "three point five"), currency signs
    ($, GBP, EUR: the unit goes after the number), "%" and ordinals ("21st").
    """
    import re

    def number(digits: str, decimals: str | None) -> list[str]:
        words = spell_number(int(digits.replace(",", "")))
        if decimals:
            words += ["point"] + [_ONES[int(d)] for d in decimals]
        return words

    def currency(m: re.Match[str]) -> str:
        return " ".join(number(m.group(2), m.group(3)) + [_CURRENCY[m.group(1)]])

    def percent(m: re.Match[str]) -> str:
        return " ".join(number(m.group(1), m.group(2)) + ["percent"])

    def ordinal(m: re.Match[str]) -> str:
        return " ".join(_ordinal(spell_number(int(m.group(1)))))

    def cardinal(m: re.Match[str]) -> str:
        return " ".join(number(m.group(1), m.group(2)))

    num = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
    text = re.sub(r"([$\u00a3\u20ac])\s?" + num, currency, text)
    text = re.sub(num + r"\s?%", percent, text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", ordinal, text)
    return re.sub(num, cardinal, text)


def normalize_words(text: str) -> list[str]:
    """Lower-cases, writes numbers as words (:func:`spell_numbers`), drops apostrophes
    ("it's" -> "its") and other punctuation, splits on spaces."""
    import re

    text = spell_numbers(text.lower().replace("'", "").replace("\u2019", ""))
    text = re.sub(r"[^a-z ]+", " ", text)
    return text.split()


def edit_distance(reference: Sequence[Any], hypothesis: Sequence[Any]) -> int:
    """Levenshtein distance between two token sequences (words, phone ids...)."""
    previous = list(range(len(hypothesis) + 1))
    for i, token in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, other in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != other))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after :func:`normalize_words`."""
    ref = normalize_words(reference)
    return edit_distance(ref, normalize_words(hypothesis)), len(ref)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total word edits / total reference words (0 for an empty reference set)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)]
    total = sum(n for _, n in pairs)
    return sum(e for e, _ in pairs) / total if total else 0.0
