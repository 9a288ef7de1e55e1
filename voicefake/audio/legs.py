"""The channels of a recording: which to analyse apart, and a call leg's own speech.

A PBX records a call as two channels, one per party (a "leg" each). Averaged to mono, each
party's voice is mixed with the other's; analysed apart, each leg speaks for one person, which
is what the synthetic-speech detector and the speaker check need. Used by
:func:`voicefake.api.detect` and :func:`voicefake.api.verify_embedding`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voicefake.audio.decode import SILENCE_LEVEL

CHANNEL_MODES = ("auto", "mix", "split")
QUIET_CHANNEL_DB = -40.0
"""In ``auto`` mode, a channel this far below the loudest one carries no voice of its own."""
SAME_CHANNEL_CORRELATION = 0.99
"""In ``auto`` mode, channels correlated this closely carry one signal (dual mono)."""


def check_channel_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`CHANNEL_MODES`, else one clear ValueError."""
    if mode not in CHANNEL_MODES:
        raise ValueError(f"channels={mode!r} is not one of {', '.join(CHANNEL_MODES)}")
    return mode


def plan_channels(frames: np.ndarray, mode: str = "auto") -> tuple[list[int], dict[str, Any]]:
    """Which channels of a (T, C) recording to analyse apart, and why.

    A stereo call recording (a PBX's two legs, caller left and callee right) averaged to mono
    dilutes a synthetic voice on one leg with the real voice on the other, and mixes two
    speakers for a speaker check. Analysed apart, each leg gets its own answer: the detector's
    recording is "fake" when any leg is, the speaker check reports the leg that matches.

    Modes: ``"mix"`` averages the channels (what every input got before this option);
    ``"split"`` takes every channel that is not digital silence; ``"auto"`` splits a two-channel recording unless its channels
    carry one signal (correlation >= :data:`SAME_CHANNEL_CORRELATION`) or one of them is
    :data:`QUIET_CHANNEL_DB` below the other, and mixes recordings of three or more channels
    (surround sound is not a call: its channels are not one voice each).

    Returns:
        (channel indices to score apart, empty to score the mix;
        ``{"count", "mode": "mono"|"mix"|"split", "reason"[, "skipped"]}`` for the report).
    """
    check_channel_mode(mode)
    frames = np.asarray(frames, np.float64)
    count = frames.shape[1]
    if count == 1:
        return [], {"count": 1, "mode": "mono", "reason": "one channel"}
    if mode == "mix":
        return [], {"count": count, "mode": "mix", "reason": "asked to average the channels"}
    if mode == "split":
        peaks = np.abs(frames).max(axis=0)
        keep = [c for c in range(count) if peaks[c] >= SILENCE_LEVEL]
        info: dict[str, Any] = {"count": count, "mode": "split", "reason": "asked to score the channels apart"}
        skipped = [{"channel": c, "reason": "digital silence"} for c in range(count) if c not in keep]
        return keep, {**info, "skipped": skipped} if skipped else info
    if count != 2:
        return [], {"count": count, "mode": "mix",
                    "reason": f"{count} channels are averaged unless asked to split them (channels='split')"}
    energy = (frames ** 2).mean(axis=0)
    level = 10 * np.log10(np.maximum(energy, 1e-20) / max(float(energy.max()), 1e-20))
    if level.min() < QUIET_CHANNEL_DB:
        quiet = int(level.argmin())
        how = "digital silence" if np.abs(frames[:, quiet]).max() < SILENCE_LEVEL else f"{-level.min():.0f} dB below the other"
        return [], {"count": 2, "mode": "mix", "reason": f"channel {quiet} is {how}: one voice"}
    correlation = float((frames[:, 0] @ frames[:, 1]) / max(float(np.sqrt(energy.prod())) * len(frames), 1e-20))
    if correlation >= SAME_CHANNEL_CORRELATION:
        return [], {"count": 2, "mode": "mix", "reason": f"the channels carry one signal (correlation {correlation:.3f})"}
    return [0, 1], {"count": 2, "mode": "split", "reason": f"two different channels (correlation {correlation:.2f})"}


LEG_GAP_S = 1.0
"""A stretch of a call leg this long or longer, quiet for the leg, is taken for the other party's turn."""
LEG_PAUSE_S = 0.3
"""What is kept of each such stretch (half at each edge): a pause, as in speech."""


