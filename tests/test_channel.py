"""Tests for voicefake.channel: lengths, band limits, codec fidelity and alignment, seeding."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from voicefake import channel
from voicefake.channel import (
    CHANNELS,
    ChannelStep,
    apply_chain,
    compose,
    phone_call,
    recording_chain,
)

SAMPLE_RATE = 16000
# Arguments a channel needs besides wav and sample_rate.
REQUIRED = {
    "add_noise": {"snr_db": 20.0},
    "equalize": {"freqs_hz": [200.0, 2000.0], "gains_db": [3.0, -6.0]},
    "speed": {"factor": 1.25},
    "pitch_shift": {"semitones": 2.0},
}
SEEDED = {
    "packet_loss": {"loss_rate": 0.2},
    "add_noise": {"snr_db": 20.0},
    "reverb": {"rt60": 0.3},
}
TELEPHONE_CODECS = {
    "g711_mu": ("g711", {"law": "mu"}),
    "g711_a": ("g711", {"law": "a"}),
    "gsm": ("gsm", {}),
    "amr_nb_12200": ("amr_nb", {}),
    "amr_nb_4750": ("amr_nb", {"bitrate": 4750}),
    "opus_12000": ("opus", {}),
    "opus_6000": ("opus", {"bitrate": 6000}),
}
WIDEBAND_CODECS = {"mp3": ("mp3", {}), "aac": ("aac", {})}


def speech_like(sample_rate: int = SAMPLE_RATE, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voiced speech stand-in: gliding 110-170 Hz harmonics, three formants, 4 Hz syllables."""
    time_s = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 1.5 * time_s)) / sample_rate
    source = sum(np.sin(k * phase) / k for k in range(1, 25))
    voiced = np.zeros_like(time_s)
    for centre_hz, bandwidth_hz in ((700, 130), (1220, 70), (2600, 160)):
        b, a = signal.iirpeak(centre_hz, centre_hz / bandwidth_hz, fs=sample_rate)
        voiced += signal.lfilter(b, a, source)
    syllables = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * time_s), 0, None))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(time_s))
    wav = voiced * syllables + noise
    return (0.5 * wav / np.abs(wav).max()).astype(np.float32)


def sine(
    freq_hz: float, sample_rate: int = SAMPLE_RATE, seconds: float = 1.0, amp: float = 0.5
) -> np.ndarray:
    time_s = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq_hz * time_s)).astype(np.float32)


def white(sample_rate: int = SAMPLE_RATE, seconds: float = 1.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32)


def chirp(sample_rate: int = SAMPLE_RATE, seconds: float = 1.0) -> np.ndarray:
    time_s = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * signal.chirp(time_s, 50, seconds, 0.49 * sample_rate)).astype(np.float32)


def high_band_db(wav: np.ndarray, sample_rate: int, cutoff_hz: float = 4200.0) -> float:
    """Energy above ``cutoff_hz`` relative to the total, in dB (Hann-windowed spectrum)."""
    power = np.abs(np.fft.rfft(wav * np.hanning(len(wav)))) ** 2
    freqs = np.fft.rfftfreq(len(wav), 1 / sample_rate)
    return float(10 * np.log10(power[freqs > cutoff_hz].sum() / power.sum()))


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - test) ** 2)))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def best_lag(reference: np.ndarray, test: np.ndarray, max_lag: int) -> int:
    """Lag in samples at which ``test`` best matches ``reference`` (positive: late)."""
    corr = signal.correlate(test, reference, "full")
    lags = signal.correlation_lags(len(test), len(reference), "full")
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(corr[keep])])


@pytest.fixture(scope="module", autouse=True)
def _import_librosa_effects() -> None:
    """Pay librosa.effects' one-off lazy import (numba, several seconds) outside the tests."""
    import librosa.effects  # noqa: F401


