"""Figures and printable reports for the demo (presentation only; numbers come from voicefake.api)."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

SAMPLE_RATE = 16000


LEG_COLORS = ("#1f77b4", "#ff7f0e")  # left, right


def timeline_figure(wav: np.ndarray, report: dict[str, Any], threshold: float) -> plt.Figure:
    """Waveform on top, segment p_fake under it, with the decision threshold.

    ``wav`` is (T,) or (T, channels) at :data:`SAMPLE_RATE`. For a stereo call whose legs were
    scored apart, each leg's waveform is drawn in its own colour, and a strip under the windows
    shows which leg each window's p_fake is from.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 3.6), sharex=True, height_ratios=[1, 1.2])
    frames = wav if wav.ndim == 2 else wav[:, None]
    t = np.arange(len(frames)) / SAMPLE_RATE
    step = max(1, len(frames) // 4000)
    legs = report.get("channels") and frames.shape[1] == 2
    if legs:
        peak = float(np.abs(frames).max()) or 1.0
        for side, name in enumerate(("left", "right")):
            top.plot(t[::step], frames[::step, side] / peak + (1 - 2 * side), lw=0.6, color=LEG_COLORS[side], label=name)
        top.legend(loc="upper right", fontsize=7, ncol=2)
    else:
        top.plot(t[::step], frames[::step].mean(axis=1), lw=0.6, color="#444")
    top.set_ylabel("waveform")
    top.set_yticks([])
    # one collection for all windows: an hour-long call has 7200 of them
    starts, ends, probs = (np.array([seg[key] for seg in report["segments"]]) for key in ("start", "end", "p_fake"))
    colors = np.where(probs >= threshold, "#d62728", "#2ca02c")
    boxes = [((a, 0.0), (a, p), (b, p), (b, 0.0)) for a, b, p in zip(starts, ends, probs, strict=True)]
    bottom.add_collection(PolyCollection(boxes, facecolors=colors, alpha=0.25, edgecolors="none"))
    bottom.hlines(probs, starts, ends, colors=colors, lw=2)
    if legs:  # which leg each window is from
        sides = [seg.get("channel", 0) for seg in report["segments"]]
        strip = [((a, 0.0), (a, 0.04), (b, 0.04), (b, 0.0)) for a, b in zip(starts, ends, strict=True)]
        bottom.add_collection(PolyCollection(strip, facecolors=[LEG_COLORS[c % 2] for c in sides], edgecolors="none"))
    for span in report["evidence"].get("flagged_spans", []):
        top.axvspan(span["start"], span["end"], color="#d62728", alpha=0.15)
    bottom.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("p_fake per window")
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def evidence_figure(spec_db: np.ndarray, report: dict[str, Any], start: float = 0.0) -> plt.Figure:
    """Spectrogram with the saliency evidence: bands (right bar) and time spans (shaded).

    ``spec_db`` may show a part of the recording (a long call's 30 s around the evidence)
    beginning at ``start`` seconds; the whole recording by default.
    """
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(9, 3.2), width_ratios=[12, 1], sharey=True)
    end = start + min(report["duration"], (spec_db.shape[1] - 1) * 160 / SAMPLE_RATE)  # 10 ms frames
    vmax = float(np.percentile(spec_db, 99.5))
    ax.imshow(spec_db, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
              extent=(start, end, 0, SAMPLE_RATE / 2))
    ax.set_xlim(start, end)
    saliency = report["evidence"].get("saliency", {})
    for span in saliency.get("spans", []):
        ax.axvspan(span["start"], span["end"], color="cyan", alpha=min(0.5, 0.1 + span["share"]), lw=0)
    bands = saliency.get("bands", [])
    if bands:
        shares = np.array([b["share"] for b in bands])
        lows = np.array([b["low_hz"] for b in bands])
        highs = np.array([b["high_hz"] for b in bands])
        bar.barh(lows, shares, height=highs - lows, align="edge", color="cyan", edgecolor="k")
        bar.set_xlabel("share")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title("spectrogram; shaded: time spans that drove the score", fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig: plt.Figure) -> str:
    """A figure as a base64 PNG (for the HTML report); closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _threshold_note(report: dict[str, Any]) -> str:
    evidence = report["evidence"]
    if evidence.get("threshold_set_by") == "user":
        return f"threshold {report['threshold']:.3f}, set by you"
    if evidence.get("threshold_set_by") == "legs":
        legs = len(report.get("channels") or [])
        return (f"threshold {report['threshold']:.3f} for each of {legs} legs, so that the call as a whole keeps "
                f"{100 * evidence.get('far_target', 0):.1f}% false alarms on dev real speech")
    band = evidence.get("bandwidth", {})
    condition = f" {band['condition']}" if band.get("narrowband_below_db") is not None and "condition" in band else ""
    return (f"threshold {report['threshold']:.3f}, chosen at {100 * evidence.get('far_target', 0):.1f}% false alarms "
            f"on{condition} dev real speech")


def channel_name(index: int, count: int) -> str:
    """'left channel' / 'right channel' for a stereo call, 'channel N' otherwise."""
    return ("left", "right")[index] + " channel" if count == 2 else f"channel {index}"


def verdict_markdown(name: str, report: dict[str, Any], extra: dict[str, Any]) -> str:
    """A short human verdict for one file."""
    label = report["label"].upper()
    icon = "🔴" if report["label"] == "fake" else "🟢"
    lines = [
        f"### {icon} {html.escape(name)}: **{label}**",
        f"p_fake = **{report['p_fake']:.3f}** ({_threshold_note(report)}) · "
        f"{report['duration']:.1f} s · model {report['model']['name']} {report['model']['version']}",
    ]
    if report["evidence"].get("caution"):
        lines.append(f"⚠️ {html.escape(report['evidence']['caution'])}")
    channels = report["evidence"].get("channels", {})
    if report.get("channels"):
        legs = "; ".join(f"{channel_name(c['evidence']['channel'], channels['count'])}: {c['label'].upper()} "
                         f"(p_fake {c['p_fake']:.3f})" for c in report["channels"])
        lines.append(f"**{channels['count']} channels scored apart** ({legs}); the verdict is "
                     f"{channel_name(channels['deciding'], channels['count'])}'s")
    elif channels.get("count", 1) > 1:
        lines.append(f"{channels['count']} channels averaged: {html.escape(channels['reason'])}")
    benford = report["evidence"].get("benford")
    if benford:
        lines.append(f"Benford statistics: `{json.dumps({k: v for k, v in benford.items() if not isinstance(v, dict)})}`"
                     f", real-speech reference range `{json.dumps(benford.get('reference_range_real', {}))}`")
    for key, value in extra.items():
        lines.append(f"**{key}**: {value}")
    return "\n\n".join(lines)


def report_html(items: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """A printable HTML report: per-file hash, verdict, figures and evidence, plus the settings."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>voicefake detection report</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}pre{white-space:pre-wrap;"
        "background:#f4f4f4;padding:6px}img{max-width:100%}.fake{color:#b00}.real{color:#070}</style>",
        "</head><body><h1>voicefake detection report</h1>",
        f"<p>Settings: <code>{html.escape(json.dumps(settings))}</code></p>",
    ]
    for item in items:
        report = item["report"]
        parts += [
            f"<h2>{html.escape(item['file'])}: <span class='{report['label']}'>{report['label'].upper()}</span></h2>",
            f"<p>sha256 <code>{item['sha256']}</code><br>p_fake {report['p_fake']:.4f} at threshold "
            f"{item['threshold']:.4f}; model {html.escape(json.dumps(report['model']))}</p>",
        ]
        for key in ("timeline_png", "evidence_png"):
            if item.get(key):
                parts.append(f"<img alt='{key}' src='data:image/png;base64,{item[key]}'>")
        extra = {k: v for k, v in item.items() if k not in ("report", "timeline_png", "evidence_png")}
        parts.append(f"<pre>{html.escape(json.dumps({'checks': extra, 'report': report}, indent=1))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