LEG_ECHO_REACH_S = 0.1
"""How late (or early) an echo of the other leg may arrive: each frame is compared with the other
leg's loudest frame within this distance."""
LEG_OTHER_DB = 10.0
"""A leg's frame this far below another leg's at the same time is the other party heard as echo
(a scaled copy of the other leg), not this party's speech."""


def _frame_levels(wav: np.ndarray, frame: int, count: int) -> np.ndarray:
    power = (np.asarray(wav[: count * frame], np.float64).reshape(count, frame) ** 2).mean(axis=1)
    return 10 * np.log10(power + 1e-12)


def leg_speech(wav: np.ndarray, sample_rate: int, others: list[np.ndarray] | None = None) -> list[tuple[int, int]]:
    """The sample intervals of one leg of a call recording to score: all but its long silences.

    A PBX channel holds one party: while the other party speaks, it carries silence or line
    noise. Scored as it is, that silence dilutes the leg's utterance score (the network
    averages its frames) and shifts its per-band normalisation: a vocoder copy that scores
    p_fake 0.9996 alone scored 0.74 with as much digital silence before it. Frames (30 ms) more
    than a quarter of the way from the leg's noise floor (10th percentile of frame energy) to its
    loud speech (99th percentile) are active; quiet runs of at least :data:`LEG_GAP_S` are cut
    down to :data:`LEG_PAUSE_S`. A leg whose frames span less than 10 dB (noise only, or speech
    without pauses) is kept whole.

    With ``others`` (the call's other legs, same length), a frame also counts as quiet when it is
    :data:`LEG_OTHER_DB` or more below another leg at the same time (its loudest frame within
    :data:`LEG_ECHO_REACH_S`, so a delayed echo is covered): the other party heard as echo on
    this leg, a scaled copy of their leg, whatever the two parties' levels. Both
    parties talking at once at similar levels stay in both legs.

    Returns:
        ``[(start, end), ...]`` sample intervals, sorted, covering at least one frame.
    """
    frame = max(1, int(0.03 * sample_rate))
    count = wav.size // frame
    if count < 2:
        return [(0, wav.size)]
    level = _frame_levels(wav, frame, count)
    floor, loud = np.percentile(level, 10), np.percentile(level, 99)
    if loud - floor < 10.0:
        return [(0, wav.size)]
    quiet = level < floor + 0.25 * (loud - floor)
    reach = int(round(LEG_ECHO_REACH_S * sample_rate / frame))
    for other in others or []:  # the other leg's envelope: its level at most LEG_ECHO_REACH_S earlier or later
        theirs = np.pad(_frame_levels(other, frame, count), reach, mode="edge")
        envelope = np.lib.stride_tricks.sliding_window_view(theirs, 2 * reach + 1).max(axis=1)
        quiet |= level < envelope - LEG_OTHER_DB
    gap, half_pause = int(np.ceil(LEG_GAP_S * sample_rate / frame)), int(LEG_PAUSE_S * sample_rate / frame) // 2
    cuts = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    for first, last in zip(edges[::2], edges[1::2], strict=True):  # quiet frames [first, last)
        if last - first >= gap:
            cuts.append((first + (half_pause if first > 0 else 0), last - (half_pause if last < count else 0)))
    kept, start = [], 0  # frames
    for a, b in cuts:
        if a > start:
            kept.append((start * frame, a * frame))
        start = b
    if start < count:
        kept.append((start * frame, wav.size))
    return kept or [(0, wav.size)]


def to_original_time(seconds: np.ndarray, kept: list[tuple[int, int]], sample_rate: int) -> np.ndarray:
    """Times (s) in a waveform joined from ``kept`` sample intervals -> times in the original."""
    lengths = np.array([b - a for a, b in kept])
    joined_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    samples = np.asarray(seconds, np.float64) * sample_rate
    piece = np.clip(np.searchsorted(joined_starts, samples, side="right") - 1, 0, len(kept) - 1)
    return (np.array([a for a, _ in kept])[piece] + samples - joined_starts[piece]) / sample_rate


def own_speech(frames: np.ndarray, channel: int, sample_rate: int,
               legs: list[int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One leg of a (T, C) call on its own speech: (the joined speech, the kept sample
    intervals of :func:`leg_speech`), with the call's other ``legs`` as the echo references."""
    leg = frames[:, channel]
    kept = leg_speech(leg, sample_rate, [frames[:, c] for c in legs if c != channel])
    return np.concatenate([leg[a:b] for a, b in kept]), kept