def run(name: str, wav: np.ndarray, sample_rate: int = SAMPLE_RATE, **params) -> np.ndarray:
    return CHANNELS[name](wav, sample_rate, **{**REQUIRED.get(name, {}), **params})


@pytest.mark.parametrize("name", sorted(set(CHANNELS) - {"speed"}))
def test_keeps_length_and_dtype(name: str) -> None:
    wav = speech_like(seconds=0.5).astype(np.float64)[:7999]
    out = run(name, wav)
    assert out.shape == wav.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_speed_changes_length_and_pitch(factor: float) -> None:
    out = channel.speed(sine(500.0), SAMPLE_RATE, factor)
    assert out.dtype == np.float32
    assert abs(len(out) - SAMPLE_RATE / factor) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * SAMPLE_RATE / len(out)
    assert peak_hz == pytest.approx(500.0 * factor, rel=0.01)


def test_pitch_shift_moves_pitch_keeps_length() -> None:
    wav = sine(440.0)
    out = channel.pitch_shift(wav, SAMPLE_RATE, 12.0)
    assert out.shape == wav.shape and out.dtype == np.float32
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * SAMPLE_RATE / len(out)
    assert peak_hz == pytest.approx(880.0, rel=0.02)


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seeded_channels_deterministic_and_seed_dependent(name: str) -> None:
    wav = speech_like(seconds=0.5)
    first = CHANNELS[name](wav, SAMPLE_RATE, seed=3, **SEEDED[name])
    again = CHANNELS[name](wav, SAMPLE_RATE, seed=np.random.default_rng(3), **SEEDED[name])
    other = CHANNELS[name](wav, SAMPLE_RATE, seed=4, **SEEDED[name])
    assert np.array_equal(first, CHANNELS[name](wav, SAMPLE_RATE, seed=3, **SEEDED[name]))
    assert first.shape == again.shape == wav.shape
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("codec", sorted(TELEPHONE_CODECS) + ["narrowband"])
@pytest.mark.parametrize("make_input", [white, chirp], ids=["white", "chirp"])
def test_telephone_channels_remove_energy_above_4khz(codec: str, make_input) -> None:
    name, params = TELEPHONE_CODECS.get(codec, ("narrowband", {}))
    wav = make_input()
    before = high_band_db(wav, SAMPLE_RATE)
    after = high_band_db(run(name, wav, **params), SAMPLE_RATE)
    assert before > -6.0
    assert before - after > 30.0


def test_bandpass_stops_out_of_band_tones_and_passes_1khz() -> None:
    def gain_db(freq_hz: float) -> float:
        wav = sine(freq_hz)
        out = channel.bandpass(wav, SAMPLE_RATE)
        middle = slice(2000, -2000)  # away from the filter's edge transients
        return float(10 * np.log10(np.mean(out[middle] ** 2) / np.mean(wav[middle] ** 2)))

    assert gain_db(100.0) < -20.0
    assert gain_db(6000.0) < -20.0
    assert abs(gain_db(1000.0)) < 1.0


@pytest.mark.parametrize("law", ["mu", "a"])
def test_g711_snr_in_known_range(law: str) -> None:
    wav = sine(1000.3, sample_rate=8000, amp=0.9)
    assert 30.0 < snr_db(wav, channel.g711(wav, 8000, law=law)) < 40.0
    speech = speech_like()
    band = channel.narrowband(speech, SAMPLE_RATE)
    assert 30.0 < snr_db(band, channel.g711(speech, SAMPLE_RATE, law=law)) < 40.0


