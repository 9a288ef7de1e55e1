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
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from math import gcd
from typing import Any, Literal, NamedTuple, cast

import av
import librosa
import numpy as np
import soundfile as sf
from av.audio.codeccontext import AudioCodecContext
from scipy import signal

NoiseKind = Literal["white", "pink", "babble", "hum"]
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "babble", "hum")
AMR_NB_BITRATES: tuple[int, ...] = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)
OPUS_RATES: tuple[int, ...] = (8000, 12000, 16000, 24000, 48000)
TELEPHONE_RATE = 8000

# Constant codec delays in samples at the codec rate, measured with PyAV 18.1 (FFmpeg 8)
# by cross-correlation. opencore AMR-NB keeps a 5 ms lookahead; FFmpeg's native AAC
# encoder emits 1024 priming samples that only a container (edit list) would remove.
# libopus (pre-skip in the extradata; SILK narrowband packets 0.125 ms more), libmp3lame
# (skip-samples side data), soundfile G.711 and GSM 06.10 come out aligned.
_AMR_NB_DELAY = 40
_AAC_DELAY = 1024
_OPUS_SILK_NB_DELAY_S = 0.000125


def _check(wav: np.ndarray, sample_rate: int, name: str = "wav") -> np.ndarray:
    """Validate a mono waveform ``name`` and its rate; return it as float32 ``(T,)``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise TypeError(f"sample_rate must be an int in Hz, got {sample_rate!r}")
    if sample_rate < 4000:
        raise ValueError(f"sample_rate must be >= 4000 Hz, got {sample_rate}")
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"{name} must be 1-D (mono), got shape {wav.shape}")
    if wav.size == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if not np.issubdtype(wav.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {wav.dtype}")
    if not np.all(np.isfinite(wav)):
        bad = int(np.flatnonzero(~np.isfinite(wav))[0])
        raise ValueError(f"{name} has a non-finite sample {wav[bad]} at index {bad}")
    return wav.astype(np.float32, copy=False)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ValueError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A Generator from an int seed, or the given Generator itself."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _fit(wav: np.ndarray, num_samples: int) -> np.ndarray:
    """Truncate or zero-pad ``wav`` at the end to ``num_samples``; float32."""
    out = np.zeros(num_samples, dtype=np.float32)
    out[: min(num_samples, len(wav))] = wav[:num_samples]
    return out


def _resample_ratio(wav: np.ndarray, up: int, down: int) -> np.ndarray:
    """Polyphase resampling by ``up / down`` with a zero-delay 80 dB Kaiser low-pass.

    The low-pass passes 90 % of the lower Nyquist frequency and stops from the lower
    Nyquist frequency on (e.g. 3.6 kHz pass / 4 kHz stop for 16 <-> 8 kHz), so
    aliases and images are at least 80 dB down.
    """
    if up == down:
        return wav.astype(np.float32)
    width = 0.1 / max(up, down)  # transition width, fraction of the high-rate Nyquist
    num_taps, beta = signal.kaiserord(80.0, width)
    taps = signal.firwin(num_taps | 1, 0.95 / max(up, down), window=("kaiser", beta))
    return signal.resample_poly(wav, up, down, window=taps).astype(np.float32)


def _resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``(T,)`` from ``orig_rate`` to ``target_rate`` Hz (time-aligned)."""
    common = gcd(orig_rate, target_rate)
    return _resample_ratio(wav, target_rate // common, orig_rate // common)


def _via_rate(
    wav: np.ndarray, sample_rate: int, rate: int, process: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """Resample to ``rate``, clip to [-1, 1], run ``process(wav, rate)``, resample back."""
    inner = np.clip(_resample(wav, sample_rate, rate), -1.0, 1.0)
    return _fit(_resample(process(inner, rate), rate, sample_rate), len(wav))


def bandpass(
    wav: np.ndarray,
    sample_rate: int,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    order: int = 4,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (a handset's response).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        low_hz: lower -3 dB edge in Hz (each pass; run forward and backward).
        high_hz: upper edge in Hz, below ``sample_rate / 2``.
        order: Butterworth order of one pass; the zero-phase response is its square.

    Returns:
        ``(T,)`` float32 band-passed waveform.

    Raises:
        ValueError: on bad input or edges outside ``0 < low_hz < high_hz < sample_rate / 2``.
    """
    wav = _check(wav, sample_rate)
    if not 0.0 < low_hz < high_hz < sample_rate / 2:
        raise ValueError(
            f"need 0 < low_hz < high_hz < {sample_rate / 2} Hz, got {low_hz}, {high_hz}"
        )
    sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, wav).astype(np.float32)


def narrowband(wav: np.ndarray, sample_rate: int, rate: int = TELEPHONE_RATE) -> np.ndarray:
    """Resample down to ``rate`` and back, removing everything above ``rate / 2``.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        rate: intermediate rate in Hz; if ``rate >= sample_rate`` the input is returned
            (as a copy), since it has no content above ``rate / 2``.

    Returns:
        ``(T,)`` float32 waveform band-limited to 0.9 * ``rate / 2`` (80 dB stop band).
    """
    wav = _check(wav, sample_rate)
    _check_range("rate", rate, 1000, 192000)
    if rate >= sample_rate:
        return wav.copy()
    return _fit(_resample(_resample(wav, sample_rate, rate), rate, sample_rate), len(wav))


def _soundfile_roundtrip(wav: np.ndarray, rate: int, subtype: str) -> np.ndarray:
    """Write ``(T,)`` to an in-memory WAV of ``subtype`` and read it back, same length."""
    buffer = io.BytesIO()
    sf.write(buffer, wav, rate, format="WAV", subtype=subtype)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return _fit(decoded, len(wav))


def g711(wav: np.ndarray, sample_rate: int, law: Literal["mu", "a"] = "mu") -> np.ndarray:
    """G.711 8-bit mu-law or A-law round trip at 8 kHz (soundfile WAV ULAW / ALAW).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        law: ``"mu"`` (North America, Japan) or ``"a"`` (Europe).

    Returns:
        ``(T,)`` float32 waveform at ``sample_rate``; about 37 dB SNR in the 8 kHz band.
    """
    wav = _check(wav, sample_rate)
    subtypes = {"mu": "ULAW", "a": "ALAW"}
    if law not in subtypes:
        raise ValueError(f"law must be one of {sorted(subtypes)}, got {law!r}")
    process = partial(_soundfile_roundtrip, subtype=subtypes[law])
    return _via_rate(wav, sample_rate, TELEPHONE_RATE, process)


def gsm(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """GSM 06.10 full-rate (13 kbit/s) round trip at 8 kHz (soundfile WAV GSM610).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.

    Returns:
        ``(T,)`` float32 waveform at ``sample_rate``.
    """
    wav = _check(wav, sample_rate)
    process = partial(_soundfile_roundtrip, subtype="GSM610")
    return _via_rate(wav, sample_rate, TELEPHONE_RATE, process)


class _AvCodec(NamedTuple):
    """A PyAV encoder/decoder pair and its constant delay in decoded samples."""

    encoder: str
    decoder: str
    delay: int


_AMR_NB = _AvCodec("libopencore_amrnb", "amrnb", _AMR_NB_DELAY)
_OPUS = _AvCodec("libopus", "opus", 0)
_MP3 = _AvCodec("libmp3lame", "mp3float", 0)
_AAC = _AvCodec("aac", "aac", _AAC_DELAY)


def _to_frame(chunk: np.ndarray, fmt: str, rate: int, pts: int) -> av.AudioFrame:
    """A mono PyAV frame in sample format ``fmt`` (float or int16) from ``(T,)`` floats."""
    if fmt.startswith("flt"):
        data = chunk[None, :]
    else:
        data = np.clip(np.round(chunk * 32768.0), -32768, 32767).astype(np.int16)[None, :]
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
    frame.sample_rate, frame.pts = rate, pts
    return frame


def _encode(
    wav: np.ndarray, rate: int, encoder: str, bit_rate: int, tail: int
) -> tuple[list[av.Packet], bytes | None]:
    """Encode ``(T,)`` plus ``tail`` zeros at ``rate`` Hz; return ``(packets, extradata)``."""
    context = cast(AudioCodecContext, av.CodecContext.create(encoder, "w"))
    context.sample_rate, context.layout, context.bit_rate = rate, "mono", bit_rate
    formats = [fmt.name for fmt in context.codec.audio_formats or []]
    context.format = next(f for f in ("flt", "fltp", "s16", "s16p") if f in formats)
    context.open()
    size = context.frame_size or 1024
    padded = _fit(wav, -(-(len(wav) + tail) // size) * size)
    packets: list[av.Packet] = []
    for start in range(0, len(padded), size):
        frame = _to_frame(padded[start : start + size], context.format.name, rate, start)
        packets.extend(context.encode(frame))
    packets.extend(context.encode(None))
    return packets, context.extradata


def _decode(
    packets: list[av.Packet], decoder: str, extradata: bytes | None, rate: int
) -> tuple[np.ndarray, int]:
    """Decode packets; return ``((T,) float32, decoded rate in Hz)`` (Opus: 48 kHz)."""
    context = cast(AudioCodecContext, av.CodecContext.create(decoder, "r"))
    context.sample_rate, context.layout = rate, "mono"
    if extradata:
        context.extradata = extradata
    chunks, decoded_rate = [], rate
    for packet in [*packets, None]:
        for frame in context.decode(packet):
            data = frame.to_ndarray().reshape(-1)
            scale = 32768.0 if data.dtype == np.int16 else 1.0
            chunks.append(data.astype(np.float32) / scale)
            decoded_rate = frame.sample_rate
    return np.concatenate(chunks), decoded_rate


def _silk_nb_delay(packets: list[av.Packet], decoded_rate: int) -> int:
    """Extra Opus delay in decoded samples: 0.125 ms if most packets are SILK narrowband.

    TOC configurations 0-3 are SILK narrowband; measured, they decode about 6 samples at
    48 kHz later than the pre-skip accounts for. Other modes come out aligned.
    """
    silk_nb = sum(bytes(packet)[0] >> 3 < 4 for packet in packets) > len(packets) / 2
    return round(_OPUS_SILK_NB_DELAY_S * decoded_rate) if silk_nb else 0


def _av_roundtrip(wav: np.ndarray, rate: int, codec: _AvCodec, bit_rate: int) -> np.ndarray:
    """Encode + decode ``(T,)`` at ``rate`` Hz with PyAV, delay removed, same length."""
    packets, extradata = _encode(wav, rate, codec.encoder, bit_rate, tail=codec.delay + 2048)
    decoded, decoded_rate = _decode(packets, codec.decoder, extradata, rate)
    delay = codec.delay
    if codec == _OPUS:
        delay += _silk_nb_delay(packets, decoded_rate)
    return _fit(_resample(decoded[delay:], decoded_rate, rate), len(wav))


def amr_nb(wav: np.ndarray, sample_rate: int, bitrate: int = 12200) -> np.ndarray:
    """AMR-NB (3GPP mobile) round trip at 8 kHz via PyAV libopencore_amrnb.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        bitrate: bit/s, one of :data:`AMR_NB_BITRATES` (4750 ... 12200).

    Returns:
        ``(T,)`` float32 waveform at ``sample_rate``, aligned (5 ms codec delay removed).
    """
    wav = _check(wav, sample_rate)
    if bitrate not in AMR_NB_BITRATES:
        raise ValueError(f"bitrate must be one of {AMR_NB_BITRATES}, got {bitrate!r}")
    process = partial(_av_roundtrip, codec=_AMR_NB, bit_rate=bitrate)
    return _via_rate(wav, sample_rate, TELEPHONE_RATE, process)


def opus(
    wav: np.ndarray, sample_rate: int, bitrate: int = 12000, rate: int = TELEPHONE_RATE
) -> np.ndarray:
    """Opus round trip via PyAV libopus (20 ms frames).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        bitrate: bit/s, 6000 ... 510000 (6-16 kbit/s is typical for calls).
        rate: Opus input rate in Hz, one of :data:`OPUS_RATES`; the default 8 kHz makes
            it a narrowband (telephone) codec.

    Returns:
        ``(T,)`` float32 waveform at ``sample_rate``, aligned (pre-skip removed).
    """
    wav = _check(wav, sample_rate)
    _check_range("bitrate", bitrate, 6000, 510000)
    if rate not in OPUS_RATES:
        raise ValueError(f"rate must be one of {OPUS_RATES}, got {rate!r}")
    return _via_rate(wav, sample_rate, rate, partial(_av_roundtrip, codec=_OPUS, bit_rate=bitrate))


def _wideband_codec(
    wav: np.ndarray, sample_rate: int, codec: _AvCodec, bit_rate: int
) -> np.ndarray:
    """Run a PyAV codec at ``sample_rate`` if it supports it, else the next rate up."""
    rates = sorted(av.CodecContext.create(codec.encoder, "w").codec.audio_rates or [])
    rate = next((r for r in rates if r >= sample_rate), rates[-1])
    return _via_rate(wav, sample_rate, rate, partial(_av_roundtrip, codec=codec, bit_rate=bit_rate))


def mp3(wav: np.ndarray, sample_rate: int, bitrate: int = 64000) -> np.ndarray:
    """MP3 (LAME, CBR) round trip via PyAV at the input rate (or the next MP3 rate up).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        bitrate: bit/s, 8000 ... 320000 (LAME picks the nearest rate valid for the band).

    Returns:
        ``(T,)`` float32 waveform at ``sample_rate``, aligned.
    """
    wav = _check(wav, sample_rate)
    _check_range("bitrate", bitrate, 8000, 320000)
    return _wideband_codec(wav, sample_rate, _MP3, bitrate)


def aac(wav: np.ndarray, sample_rate: int, bitrate: int = 64000) -> np.ndarray:
    """AAC-LC round trip via PyAV's native encoder at the input rate (or the next up).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        bitrate: bit/s, 8000 ... 320000.

    Returns:
        ``(T,)`` float32 waveform at ``sample_rate``, aligned (1024 priming samples removed).
    """
    wav = _check(wav, sample_rate)
    _check_range("bitrate", bitrate, 8000, 320000)
    return _wideband_codec(wav, sample_rate, _AAC, bitrate)


def _concealment_gain(num_samples: int, sample_rate: int) -> np.ndarray:
    """Gain over a loss burst: 1 for 10 ms, then -20 % per 10 ms (silent after 60 ms)."""
    time_s = np.arange(num_samples) / sample_rate
    return np.clip(1.0 - 20.0 * (time_s - 0.010), 0.0, 1.0).astype(np.float32)


def packet_loss(
    wav: np.ndarray,
    sample_rate: int,
    loss_rate: float = 0.05,
    packet_ms: float = 20.0,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Drop random packets and conceal them (in the spirit of G.711 Appendix I).

    Each packet is lost independently with probability ``loss_rate``. A burst of lost
    packets is filled by repeating the last received packet, faded out: full level for
    10 ms, then 20 % down per 10 ms, silence after 60 ms. Received packets are untouched.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        loss_rate: probability in [0, 1] that a packet is lost; 0 returns the input.
        packet_ms: packet duration in ms.
        seed: int seed or Generator.

    Returns:
        ``(T,)`` float32 waveform.
    """
    wav = _check(wav, sample_rate)
    _check_range("loss_rate", loss_rate, 0.0, 1.0)
    _check_range("packet_ms", packet_ms, 1.0, 1000.0)
    packet = round(packet_ms * sample_rate / 1000)
    lost = _rng(seed).random(-(-len(wav) // packet)) < loss_rate
    edges = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    out = wav.copy()
    for first, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        start, end = int(first) * packet, min(int(stop) * packet, len(wav))
        held = wav[start - packet : start] if first > 0 else np.zeros(packet, np.float32)
        out[start:end] = np.resize(held, end - start) * _concealment_gain(end - start, sample_rate)
    return out


def _pink(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` pink (1/f power) noise by spectral shaping of white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, num_samples)


def _talker(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` speech-like noise: band-passed pink noise under a 3-6 Hz syllable envelope."""
    low, high = rng.uniform(150.0, 400.0), min(rng.uniform(2500.0, 4500.0), 0.45 * sample_rate)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    voice = signal.sosfilt(sos, _pink(num_samples, rng))
    time_s = np.arange(num_samples) / sample_rate
    syllables = np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * time_s + rng.uniform(0, 2 * np.pi))
    return voice * np.clip(syllables, 0.0, None) ** 2


def _babble(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` babble: six speech-like talkers, randomly shifted (circularly) and weighted."""
    talkers = [_talker(num_samples, sample_rate, rng) for _ in range(6)]
    shifted = [np.roll(t, rng.integers(num_samples)) * rng.uniform(0.5, 1.0) for t in talkers]
    return np.sum(shifted, axis=0)


def _hum(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` 50 or 60 Hz mains hum with harmonics up to the 7th (1/k amplitudes)."""
    time_s, mains = np.arange(num_samples) / sample_rate, rng.choice([50.0, 60.0])
    harmonics = [k for k in range(1, 8) if k * mains < sample_rate / 2]
    phases = rng.uniform(0, 2 * np.pi, len(harmonics))
    tones = [np.sin(2 * np.pi * k * mains * time_s + phases[k - 1]) / k for k in harmonics]
    return np.sum(tones, axis=0)


def _noise(kind: str, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` noise of one of :data:`NOISE_KINDS`."""
    if kind == "white":
        return rng.standard_normal(num_samples)
    if kind == "pink":
        return _pink(num_samples, rng)
    if kind == "babble":
        return _babble(num_samples, sample_rate, rng)
    assert kind == "hum", kind  # add_noise has validated kind
    return _hum(num_samples, sample_rate, rng)


def add_noise(
    wav: np.ndarray,
    sample_rate: int,
    snr_db: float,
    kind: NoiseKind = "white",
    seed: int | np.random.Generator = 0,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Add noise at a given SNR, measured as total energies over the whole signal.

    Args:
        wav: ``(T,)`` waveform. A silent ``wav`` is returned unchanged (its SNR target
            asks for zero noise energy).
        sample_rate: Hz.
        snr_db: signal-to-noise ratio in dB.
        kind: generated noise: ``white``, ``pink``, ``babble`` (6 shifted speech-like
            talkers) or ``hum`` (50 or 60 Hz mains and harmonics). Ignored if ``noise``.
        seed: int seed or Generator.
        noise: ``(N,)`` noise recording to use instead; read from a seeded random offset
            and looped if shorter than ``wav``.

    Returns:
        ``(T,)`` float32 noisy waveform (not clipped).
    """
    wav = _check(wav, sample_rate)
    _check_range("snr_db", snr_db, -50.0, 100.0)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    rng = _rng(seed)
    if noise is None:
        noise = _noise(kind, len(wav), sample_rate, rng)
    else:
        noise = _check(noise, sample_rate, name="noise")
        noise = np.resize(np.roll(noise, -int(rng.integers(len(noise)))), len(wav))
    noise_energy = float(np.sum(np.square(noise, dtype=np.float64)))
    if noise_energy == 0.0:
        raise ValueError("noise is silent; cannot scale it to an SNR")
    signal_energy = float(np.sum(np.square(wav, dtype=np.float64)))
    gain = np.sqrt(signal_energy / noise_energy / 10.0 ** (snr_db / 10.0))
    return (wav + gain * noise).astype(np.float32)


def reverb(
    wav: np.ndarray,
    sample_rate: int,
    rt60: float = 0.4,
    seed: int | np.random.Generator = 0,
    drr_db: float = 3.0,
) -> np.ndarray:
    """Convolve with a synthetic room impulse response (exponentially decaying noise).

    The response is a unit direct path at sample 0 (so the output stays aligned) plus
    a noise tail from 2 ms on that decays 60 dB in ``rt60`` seconds, scaled to a
    direct-to-reverberant energy ratio of ``drr_db``. The output is rescaled to the
    input's RMS level.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        rt60: reverberation time in seconds, 0.05 ... 3.
        seed: int seed or Generator.
        drr_db: direct-to-reverberant energy ratio in dB.

    Returns:
        ``(T,)`` float32 reverberant waveform (the tail past ``T`` is cut).
    """
    wav = _check(wav, sample_rate)
    _check_range("rt60", rt60, 0.05, 3.0)
    time_s = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = _rng(seed).standard_normal(len(time_s)) * 10.0 ** (-3.0 * time_s / rt60)
    tail[: int(0.002 * sample_rate) + 1] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    tail[0] = 1.0
    out = signal.fftconvolve(wav, tail)[: len(wav)]
    out_rms = np.sqrt(np.mean(out**2))
    # A silent input gives a silent output; avoid dividing by its zero RMS.
    gain = np.sqrt(np.mean(np.square(wav, dtype=np.float64))) / out_rms if out_rms > 0 else 0.0
    return (out * gain).astype(np.float32)


def speed(wav: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Play faster (``factor > 1``) or slower by resampling; pitch moves with speed.

    Unlike every other channel, the output length changes: about ``T / factor``.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        factor: speed factor in [0.25, 4], approximated by a fraction with denominator
            at most 100.

    Returns:
        ``(ceil(T / factor),)`` float32 waveform, to be played at ``sample_rate``.
    """
    wav = _check(wav, sample_rate)
    _check_range("factor", factor, 0.25, 4.0)
    ratio = Fraction(factor).limit_denominator(100)
    return _resample_ratio(wav, ratio.denominator, ratio.numerator)


def pitch_shift(wav: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping duration (librosa phase vocoder + resampling).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Hz.
        semitones: shift in semitones, -24 ... 24.

    Returns:
        ``(T,)`` float32 waveform.
    """
    wav = _check(wav, sample_rate)
    _check_range("semitones", semitones, -24.0, 24.0)
    shifted = librosa.effects.pitch_shift(wav, sr=sample_rate, n_steps=float(semitones))
    return _fit(shifted, len(wav))


CHANNELS: dict[str, Callable[..., np.ndarray]] = {
    fn.__name__: fn
    for fn in (
        bandpass,
        narrowband,
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


def _draw_phone_steps(rng: np.random.Generator) -> list[ChannelStep]:
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
    steps = _draw_phone_steps(_rng(seed))
    return apply_chain(wav, sample_rate, steps), steps
