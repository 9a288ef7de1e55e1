"""Codecs run in memory (soundfile, PyAV): G.711, GSM 06.10, AMR-NB, Opus, MP3, AAC, packet loss."""

from __future__ import annotations

import io
from functools import partial
from typing import Literal, NamedTuple, cast

import av
import numpy as np
import soundfile as sf
from av.audio.codeccontext import AudioCodecContext

from voicefake.channel.base import (
    AMR_NB_BITRATES,
    OPUS_RATES,
    TELEPHONE_RATE,
    _check,
    _check_range,
    _fit,
    _resample,
    _rng,
    _via_rate,
)

# Constant codec delays in samples at the codec rate, measured with PyAV 18.1 (FFmpeg 8)
# by cross-correlation. opencore AMR-NB keeps a 5 ms lookahead; FFmpeg's native AAC
# encoder emits 1024 priming samples that only a container (edit list) would remove.
# libopus (pre-skip in the extradata; SILK narrowband packets 0.125 ms more), libmp3lame
# (skip-samples side data), soundfile G.711 and GSM 06.10 come out aligned.
_AMR_NB_DELAY = 40
_AAC_DELAY = 1024
_OPUS_SILK_NB_DELAY_S = 0.000125


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


