"""Telephone channel simulation: filters, codecs, packet loss, noise and reverb.

Every channel function takes a mono waveform ``wav`` (``(T,)`` float, nominally in
[-1, 1]) and its ``sample_rate`` in Hz, and returns a new ``(T,)`` float32 waveform at the
same sample rate and of the same length. The one exception is :func:`speed`, whose
output length is ``T / factor``.

Codecs run entirely in memory (soundfile on ``io.BytesIO``, PyAV codec contexts) and
their constant delay is removed, so outputs are time-aligned with the input to within
one sample at the codec rate. Codec inputs are clipped to [-1, 1], as a real codec's
16-bit input would be. Telephone codecs run at 8 kHz: the input is resampled to 8 kHz
and the decoded audio back to ``sample_rate``, so nothing above 4 kHz survives.

Randomness enters only through a ``seed`` argument (an ``int`` or a
``np.random.Generator``), so a channel is reproducible. A chain of channels is a list of
:class:`ChannelStep` (name + JSON-friendly parameters); :func:`apply_chain` replays one
and :func:`phone_call` draws a random, realistic one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voicefake.channel.base import (
    AMR_NB_BITRATES,
    NOISE_KINDS,
    OPUS_RATES,
    TELEPHONE_RATE,
    NoiseKind,
    _check,
    _rng,
)
from voicefake.channel.codecs import aac, amr_nb, g711, gsm, mp3, opus, packet_loss
from voicefake.channel.effects import (
    add_noise,
    bandpass,
    equalize,
    level,
    narrowband,
    pitch_shift,
    reverb,
    speed,
)

__all__ = ["AMR_NB_BITRATES", "CHANNELS", "NOISE_KINDS", "OPUS_RATES", "TELEPHONE_RATE", "Chain",
           "ChannelStep", "NoiseKind", "aac", "add_noise", "amr_nb", "apply_chain", "bandpass", "compose",
           "draw_phone_steps", "draw_recording_steps", "equalize", "g711", "gsm", "level", "mp3", "narrowband",
           "opus", "packet_loss", "phone_call", "pitch_shift", "recording_chain", "reverb", "speed"]


CHANNELS: dict[str, Callable[..., np.ndarray]] = {
    fn.__name__: fn
    for fn in (
        bandpass,
        narrowband,
        equalize,
        level,
        g711,
        gsm,
        amr_nb,
        opus,
        mp3,
        aac,
        packet_loss,
        add_noise,
        reverb,
        speed,
        pitch_shift,
    )
}


@dataclass(frozen=True)
class ChannelStep:
    """One channel in a chain: a :data:`CHANNELS` name and its keyword parameters.

    Attributes:
        name: key of :data:`CHANNELS`.
        params: keyword arguments after ``wav`` and ``sample_rate``; JSON-friendly
            (plain ints, floats, strings) for a serialisable chain.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in CHANNELS:
            raise ValueError(f"unknown channel {self.name!r}; known: {sorted(CHANNELS)}")
        parameters = list(inspect.signature(CHANNELS[self.name]).parameters.values())[2:]
        allowed = [p.name for p in parameters]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(f"unknown params {unknown} for {self.name!r}; allowed: {allowed}")
        missing = [p.name for p in parameters if p.default is p.empty and p.name not in self.params]
        if missing:
            raise ValueError(f"channel {self.name!r} needs params {missing}")

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}`` for JSON."""
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelStep:
        """Inverse of :meth:`to_dict`; raises ValueError on missing or extra keys."""
        if set(data) != {"name", "params"}:
            raise ValueError(f"a channel step needs keys ['name', 'params'], got {sorted(data)}")
        return cls(name=data["name"], params=dict(data["params"]))


def apply_chain(
    wav: np.ndarray,
    sample_rate: int,
    steps: Sequence[ChannelStep],
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Apply channel steps in order.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        steps: the chain. A seeded step without a ``seed`` param gets the i-th integer
            drawn from ``seed`` (one per step, so seeds do not depend on other steps).
        seed: int seed or Generator for steps that do not carry their own seed.

    Returns:
        float32 waveform at ``sample_rate`` (``(T,)`` unless the chain holds ``speed``).
    """
    wav = _check(wav, sample_rate)
    step_seeds = _rng(seed).integers(0, 2**31, size=len(steps))
    for step, step_seed in zip(steps, step_seeds, strict=True):
        fn = CHANNELS[step.name]
        params = dict(step.params)
        if "seed" in inspect.signature(fn).parameters:
            params.setdefault("seed", int(step_seed))
        wav = fn(wav, sample_rate, **params)
    return wav


