"""Watermark: round trip, payload, robustness to channel attacks, false alarms, API and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from voicefake import api, channel
from voicefake.cli import main
from voicefake.watermark import Payload, detect, embed
from voicefake.watermark.payload import crc8

RATE = 16000
PAYLOAD = Payload(toolkit_id=1, model_id=2, day=345)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """(T,) harmonic voice with a gliding pitch, three moving formants and 4 Hz syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wav = np.zeros_like(t)
    formants = [(600, 1), (1500, 0.6), (2600, 0.4)]
    for k in range(1, 26):
        freq = k * f0
        gain = sum(a * np.exp(-((freq - (f * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t + i))))
                                / 250.0) ** 2) for i, (f, a) in enumerate(formants))
        wav += (gain + 0.02) * np.sin(k * phase + rng.uniform(0, 6)) / k**0.5
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    wav = wav * syllables + 0.01 * rng.standard_normal(len(t)) * syllables
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return speech_like(4.5, 0)


@pytest.fixture(scope="module")
def marked(clip: np.ndarray) -> np.ndarray:
    return embed(clip, PAYLOAD, RATE)


def test_payload_pack_roundtrip() -> None:
    assert Payload.from_bytes(PAYLOAD.to_bytes()) == PAYLOAD
    corrupt = bytearray(PAYLOAD.to_bytes())
    corrupt[1] ^= 0x10
    assert Payload.from_bytes(bytes(corrupt)) is None
    assert crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value
    with pytest.raises(ValueError, match="model_id"):
        Payload(model_id=256)


def test_round_trip_clean(clip: np.ndarray, marked: np.ndarray) -> None:
    report = detect(marked, RATE)
    assert report.watermarked and report.p > 0.5
    assert len(report.bits) == 32 and len(report.bit_confidence) == 32
    snr = 10 * np.log10(np.sum(clip**2) / np.sum((marked - clip) ** 2))
    assert snr >= 30.0
    assert marked.shape == clip.shape and marked.dtype == np.float32


@pytest.mark.xfail(reason="ISSUE 9 open: payload SNR too low to decode 32 bits from 4.5 s", strict=False)
def test_payload_decode_exact(marked: np.ndarray) -> None:
    assert detect(marked, RATE).payload == PAYLOAD


def test_other_sample_rates(clip: np.ndarray) -> None:
    from voicefake.audio.io import resample

    wav = resample(clip, RATE, 22050)
    marked = embed(wav, PAYLOAD, 22050)
    assert len(marked) == len(wav)
    assert detect(marked, 22050).watermarked


ATTACKS = {
    "narrowband": lambda w: channel.narrowband(w, RATE),
    "g711": lambda w: channel.g711(w, RATE),
    "gsm": lambda w: channel.gsm(w, RATE),
    "amr_nb": lambda w: channel.amr_nb(w, RATE),
    "opus16k": lambda w: channel.opus(w, RATE, bitrate=16000),
    "mp3": lambda w: channel.mp3(w, RATE, 64000),
    "aac": lambda w: channel.aac(w, RATE, 64000),
    "white20dB": lambda w: channel.add_noise(w, RATE, 20.0, kind="white", seed=1),
    "babble20dB": lambda w: channel.add_noise(w, RATE, 20.0, kind="babble", seed=1),
    "crop3s": lambda w: w[int(0.77 * RATE): int(3.77 * RATE)],
    "bandpass": lambda w: channel.bandpass(w, RATE),
}


# Attacks the mark does not yet survive reliably on this 4.5 s synthetic voice (see
# docs/benchmarks/watermark.md for the measured rates on real speech).
WEAK = {"aac", "amr_nb", "babble20dB", "crop3s", "gsm", "opus16k", "white20dB"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason="ISSUE 9 open: below target", strict=False))
    if n in WEAK else n for n in sorted(ATTACKS)])
def test_survives_attack(name: str, marked: np.ndarray) -> None:
    report = detect(ATTACKS[name](marked).astype(np.float32), RATE)
    assert report.watermarked, f"{name}: statistic {report.statistic:.2f}"


@pytest.mark.parametrize("kind", ["speech", "white", "silence"])
def test_no_false_alarm(kind: str, clip: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    wav = {"speech": speech_like(4.5, 7), "white": 0.05 * rng.standard_normal(4 * RATE),
           "silence": np.zeros(4 * RATE)}[kind].astype(np.float32)
    report = detect(wav, RATE)
    assert not report.watermarked and report.p < 0.5 and report.payload is None
    assert report.segments == []


@pytest.mark.xfail(reason="ISSUE 9 open: mark too weak on 4.5 s synthetic voice", strict=False)
def test_localises_spliced_segment(marked: np.ndarray) -> None:
    filler = speech_like(4.0, 11)
    report = detect(np.concatenate([filler, marked, filler]), RATE)
    assert report.watermarked
    assert report.segments
    for start, end, _ in report.segments:
        assert end - start <= 1.0
        assert 4.0 - 0.6 <= start and end <= 8.5 + 0.6


def test_save_generated_marks_by_default(tmp_path, clip: np.ndarray, caplog) -> None:
    path = api.save_generated(tmp_path / "a.wav", clip, RATE, "vocoder-16k@1")
    wav, _ = sf.read(path, dtype="float32")
    assert detect(wav, RATE).watermarked
    off = api.save_generated(tmp_path / "b.wav", clip, RATE, "vocoder-16k@1", watermark=False)
    assert "watermark disabled" in caplog.text
    wav, _ = sf.read(off, dtype="float32")
    assert not detect(wav, RATE).watermarked


def test_cli_embed_detect_json(tmp_path, clip: np.ndarray, capsys) -> None:
    source = tmp_path / "in.wav"
    sf.write(source, clip, RATE)
    out = tmp_path / "out.wav"
    assert main(["watermark", "embed", str(source), "-o", str(out)]) == 0
    assert main(["watermark", "embed", str(source), "-o", str(out)]) == 1  # no --force
    capsys.readouterr()
    assert main(["watermark", "detect", str(source), str(out), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(source), str(out)]
    assert [line["watermarked"] for line in lines] == [False, True]
    assert set(lines[1]) >= {"file", "watermarked", "p", "payload", "segments", "model"}
    assert "payload" in lines[1] and "error" not in lines[1]