@pytest.mark.parametrize("codec", sorted(TELEPHONE_CODECS | WIDEBAND_CODECS))
@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_codecs_time_aligned_and_faithful(codec: str, sample_rate: int) -> None:
    name, params = (TELEPHONE_CODECS | WIDEBAND_CODECS)[codec]
    wav = speech_like(sample_rate)
    reference = wav if codec in WIDEBAND_CODECS else channel.narrowband(wav, sample_rate)
    out = run(name, wav, sample_rate, **params)
    assert abs(best_lag(reference, out, max_lag=sample_rate // 10)) <= 0.002 * sample_rate
    assert correlation(reference, out) > 0.8
    assert not np.array_equal(out, reference)  # lossy


def test_opus_at_16khz_keeps_wideband() -> None:
    out = channel.opus(white(), SAMPLE_RATE, bitrate=16000, rate=16000)
    assert high_band_db(out, SAMPLE_RATE) > -20.0


@pytest.mark.parametrize("kind", ["white", "pink", "babble", "hum", "recording"])
@pytest.mark.parametrize("target_db", [0.0, 15.0, 30.0])
def test_add_noise_hits_requested_snr(kind: str, target_db: float) -> None:
    wav = speech_like()
    noise = white(seconds=0.3, seed=9) if kind == "recording" else None
    kind_arg = "white" if kind == "recording" else kind
    out = channel.add_noise(wav, SAMPLE_RATE, target_db, kind=kind_arg, seed=1, noise=noise)
    assert snr_db(wav, out) == pytest.approx(target_db, abs=0.5)


def test_add_noise_leaves_silence_silent() -> None:
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert np.array_equal(channel.add_noise(silence, SAMPLE_RATE, 10.0), silence)


def test_reverb_lengthens_decay_and_keeps_level() -> None:
    def decay_ms(wav: np.ndarray, burst_end: int) -> float:
        frames = np.mean(wav[: len(wav) // 160 * 160].reshape(-1, 160) ** 2, axis=1)  # 10 ms
        floor = np.mean(frames[: burst_end // 160]) * 1e-3  # 30 dB below the burst
        after = np.flatnonzero(frames[burst_end // 160 :] < floor)
        return 10.0 * after[0]

    wav = white(seconds=1.0)
    wav[SAMPLE_RATE // 4 :] = 0.0
    out = channel.reverb(wav, SAMPLE_RATE, rt60=0.4, seed=0)
    assert decay_ms(wav, SAMPLE_RATE // 4) <= 10.0
    assert decay_ms(out, SAMPLE_RATE // 4) > 60.0
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(wav**2)), rel=1e-3)
    assert best_lag(wav, out, max_lag=800) == 0  # direct path kept at sample 0


def test_packet_loss_rate_zero_is_identity() -> None:
    wav = speech_like()
    assert np.array_equal(channel.packet_loss(wav, SAMPLE_RATE, loss_rate=0.0), wav)


def test_packet_loss_changes_about_the_lost_fraction_and_repeats() -> None:
    wav = speech_like(seconds=2.0)
    out = channel.packet_loss(wav, SAMPLE_RATE, loss_rate=0.2, packet_ms=20.0, seed=5)
    packet = SAMPLE_RATE // 50
    changed = np.any(out.reshape(-1, packet) != wav.reshape(-1, packet), axis=1)
    assert 0.12 < changed.mean() < 0.28
    first = int(np.flatnonzero(changed[1:] & ~changed[:-1])[0]) + 1
    held = wav[(first - 1) * packet : first * packet]
    concealed = out[first * packet : (first + 1) * packet]
    assert np.array_equal(concealed[:160], held[:160])  # full level for 10 ms
    assert np.all(np.abs(concealed[160:]) <= np.abs(held[160:]) + 1e-7)  # then fades


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_phone_call_band_limited_and_replayable(seed: int) -> None:
    wav = speech_like(seconds=1.0, seed=seed)
    out, steps = phone_call(wav, SAMPLE_RATE, seed=seed)
    assert out.shape == wav.shape and out.dtype == np.float32
    assert high_band_db(out, SAMPLE_RATE) < -40.0
    assert any(step.name == "narrowband" for step in steps)
    restored = [
        ChannelStep.from_dict(item) for item in json.loads(json.dumps([s.to_dict() for s in steps]))
    ]
    assert restored == steps
    assert np.array_equal(apply_chain(wav, SAMPLE_RATE, restored, seed=123), out)
    again, _ = phone_call(wav, SAMPLE_RATE, seed=seed)
    assert np.array_equal(again, out)


def test_phone_call_draws_varied_chains() -> None:
    wav = speech_like(seconds=0.25)
    codecs, outputs = set(), []
    for seed in range(12):
        out, steps = phone_call(wav, SAMPLE_RATE, seed=seed)
        codecs.update(s.name for s in steps if s.name in {"g711", "gsm", "amr_nb", "opus"})
        outputs.append(out)
    assert len(codecs) >= 3
    assert not np.array_equal(outputs[0], outputs[1])


def tone_gain_db(name: str, freq_hz: float, **params) -> float:
    wav = sine(freq_hz, seconds=1.0, amp=0.1)
    out = run(name, wav, **params)
    return 20 * np.log10(np.std(out[4000:-4000]) / np.std(wav[4000:-4000]))


def test_equalize_follows_its_control_points_and_high_pass() -> None:
    params = {"freqs_hz": [500.0, 4000.0], "gains_db": [0.0, -12.0]}
    assert tone_gain_db("equalize", 300.0, **params) == pytest.approx(0.0, abs=0.2)  # flat below the first point
    assert tone_gain_db("equalize", 2000.0, **params) == pytest.approx(-8.0, abs=0.2)  # 2/3 of the way in log f
    assert tone_gain_db("equalize", 6000.0, **params) == pytest.approx(-12.0, abs=0.2)  # flat above the last
    assert tone_gain_db("equalize", 50.0, freqs_hz=[1000.0], gains_db=[0.0], highpass_hz=300.0) < -25.0
    assert tone_gain_db("equalize", 3000.0, freqs_hz=[1000.0], gains_db=[0.0], highpass_hz=300.0) == pytest.approx(0.0, abs=0.2)


def test_level_sets_the_peak_and_drive_compresses() -> None:
    wav = speech_like()
    out = channel.level(wav, SAMPLE_RATE, peak_db=-12.0)
    assert 20 * np.log10(np.abs(out).max()) == pytest.approx(-12.0, abs=1e-3)
    assert correlation(out, wav) == pytest.approx(1.0, abs=1e-6)
    driven = channel.level(wav, SAMPLE_RATE, peak_db=-1.0, drive=4.0)
    crest = lambda x: np.abs(x).max() / np.sqrt(np.mean(x**2))  # noqa: E731
    assert crest(driven) < 0.8 * crest(wav)
    assert not np.any(channel.level(np.zeros(800, np.float32), SAMPLE_RATE, peak_db=-6.0))


def test_recording_chain_replayable_varied_and_wideband_or_not() -> None:
    wav = speech_like(seconds=0.5)
    names, bands = set(), []
    for seed in range(40):
        out, steps = recording_chain(wav, SAMPLE_RATE, seed=seed)
        assert out.shape == wav.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
        assert steps[0].name == "equalize" and not any(s.name in {"g711", "gsm", "amr_nb", "reverb"} for s in steps)
        restored = [ChannelStep.from_dict(item) for item in json.loads(json.dumps([s.to_dict() for s in steps]))]
        assert np.array_equal(apply_chain(wav, SAMPLE_RATE, restored), out)
        assert np.array_equal(recording_chain(wav, SAMPLE_RATE, seed=seed)[0], out)
        names.update(s.name for s in steps)
        if any(s.name == "narrowband" and s.params["rate"] == 8000 for s in steps) and \
                {s.name for s in steps} == {"equalize", "narrowband", "level"}:  # noise and codecs come after it
            bands.append(high_band_db(out, SAMPLE_RATE))
    assert {"narrowband", "level", "add_noise", "mp3", "opus"} <= names
    assert bands and all(b < -40.0 for b in bands)
    with pytest.raises(ValueError, match="16000"):
        recording_chain(speech_like(8000, seconds=0.1), 8000)


def test_compose_chain_roundtrip() -> None:
    wav = speech_like(seconds=0.5)
    chain = compose(
        "narrowband", ChannelStep("g711", {"law": "a"}), ChannelStep("add_noise", {"snr_db": 20.0})
    )
    out = chain(wav, SAMPLE_RATE, seed=7)
    assert np.array_equal(out, apply_chain(wav, SAMPLE_RATE, chain.steps, seed=7))
    assert type(chain).from_dicts(json.loads(json.dumps(chain.to_dicts()))) == chain
    expected = channel.g711(channel.narrowband(wav, SAMPLE_RATE), SAMPLE_RATE, law="a")
    assert snr_db(expected, out) == pytest.approx(20.0, abs=0.5)


@pytest.mark.parametrize(
    ("wav", "sample_rate", "match"),
    [
        (np.zeros((2, 800), np.float32), SAMPLE_RATE, "1-D"),
        (np.zeros(0, np.float32), SAMPLE_RATE, "empty"),
        (np.array([0.0, np.nan, 0.1], np.float32), SAMPLE_RATE, "non-finite"),
        (np.array([0.0, np.inf, 0.1], np.float32), SAMPLE_RATE, "non-finite"),
        (np.zeros(800, np.float32), 3999, "3999"),
    ],
    ids=["2d", "empty", "nan", "inf", "low_rate"],
)
@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_bad_input_raises(name: str, wav: np.ndarray, sample_rate: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run(name, wav, sample_rate)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("amr_nb", {"bitrate": 5000}, "bitrate"),
        ("g711", {"law": "b"}, "law"),
        ("bandpass", {"high_hz": 9000.0}, "high_hz"),
        ("opus", {"rate": 44100}, "rate"),
        ("packet_loss", {"loss_rate": 1.5}, "loss_rate"),
        ("add_noise", {"snr_db": 10.0, "kind": "brown"}, "kind"),
        ("equalize", {"freqs_hz": [100.0, 1000.0], "gains_db": [0.0]}, "as many gains"),
        ("equalize", {"freqs_hz": [1000.0, 100.0], "gains_db": [0.0, 0.0]}, "increase"),
        ("equalize", {"freqs_hz": [100.0, 9000.0], "gains_db": [0.0, 0.0]}, "increase"),
        ("equalize", {"freqs_hz": [100.0], "gains_db": [60.0]}, "40 dB"),
        ("equalize", {"freqs_hz": [100.0], "gains_db": [0.0], "highpass_hz": 2000.0}, "highpass_hz"),
        ("level", {"peak_db": 3.0}, "peak_db"),
        ("level", {"drive": -1.0}, "drive"),
    ],
)
def test_bad_params_raise(name: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CHANNELS[name](speech_like(seconds=0.1), SAMPLE_RATE, **params)


def test_bad_dtype_and_rate_type_raise() -> None:
    with pytest.raises(TypeError, match="int16"):
        channel.gsm(np.zeros(800, np.int16), SAMPLE_RATE)
    with pytest.raises(TypeError, match="16000.0"):
        channel.gsm(np.zeros(800, np.float32), 16000.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise is empty"):
        channel.add_noise(speech_like(seconds=0.1), SAMPLE_RATE, 10.0, noise=np.zeros(0))


def test_bad_steps_raise() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        ChannelStep("telegraph", {})
    with pytest.raises(ValueError, match="bitrat"):
        ChannelStep("amr_nb", {"bitrat": 12200})
    with pytest.raises(ValueError, match="snr_db"):
        ChannelStep("add_noise", {"kind": "pink"})
    with pytest.raises(ValueError, match="keys"):
        ChannelStep.from_dict({"name": "gsm"})
    with pytest.raises(ValueError, match="8000"):
        phone_call(speech_like(6000, seconds=0.1), 6000)
