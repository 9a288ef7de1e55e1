"""Clip-by-clip comparison of two runs of ``benchmarks/cloning.py`` (their ``--json`` reports).

A change to a decoder moves the benchmark's means by a few thousandths of similarity and a few
words; whether it moved most clips or a handful is what decides if it is real. For every row
that both reports hold (or the ``--row`` ones), this prints each run's figures and, clip by
clip (the same target, source and text in both runs), how many clips got closer to the target
by each judge and how many lost or gained words:

    python benchmarks/compare_cloning.py runs/bench/cloning_A.json runs/bench/cloning_B.json
    python benchmarks/compare_cloning.py A.json B.json --row convert_blend0.0_eq0.5_gv0.5_identity10 --json

A row whose clips differ between the two runs (other targets, sources or texts) is refused
with the first clip that differs, since its clips cannot be paired.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from voicefake.metrics import word_error_rate  # noqa: E402

FIGURES = ("similarity_mean", "similarity_min", "similarity_mfcc_mean", "wer", "dnsmos_ovrl",
           "pitch_error_st_mean_abs", "share_above_source", "x_real_time")


def load_report(path: Path) -> dict[str, Any]:
    """A cloning benchmark report; one clear error for a file that is missing or is not one."""
    try:
        report = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file; give the --json report of benchmarks/cloning.py") from None
    except OSError as error:  # a folder, no permission
        raise SystemExit(f"{path}: cannot be read ({error.strerror}); give the --json report of benchmarks/cloning.py") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SystemExit(f"{path}: not JSON ({error}); give the --json report of benchmarks/cloning.py") from None
    if not isinstance(report, dict) or not rows_of(report):
        raise SystemExit(f"{path}: no benchmark rows (rows with 'transcripts'); is it a benchmarks/cloning.py --json report?")
    return report


def rows_of(report: dict[str, Any]) -> list[str]:
    """The report's rows that keep their clips (every row since session 17)."""
    return [key for key, value in report.items() if isinstance(value, dict) and isinstance(value.get("transcripts"), list)]


def _clip_key(clip: dict[str, Any]) -> tuple:
    pair = clip.get("pair")
    return (tuple(pair) if pair else None, clip["text"])


def compare_row(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Both runs' figures of one row and the clip-by-clip differences (``b`` minus ``a``).

    Raises:
        ValueError: the two rows do not hold the same clips in the same order.
    """
    clips_a, clips_b = a["transcripts"], b["transcripts"]
    if len(clips_a) != len(clips_b):
        raise ValueError(f"{len(clips_a)} clips against {len(clips_b)}: the runs did not make the same clips")
    for index, (x, y) in enumerate(zip(clips_a, clips_b, strict=True)):
        if _clip_key(x) != _clip_key(y):
            raise ValueError(f"clip {index} differs: {_clip_key(x)} against {_clip_key(y)}; "
                             "the runs did not make the same clips (other targets, sources or texts)")
    out: dict[str, Any] = {"n": len(clips_a), "a": {k: a[k] for k in FIGURES if k in a},
                           "b": {k: b[k] for k in FIGURES if k in b}}
    for judge in ("similarity", "similarity_mfcc"):
        x = np.array([c.get(judge) for c in clips_a], dtype=float)
        y = np.array([c.get(judge) for c in clips_b], dtype=float)
        if np.isfinite(x).all() and np.isfinite(y).all():
            out[judge] = {"mean_change": float((y - x).mean()), "share_higher": float((y > x).mean())}
    errors_a = np.array([word_error_rate([c["text"]], [c["heard"]]) for c in clips_a])
    errors_b = np.array([word_error_rate([c["text"]], [c["heard"]]) for c in clips_b])
    out["words"] = {"clips_fewer_lost": int((errors_b < errors_a).sum()), "clips_more_lost": int((errors_b > errors_a).sum()),
                    "wer_a": word_error_rate([c["text"] for c in clips_a], [c["heard"] for c in clips_a]),
                    "wer_b": word_error_rate([c["text"] for c in clips_b], [c["heard"] for c in clips_b])}
    return out


def compare(report_a: dict[str, Any], report_b: dict[str, Any], rows: list[str] | None = None) -> dict[str, Any]:
    """:func:`compare_row` for each of ``rows`` (default: every row both reports hold)."""
    shared = [r for r in rows_of(report_a) if r in set(rows_of(report_b))]
    wanted = shared if rows is None else rows
    missing = [r for r in wanted if r not in shared]
    if missing:
        raise ValueError(f"row {missing[0]!r} is not in both reports; rows in both: {', '.join(shared) or 'none'}")
    if not wanted:
        raise ValueError("the two reports share no row")
    return {row: compare_row(report_a[row], report_b[row]) for row in wanted}


def _judge_cell(r: dict[str, Any], name: str, figure: str) -> str:
    """One judge's cell of :func:`to_markdown`: both runs' mean, the mean change and the pairs higher."""
    if name not in r:
        return "–"
    return (f"{r['a'].get(figure, float('nan')):.3f} -> {r['b'].get(figure, float('nan')):.3f} "
            f"({r[name]['mean_change']:+.3f}; {100 * r[name]['share_higher']:.0f} %)")


def to_markdown(result: dict[str, Any], name_a: str, name_b: str) -> str:
    lines = [f"A = {name_a}", f"B = {name_b}", "",
             "| row | clips | Resemblyzer A -> B (pairs higher) | MFCC statistics A -> B (pairs higher) | WER A -> B "
             "(clips with fewer / more words lost) | DNSMOS A -> B |",
             "|---|---|---|---|---|---|"]
    for row, r in result.items():
        w = r["words"]
        lines.append(f"| {row} | {r['n']} | {_judge_cell(r, 'similarity', 'similarity_mean')} | "
                     f"{_judge_cell(r, 'similarity_mfcc', 'similarity_mfcc_mean')} | "
                     f"{100 * w['wer_a']:.1f} -> {100 * w['wer_b']:.1f} % ({w['clips_fewer_lost']} / {w['clips_more_lost']}) | "
                     f"{r['a'].get('dnsmos_ovrl', float('nan')):.3f} -> {r['b'].get('dnsmos_ovrl', float('nan')):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="the first run's --json report (the baseline)")
    parser.add_argument("b", type=Path, help="the second run's --json report")
    parser.add_argument("--row", nargs="+", default=None, help="rows to compare (default: every row in both)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a Markdown table")
    args = parser.parse_args(argv)
    try:
        result = compare(load_report(args.a), load_report(args.b), args.row)
    except ValueError as error:
        raise SystemExit(f"{args.a} against {args.b}: {error}") from None
    print(json.dumps(result) if args.json else to_markdown(result, str(args.a), str(args.b)))


if __name__ == "__main__":
    main()
