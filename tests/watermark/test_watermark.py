"""Watermark: round trip, payload, robustness to channel attacks, false alarms, API and CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicefake import api, channel
from voicefake.cli import main
from voicefake.watermark import MODEL_IDS, Payload, detect, embed
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



def test_payload_names_the_model_family() -> None:
    """Every bundled decoder's clips say "conversion" in their mark, not "unknown"."""
    conversion = MODEL_IDS["conversion"]
    for name in ("conversion", "conversion-16k@0.4.0", "conversion-ref@0.1.0", "conversion-flite@0.1.0",
                 "conversion-adapt@0.1.0 (adapted to the voice)"):
        assert Payload.today(name).model_id == conversion, name
    assert Payload.today("vocoder@0.4.1").model_id == MODEL_IDS["vocoder"]
    assert Payload.today("someone-elses@1.0").model_id == MODEL_IDS["unknown"] == 0
    assert Payload.today(7).model_id == 7

def test_round_trip_clean(clip: np.ndarray, marked: np.ndarray) -> None:
    report = detect(marked, RATE)
    assert report.watermarked and report.p > 0.5
    assert len(report.bits) == 32 and len(report.bit_confidence) == 32
    snr = 10 * np.log10(np.sum(clip**2) / np.sum((marked - clip) ** 2))
    assert 30.0 <= snr <= 30.2  # the embedder solves for snr_db = 30.05 exactly
    assert marked.shape == clip.shape and marked.dtype == np.float32


def test_payload_bits_mostly_right(marked: np.ndarray) -> None:
    truth = "".join(f"{b:08b}" for b in PAYLOAD.to_bytes())
    report = detect(marked, RATE)
    assert np.mean([a == b for a, b in zip(report.bits, truth, strict=True)]) >= 0.8


# The synthetic voice is digitally silent between its syllables, so only voiced cells can
# carry the mark: 4.5 s leave 28 of 32 bits right, not all of them. On real 10 s speech
# the payload decodes exactly in about half the clips (docs/benchmarks/watermark.md).
@pytest.mark.xfail(reason="ISSUE 9: payload needs more than 4.5 s of this synthetic voice",
                   strict=True)
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


# The CELP codecs smooth the few voiced cells this 4.5 s synthetic voice (digitally silent
# between syllables) has; real speech survives them (test_real_speech_survives_attack).
WEAK = {"amr_nb", "gsm"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason="synthetic voice: too few marked cells",
                                            strict=True))
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


@pytest.mark.xfail(reason="4.5 s of the synthetic voice inside 8 s of unmarked synthetic voice: "
                   "statistic 5.2 < 5.5; real speech: test_real_speech_localised", strict=True)
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


# ------------------------------------------------------------------ real speech (data, slow)

REAL_ATTACKS = {
    **ATTACKS,
    "none": lambda w: w,
    "crop3s": lambda w: w[max(0, min(len(w) // 3, len(w) - 3 * RATE)):][: 3 * RATE],
    "speed+5%": lambda w: channel.speed(w, RATE, 1.05),
    "speed-5%": lambda w: channel.speed(w, RATE, 0.95),
    "pitch+1st": lambda w: channel.pitch_shift(w, RATE, 1.0),
    "pitch-1st": lambda w: channel.pitch_shift(w, RATE, -1.0),
}


def real_recordings(root: Path, count: int, seed: int) -> list[np.ndarray]:
    """``count`` real recordings of >= 3 s (first 10 s), drawn with ``seed``."""
    from voicefake.audio.io import load_audio

    with (root / "manifest.csv").open(newline="", encoding="utf-8") as stream:
        rows = [r for r in csv.DictReader(stream) if r["label"] == "real"
                and r["media"] == "audio" and float(r["duration_s"]) >= 3.0]
    picks = np.random.default_rng(seed).choice(len(rows), count, replace=False)
    return [load_audio(root / rows[i]["path"], RATE)[: 10 * RATE] for i in picks]


@pytest.fixture(scope="module")
def real_marked(data_root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    # seed 7: not the benchmark's 30 clips (seed 0), on which the design was measured
    return [(wav, embed(wav, PAYLOAD, RATE)) for wav in real_recordings(data_root, 10, 7)]


@pytest.mark.data
@pytest.mark.slow
def test_real_speech_imperceptible(real_marked: list[tuple[np.ndarray, np.ndarray]]) -> None:
    pesq = pytest.importorskip("pesq").pesq
    snrs = [10 * np.log10(np.sum(w**2) / np.sum((m - w) ** 2)) for w, m in real_marked]
    scores = [pesq(RATE, w, m, "wb") for w, m in real_marked]
    assert min(snrs) >= 30.0
    assert np.mean(scores) >= 4.1 and min(scores) >= 4.0  # measured ~4.3 mean


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REAL_ATTACKS))
def test_real_speech_survives_attack(name: str,
                                     real_marked: list[tuple[np.ndarray, np.ndarray]]) -> None:
    truth = "".join(f"{b:08b}" for b in PAYLOAD.to_bytes())
    reports = [detect(REAL_ATTACKS[name](m).astype(np.float32), RATE) for _, m in real_marked]
    found = [r.watermarked for r in reports]
    bits = np.mean([[a == b for a, b in zip(r.bits, truth, strict=True)] for r in reports])
    # target 95 % on 30 clips (benchmark); here at most one miss in ten
    assert sum(found) >= len(found) - 1, f"{name}: {[round(r.statistic, 1) for r in reports]}"
    assert bits >= (0.85 if name == "none" else 0.7), f"{name}: bit accuracy {bits:.2f}"


@pytest.mark.data
@pytest.mark.slow
def test_real_speech_localised(data_root: Path,
                               real_marked: list[tuple[np.ndarray, np.ndarray]]) -> None:
    filler = real_recordings(data_root, 1, 11)[0][: 4 * RATE]
    for _, marked_wav in real_marked[:5]:
        report = detect(np.concatenate([filler, marked_wav, filler]), RATE)
        assert report.watermarked and report.segments
        begin = len(filler) / RATE
        end = begin + len(marked_wav) / RATE
        for start, stop, _ in report.segments:
            assert stop - start <= 1.0
            assert begin - 0.6 <= start and stop <= end + 0.6


@pytest.mark.data
@pytest.mark.slow
def test_no_false_alarm_on_any_real_recording(data_root: Path) -> None:
    from voicefake.audio.io import load_audio
    from voicefake.watermark.core import DEFAULT_CONFIG

    with (data_root / "manifest.csv").open(newline="", encoding="utf-8") as stream:
        rows = [r for r in csv.DictReader(stream) if r["label"] == "real" and r["media"] == "audio"]
    stats = [detect(load_audio(data_root / r["path"], RATE, allow_silence=True), RATE).statistic
             for r in rows]
    # measured maximum 4.2 over 855 files; the threshold is 5.5
    assert max(stats) <= DEFAULT_CONFIG.threshold - 0.75
