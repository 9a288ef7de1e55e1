"""benchmarks/cloning.py's independent judge: long-term MFCC statistics hear the spectral envelope."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("librosa", reason="librosa is not installed")
cloning = pytest.importorskip("benchmarks.cloning")

SR = 16000


def _voice(envelope: np.ndarray, seed: int, seconds: float = 2.0) -> np.ndarray:
    """A buzz at a random pitch through a fixed spectral envelope (a crude 'voice'), with pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    f0 = rng.uniform(90, 220)
    t = np.arange(n) / SR
    buzz = np.sign(np.sin(2 * np.pi * f0 * t)) + 0.1 * rng.standard_normal(n)
    spectrum = np.fft.rfft(buzz) * np.interp(np.linspace(0, 1, n // 2 + 1), np.linspace(0, 1, len(envelope)), envelope)
    wav = np.fft.irfft(spectrum, n)
    wav *= (np.sin(2 * np.pi * 1.5 * t) > -0.8)  # a fifth of it silent
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def test_statistics_are_38_numbers_from_the_louder_frames() -> None:
    wav = _voice(np.ones(8), 0)
    stats = cloning.mfcc_statistics(wav)
    assert stats.shape == (38,) and np.isfinite(stats).all()
    # more silence, still under the quietest 40 %: the statistics of the louder frames barely move
    padded = np.concatenate([wav, np.zeros(SR // 5, np.float32)])
    assert np.abs(cloning.mfcc_statistics(padded) - stats).max() < 0.1 * np.abs(stats).max()


def test_judge_prefers_the_same_envelope_over_another() -> None:
    rng = np.random.default_rng(1)
    envelopes = [np.exp(rng.normal(0, 1.0, 12)) for _ in range(6)]
    population = [_voice(e, 100 + 10 * i + k) for i, e in enumerate(envelopes) for k in range(3)]
    judge = cloning.MfccJudge(population)
    for i, envelope in enumerate(envelopes[:3]):
        held = judge.embed(_voice(envelope, 7 + i))
        assert abs(float(np.linalg.norm(held)) - 1) < 1e-6
        same = float(np.dot(judge.embed(_voice(envelope, 50 + i)), held))
        other = float(np.dot(judge.embed(_voice(envelopes[i + 3], 50 + i)), held))
        assert same > other + 0.2, (i, same, other)


def _clip(sim: float, key: tuple | None) -> dict:
    return {"sim": sim, "sim_mfcc": sim / 2, "text": "one two", "hyp": "one two", "dnsmos": 3.0, "duration": 1.0,
            "compute": 0.5, "key": key}


def test_summary_counts_above_source_only_for_conversions_of_a_source() -> None:
    baseline = {("t", "a"): 0.5, ("t", "b"): 0.7}
    row = cloning.summarise([_clip(0.6, ("t", "a")), _clip(0.6, ("t", "b")), _clip(0.9, None)], baseline)
    assert row["share_above_source"] == 0.5  # the keyless clip (a diagnostic) is not a pair
    assert row["similarity_mean"] == pytest.approx(0.7) and row["similarity_mfcc_mean"] == pytest.approx(0.35)
    assert row["transcripts"][0]["pair"] == ("t", "a") and row["transcripts"][2]["similarity"] == 0.9
    assert "share_above_source" not in cloning.summarise([_clip(0.9, None)], baseline)


def test_pitch_judge_reads_the_voiced_median_and_rows_report_semitones() -> None:
    t = np.arange(SR) / SR
    tone = (0.3 * sum(np.sin(2 * np.pi * 180.0 * k * t) / k for k in range(1, 6))).astype(np.float32)
    assert cloning.Judges.median_f0(tone) == pytest.approx(180.0, rel=0.03)
    silent = np.zeros(SR, np.float32)
    assert np.isnan(cloning.Judges.median_f0(silent))
    assert cloning._semitones(2 * 180.0, 180.0) == pytest.approx(12.0)
    clips = [{**_clip(0.6, None), "pitch_st": 2.0}, {**_clip(0.6, None), "pitch_st": -1.0},
             {**_clip(0.6, None), "pitch_st": float("nan")}]  # an unvoiced clip counts in neither
    row = cloning.summarise(clips)
    assert row["pitch_error_st_mean_abs"] == pytest.approx(1.5) and row["pitch_error_st_mean"] == pytest.approx(0.5)
    assert "pitch_error_st_mean_abs" not in cloning.summarise([_clip(0.6, None)])


@pytest.mark.data
def test_phone_references_are_narrowband_and_the_held_out_utterance_stays_clean(data_root) -> None:  # noqa: ANN001
    """``--reference-channel phone``: every reference clip goes through a seeded telephone call (nothing
    above 4 kHz survives), the same call for the same clip on every run; the judge's held-out
    utterance is the recording itself."""
    clean = cloning.targets(data_root, 3.0)
    phone = cloning.targets(data_root, 3.0, "phone")
    again = cloning.targets(data_root, 3.0, "phone")
    assert len(clean) == len(phone) == 10
    for c, p, a in zip(clean, phone, again, strict=True):
        assert np.array_equal(c["held"], p["held"]) and len(c["reference"]) == len(p["reference"])
        for wav_c, wav_p, wav_a in zip(c["reference"], p["reference"], a["reference"], strict=True):
            assert len(wav_c) == len(wav_p) and np.array_equal(wav_p, wav_a)
            spectrum = np.abs(np.fft.rfft(wav_p)) ** 2
            high = spectrum[int(len(spectrum) * 4300 / 8000):].sum() / spectrum.sum()
            assert high < 1e-3 and not np.allclose(wav_c, wav_p)


@pytest.mark.data
def test_sources_default_to_the_held_out_sentences_and_can_be_others(data_root) -> None:  # noqa: ANN001
    """The benchmark converts VCTK 023/024 of four speakers by default; --source-utterances 021 022 gives eight
    other clips with their own transcripts (a confirmation set), and numbers that do not exist are one clear exit."""
    held = cloning.sources(data_root)
    other = cloning.sources(data_root, ("021", "022"))
    assert len(held) == len(other) == 8
    assert {s["name"].split("_")[1] for s in held} == {"023", "024"}
    assert {s["name"].split("_")[1] for s in other} == {"021", "022"}
    assert all(s["text"] for s in other) and {s["text"] for s in other}.isdisjoint({s["text"] for s in held})
    with pytest.raises(SystemExit, match="no VCTK utterances 999"):
        cloning.sources(data_root, ("999",))