@dataclass(frozen=True)
class Chain:
    """An immutable, serialisable sequence of :class:`ChannelStep`, callable on audio."""

    steps: tuple[ChannelStep, ...]

    def __call__(
        self, wav: np.ndarray, sample_rate: int, seed: int | np.random.Generator = 0
    ) -> np.ndarray:
        """Apply the chain; see :func:`apply_chain`."""
        return apply_chain(wav, sample_rate, self.steps, seed)

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-friendly list of step dicts."""
        return [step.to_dict() for step in self.steps]

    @classmethod
    def from_dicts(cls, data: Sequence[dict[str, Any]]) -> Chain:
        """Inverse of :meth:`to_dicts`."""
        return cls(tuple(ChannelStep.from_dict(item) for item in data))


def compose(*steps: ChannelStep | str) -> Chain:
    """Build a :class:`Chain`; a bare name means that channel with default params.

    Example: ``compose("narrowband", ChannelStep("amr_nb", {"bitrate": 7950}))``.
    """
    return Chain(tuple(s if isinstance(s, ChannelStep) else ChannelStep(s) for s in steps))


def _draw_codec(rng: np.random.Generator) -> ChannelStep:
    """A random telephone codec step with explicit parameters."""
    choice = str(rng.choice(["g711_mu", "g711_a", "gsm", "amr_nb", "opus"]))
    if choice.startswith("g711"):
        return ChannelStep("g711", {"law": choice.removeprefix("g711_")})
    if choice == "amr_nb":
        return ChannelStep("amr_nb", {"bitrate": int(rng.choice(AMR_NB_BITRATES))})
    if choice == "opus":
        return ChannelStep(
            "opus", {"bitrate": 1000 * int(rng.integers(6, 17)), "rate": TELEPHONE_RATE}
        )
    return ChannelStep("gsm", {})


def draw_phone_steps(rng: np.random.Generator) -> list[ChannelStep]:
    """Draw a realistic call: room, background noise, handset, 8 kHz codec, network."""
    steps = []
    if rng.random() < 0.3:
        rt60 = round(float(rng.uniform(0.15, 0.4)), 3)
        steps.append(ChannelStep("reverb", {"rt60": rt60, "seed": int(rng.integers(2**31))}))
    if rng.random() < 0.7:
        params = {
            "snr_db": round(float(rng.uniform(10.0, 30.0)), 2),
            "kind": str(rng.choice(NOISE_KINDS)),
            "seed": int(rng.integers(2**31)),
        }
        steps.append(ChannelStep("add_noise", params))
    if rng.random() < 0.5:
        edges = {
            "low_hz": float(rng.integers(200, 401)),
            "high_hz": float(rng.integers(3200, 3601)),
        }
        steps.append(ChannelStep("bandpass", edges))
    steps += [ChannelStep("narrowband", {"rate": TELEPHONE_RATE}), _draw_codec(rng)]
    if rng.random() < 0.5:
        params = {
            "loss_rate": round(float(rng.uniform(0.0, 0.05)), 4),
            "packet_ms": 20.0,
            "seed": int(rng.integers(2**31)),
        }
        # Concealment runs on the 8 kHz decoded signal in a real phone: re-band-limit.
        steps += [
            ChannelStep("packet_loss", params),
            ChannelStep("narrowband", {"rate": TELEPHONE_RATE}),
        ]
    return steps


def phone_call(
    wav: np.ndarray, sample_rate: int, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, list[ChannelStep]]:
    """Simulate a random but realistic telephone call.

    In order: room reverb (p = 0.3, RT60 0.15-0.4 s), noise (p = 0.7, 10-30 dB SNR, a
    random kind), a handset band-pass (p = 0.5, edges 200-400 / 3200-3600 Hz), always
    narrowband 8 kHz and one codec (equally likely: G.711 mu-law, G.711 A-law, GSM 06.10,
    AMR-NB at a random mode, Opus at 6-16 kbit/s), then packet loss (p = 0.5, 0-5 %,
    20 ms packets) followed by another 8 kHz narrowband pass.
    Every step carries its explicit parameters and seed, so
    ``apply_chain(wav, sample_rate, steps)`` reproduces the output exactly.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz, at least 8000.
        seed: int seed or Generator; the same seed gives the same call.

    Returns:
        ``((T,) float32 waveform at sample_rate, steps used)``.
    """
    wav = _check(wav, sample_rate)
    if sample_rate < TELEPHONE_RATE:
        raise ValueError(f"phone_call needs sample_rate >= 8000 Hz, got {sample_rate}")
    steps = draw_phone_steps(_rng(seed))
    return apply_chain(wav, sample_rate, steps), steps


RECORDING_RATES: tuple[int, ...] = (8000, 11025, 22050)


def draw_recording_steps(rng: np.random.Generator) -> list[ChannelStep]:
    """Draw a random recording chain: how someone else's microphone, sound card and file
    format would have captured the speech (no room, no phone line).

    In order: a smooth microphone response (3-5 control points from 100 Hz to 7.5 kHz,
    each -8 ... +8 dB, high-pass corner 40-300 Hz); the original sample rate (kept with
    p = 0.5, else 11.025 kHz, 22.05 kHz or 8 kHz with p = 0.2 / 0.2 / 0.1; a rate at or
    above the signal's leaves it unchanged); the level (peak -18 ... -1 dBFS, soft-clipped
    with p = 0.2 at drive 1.5-4); a noise floor (p = 0.5, 30-55 dB SNR, white, pink or
    hum); a lossy file format (MP3 at 32-96 kbit/s with p = 0.25, wideband Opus at 16-32
    kbit/s with p = 0.2).
    """
    points = int(rng.integers(3, 6))
    steps = [ChannelStep("equalize", {
        "freqs_hz": [round(float(f), 1) for f in np.geomspace(100.0, 7500.0, points)],
        "gains_db": [round(float(g), 2) for g in rng.uniform(-8.0, 8.0, points)],
        "highpass_hz": round(float(rng.uniform(40.0, 300.0)), 1)})]
    rate = int(rng.choice([0, 11025, 22050, 8000], p=[0.5, 0.2, 0.2, 0.1]))
    if rate:
        steps.append(ChannelStep("narrowband", {"rate": rate}))
    drive = round(float(rng.uniform(1.5, 4.0)), 3) if rng.random() < 0.2 else 0.0
    steps.append(ChannelStep("level", {"peak_db": round(float(rng.uniform(-18.0, -1.0)), 2), "drive": drive}))
    if rng.random() < 0.5:
        steps.append(ChannelStep("add_noise", {"snr_db": round(float(rng.uniform(30.0, 55.0)), 2),
                                               "kind": str(rng.choice(["white", "pink", "hum"])),
                                               "seed": int(rng.integers(2**31))}))
    codec = rng.random()
    if codec < 0.25:
        steps.append(ChannelStep("mp3", {"bitrate": int(rng.choice([32000, 48000, 64000, 96000]))}))
    elif codec < 0.45:
        steps.append(ChannelStep("opus", {"bitrate": int(rng.choice([16000, 24000, 32000])), "rate": 16000}))
    return steps


def recording_chain(
    wav: np.ndarray, sample_rate: int, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, list[ChannelStep]]:
    """Re-record speech through a random microphone, level, noise floor and file format
    (:func:`draw_recording_steps`): a recording chain that no corpus here was made with.

    The detector's calibration uses it to check its thresholds on real speech from
    chains it never heard (``recipes/detection/calibrate.py --chain-reals``). Every step
    carries its parameters and seed, so ``apply_chain(wav, sample_rate, steps)``
    reproduces the output exactly.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz, at least 16000 (the microphone response reaches 7.5 kHz).
        seed: int seed or Generator.

    Returns:
        ``((T,) float32 waveform at sample_rate, steps used)``.
    """
    wav = _check(wav, sample_rate)
    if sample_rate < 16000:
        raise ValueError(f"recording_chain needs sample_rate >= 16000 Hz, got {sample_rate}")
    steps = draw_recording_steps(_rng(seed))
    return apply_chain(wav, sample_rate, steps), steps
