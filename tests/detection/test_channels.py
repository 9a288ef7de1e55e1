"""Stereo call recordings: which channels are scored apart, how their reports combine, the API,
the CLI, and the bundled detector on a call with one synthetic leg."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from voicefake import api
from voicefake.audio.legs import leg_speech, plan_channels, to_original_time
from voicefake.cli import main
from voicefake.detection.inference import Calibration, DetectionReport, combine_channels
from voicefake.detection.model import Detector, DetectorConfig

RNG = np.random.default_rng(0)
NOISE = (0.1 * RNG.standard_normal((16000, 2))).astype(np.float32)


def test_plan_channels_auto_splits_two_different_legs_only() -> None:
    assert plan_channels(NOISE, "auto")[0] == [0, 1]
    assert plan_channels(NOISE[:, :1], "auto") == ([], {"count": 1, "mode": "mono", "reason": "one channel"})
    same = np.stack([NOISE[:, 0], 0.5 * NOISE[:, 0]], axis=1)  # dual mono, one at half level
    chosen, info = plan_channels(same, "auto")
    assert chosen == [] and info["mode"] == "mix" and "one signal" in info["reason"]
    quiet = np.stack([NOISE[:, 0], 1e-3 * NOISE[:, 1]], axis=1)  # -60 dB: a dead leg's hiss
    chosen, info = plan_channels(quiet, "auto")
    assert chosen == [] and "channel 1 is 60 dB below" in info["reason"]
    one_leg = np.stack([NOISE[:, 0], np.zeros(16000, np.float32)], axis=1)  # a one-sided recording
    assert plan_channels(one_leg, "auto")[1]["reason"] == "channel 1 is digital silence: one voice"
    surround = (0.1 * RNG.standard_normal((16000, 6))).astype(np.float32)
    assert plan_channels(surround, "auto")[0] == [] and plan_channels(surround, "split")[0] == list(range(6))
    assert plan_channels(NOISE, "mix") == ([], {"count": 2, "mode": "mix", "reason": "asked to average the channels"})


def test_plan_channels_split_skips_digital_silence_and_refuses_unknown_modes() -> None:
    silent_leg = np.stack([NOISE[:, 0], np.zeros(16000, np.float32)], axis=1)
    chosen, info = plan_channels(silent_leg, "split")
    assert chosen == [0] and info["skipped"] == [{"channel": 1, "reason": "digital silence"}]
    with pytest.raises(ValueError, match="channels='both' is not one of auto, mix, split"):
        plan_channels(NOISE, "both")


def _leg(channel: int, probs: list[float], p_fake: float, threshold: float = 0.9) -> DetectionReport:
    segments = [{"start": 0.5 * i, "end": 0.5 * i + 1.5, "p_fake": p} for i, p in enumerate(probs)]
    spans = [{"start": s["start"], "end": s["end"]} for s in segments if s["p_fake"] >= 0.8]
    evidence = {"channel": channel, "segment_threshold": 0.8, "flagged_spans": spans, "network_logit": channel}
    return DetectionReport(p_fake, "fake" if p_fake >= threshold else "real", threshold, segments, evidence,
                           {"name": "d", "version": "1"}, 3.0)


def test_combine_channels_decides_by_any_fake_leg_and_keeps_every_leg() -> None:
    real, fake = _leg(0, [0.1, 0.85, 0.2], 0.6), _leg(1, [0.3, 0.5, 0.95], 0.93)
    info = {"count": 2, "mode": "split", "reason": "test"}
    both = combine_channels([real, fake], info)
    assert (both.label, both.p_fake, both.threshold) == ("fake", 0.93, 0.9)
    assert both.evidence["channels"] == {**info, "deciding": 1} and both.evidence["network_logit"] == 1
    assert [(s["p_fake"], s["channel"]) for s in both.segments] == [(0.3, 1), (0.85, 0), (0.95, 1)]
    assert [(s["start"], s["channel"]) for s in both.evidence["flagged_spans"]] == [(0.5, 0), (1.0, 1)]
    assert both.channels == [real, fake] and "channel" not in both.evidence
    # a fake leg decides over a real one with a higher p_fake (another bandwidth's threshold)
    lenient = _leg(0, [0.1, 0.1, 0.1], 0.95, threshold=0.97)
    assert combine_channels([lenient, fake], info).evidence["channels"]["deciding"] == 1
    record = json.loads(json.dumps(both.to_dict()))
    assert [c["evidence"]["channel"] for c in record["channels"]] == [0, 1]
    assert "channels" not in record["channels"][0] and "channels" not in real.to_dict()


def test_the_timeline_follows_the_party_who_speaks() -> None:
    """With speech shares (legs scored on their own speech), a window goes to the leg that
    speaks most of it, even when the other leg's few frames there score higher."""
    real, fake = _leg(0, [0.1, 0.2, 0.0], 0.3), _leg(1, [0.0, 0.95, 0.97], 0.96)
    for leg, shares in ((real, [1.0, 0.8, 0.0]), (fake, [0.0, 0.2, 1.0])):
        for segment, share in zip(leg.segments, shares, strict=True):
            segment["speech"] = share
    both = combine_channels([real, fake], {"count": 2, "mode": "split", "reason": ""})
    assert [(s["channel"], s["p_fake"]) for s in both.segments] == [(0, 0.1), (0, 0.2), (1, 0.97)]


def test_a_users_threshold_decides_every_leg_again() -> None:
    both = combine_channels([_leg(0, [0.1], 0.6), _leg(1, [0.3], 0.93)], {"count": 2, "mode": "split", "reason": ""})
    strict = both.at_threshold(0.99)
    assert (strict.label, strict.p_fake, strict.threshold) == ("real", 0.93, 0.99)
    assert [c.label for c in strict.channels] == ["real", "real"]
    assert strict.evidence["threshold_set_by"] == "user" and strict.evidence["model_threshold"] == 0.9
    lax = both.at_threshold(0.5)
    assert [c.label for c in lax.channels] == ["fake", "fake"] and lax.evidence["channels"]["deciding"] == 1


def test_api_and_cli_score_the_legs_of_a_stereo_file(tiny_checkpoint, tmp_path, capsys) -> None:
    path = tmp_path / "pbx.wav"
    sf.write(path, NOISE, 16000)
    report = api.detect(path, tiny_checkpoint)
    assert [c.evidence["channel"] for c in report.channels] == [0, 1]
    assert report.p_fake == max(c.p_fake for c in report.channels) or report.label == "fake"
    for channel in (0, 1):  # each leg's report is that leg scored alone
        alone = api.detect(NOISE[:, channel].copy(), tiny_checkpoint)
        assert report.channels[channel].p_fake == alone.p_fake
    mixed = api.detect(path, tiny_checkpoint, channels="mix")
    assert mixed.channels is None and mixed.evidence["channels"]["mode"] == "mix"
    assert mixed.p_fake == api.detect(NOISE.mean(axis=1), tiny_checkpoint).p_fake
    assert api.detect(NOISE, tiny_checkpoint).p_fake == report.p_fake  # a (T, 2) array, as the demo passes
    with pytest.raises(ValueError, match="not one of"):
        api.detect(path, tiny_checkpoint, channels="left")

    assert main(["detect", str(path), "--json", "--checkpoint", tiny_checkpoint, "--no-evidence"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert [c["evidence"]["channel"] for c in line["channels"]] == [0, 1]
    assert line["evidence"]["channels"]["mode"] == "split" and line["p_fake"] == report.p_fake
    assert main(["detect", str(path), "--checkpoint", tiny_checkpoint, "--no-evidence"]) == 0
    assert "channels scored apart, channel" in capsys.readouterr().out
    assert main(["detect", str(path), "--json", "--checkpoint", tiny_checkpoint, "--channels", "mix"]) == 0
    assert "channels" not in json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit) as usage:
        main(["detect", str(path), "--checkpoint", tiny_checkpoint, "--channels", "left"])
    assert usage.value.code == 2


@pytest.mark.data
def test_bundled_detector_names_the_synthetic_leg_of_a_stereo_call(data_root) -> None:
    """A call with a real dev speaker on the left and the bundled vocoder's copy of another dev
    speaker on the right, turn by turn: scored apart, the right leg is flagged and decides the
    verdict, and the left leg stays real."""
    from voicefake.audio.io import load_audio

    real = load_audio(data_root / "librispeech_resemblyzer/test-other/1688/1688-142285-0001.flac")
    copy = api.resynthesize(load_audio(data_root / "librispeech_resemblyzer/test-other/1998/1998-15444-0001.flac"))[0]
    left = np.concatenate([real, np.zeros_like(copy)])
    right = np.concatenate([np.zeros_like(real), copy])
    report = api.detect(np.stack([left, right], axis=1), evidence=False)
    assert report.evidence["channels"]["mode"] == "split"
    assert [c.label for c in report.channels] == ["real", "fake"]
    assert report.label == "fake" and report.evidence["channels"]["deciding"] == 1
    for leg in report.channels:  # each of the two legs at half the false-alarm rate: a stricter threshold
        assert leg.evidence["threshold_set_by"] == "legs" and leg.threshold > leg.evidence["model_threshold"]
    # the timeline puts the synthetic leg's turn on channel 1 and flags most of it
    turn = [s for s in report.segments if s["start"] >= real.size / 16000]
    assert turn and all(s["channel"] == 1 for s in turn)
    assert np.mean([s["p_fake"] >= report.evidence["segment_threshold"] for s in turn]) >= 0.75


def _bursts(pattern: list[tuple[float, bool]], rate: int = 16000) -> np.ndarray:
    """Noise bursts (True) and near-silence (False, -70 dB line hiss) of the given lengths (s)."""
    rng = np.random.default_rng(1)
    return np.concatenate([(0.1 if loud else 3e-5) * rng.standard_normal(int(s * rate)).astype(np.float32)
                           for s, loud in pattern])


def test_leg_speech_cuts_the_other_partys_turns_to_a_pause() -> None:
    leg = _bursts([(2.0, True), (3.0, False), (1.0, True), (0.5, False), (1.0, True), (2.5, False)])
    kept = leg_speech(leg, 16000)
    seconds = [(a / 16000, b / 16000) for a, b in kept]
    assert len(kept) == 2  # the 0.5 s pause stays; the 3 s turn keeps 0.15 s at each edge; the tail goes
    assert seconds[0][0] == 0.0 and seconds[0][1] == pytest.approx(2.15, abs=0.04)
    assert seconds[1][0] == pytest.approx(4.85, abs=0.04) and seconds[1][1] == pytest.approx(7.65, abs=0.04)
    assert leg_speech(_bursts([(3.0, True)]), 16000) == [(0, 48000)]  # no pause: whole
    assert leg_speech(_bursts([(3.0, False)]), 16000) == [(0, 48000)]  # hiss only: whole
    # joined-time -> original-time
    first = seconds[0][1]  # the joined leg's first piece ends here, the second starts
    joined = np.array([0.0, 2.0, first, first + 0.85])
    np.testing.assert_allclose(to_original_time(joined, kept, 16000), [0.0, 2.0, seconds[1][0], seconds[1][0] + 0.85],
                               atol=1e-9)


def test_a_legs_timeline_and_saliency_spans_lie_on_the_recordings_time_axis(monkeypatch) -> None:
    """A leg scored on its speech alone reports windows over the whole leg (silent ones at 0),
    and saliency spans of a long input are offset to where its most suspicious 30 s start."""
    from voicefake.detection import inference

    model = Detector(DetectorConfig.tiny()).eval()
    leg = _bursts([(2.0, True), (4.0, False), (2.0, True)])
    kept = leg_speech(leg, 16000)
    speech = inference.prepare(np.concatenate([leg[a:b] for a, b in kept]), 16000)
    report = inference.detect_waveform(model, speech, Calibration(), {"name": "t", "version": "0"}, evidence=False,
                                       kept=kept, original_length=leg.size)
    assert report.duration == pytest.approx(8.0) and report.segments[-1]["end"] == pytest.approx(8.0)
    assert report.evidence["scored_seconds"] == pytest.approx(4.3, abs=0.05)
    silent = [s for s in report.segments if s["start"] >= 2.2 and s["end"] <= 5.8]
    assert silent and all(s["p_fake"] == 0.0 for s in silent)
    assert all(s["p_fake"] > 0.0 for s in report.segments if s["end"] <= 2.0 or s["start"] >= 6.0)
    with pytest.raises(ValueError, match="original_length"):
        inference.detect_waveform(model, speech, Calibration(), {"name": "t", "version": "0"}, kept=kept)

    long = inference.prepare(_bursts([(50.0, True)]), 16000)
    monkeypatch.setattr(inference, "saliency", lambda *args: {"bands": [], "spans": [{"start": 0.0, "end": 0.5}]})
    monkeypatch.setattr(inference, "_most_suspicious", lambda wav, *args: (wav[:480000], 17.0))
    found = inference.detect_waveform(model, long, Calibration(), {"name": "t", "version": "0"})
    assert found.evidence["saliency"]["spans"] == [{"start": 17.0, "end": 17.5}]


def test_stereo_localisation_counts_the_fake_partys_own_leg() -> None:
    """With channels on both sides, a fake second flagged by the other leg's window counts as
    found, but not as found on its own channel; without channels the key is absent."""
    from voicefake.detection.inference import score_against_truth

    segments = [{"start": 0.0, "end": 1.0, "p_fake": 0.9, "channel": 0},
                {"start": 1.0, "end": 2.0, "p_fake": 0.9, "channel": 1},
                {"start": 2.0, "end": 3.0, "p_fake": 0.1, "channel": 1}]
    report = DetectionReport(0.9, "fake", 0.5, segments, {"segment_threshold": 0.5}, {"name": "t"}, 3.0)
    truth = [{"start": 0.0, "end": 2.0, "label": "fake", "channel": 1},
             {"start": 2.0, "end": 3.0, "label": "real", "channel": 0}]
    figures = score_against_truth(report, truth)
    assert figures["found_fake_seconds"] == 2.0 and figures["found_fake_seconds_on_its_channel"] == 1.0
    plain = [{k: v for k, v in seg.items() if k != "channel"} for seg in truth]
    assert "found_fake_seconds_on_its_channel" not in score_against_truth(report, plain)


def test_each_leg_is_held_to_a_share_of_the_false_alarm_rate() -> None:
    """threshold_for_legs: where the dev table reaches far_target / legs, interpolated, never
    below the model's threshold; without a table, the model's. A leg decided there says so and
    keeps the model's threshold; a user's threshold then replaces it for every leg."""
    from voicefake.detection.inference import threshold_for_legs

    dev = {"roc_narrowband": {"thresholds": [0.9, 0.95, 0.96, 1.0], "far": [0.02, 0.008, 0.004, 0.0]}}
    assert threshold_for_legs(dev, "narrowband", 0.938, 0.005) == pytest.approx(0.9575)
    assert threshold_for_legs(dev, "narrowband", 0.99, 0.005) == 0.99  # never looser than the model's
    assert threshold_for_legs({}, "wideband", 0.87, 0.005) == 0.87
    assert threshold_for_legs({"roc": dev["roc_narrowband"]}, "wideband", 0.87, 0.001) == pytest.approx(0.99)
    # calibrated with re-recorded reals too: each leg also holds far on their table of its condition
    chain = {"roc_narrowband": {"thresholds": [0.9, 0.97, 0.98, 1.0], "far": [0.05, 0.01, 0.004, 0.0]}}
    assert threshold_for_legs({**dev, "chain_reals": chain}, "narrowband", 0.975, 0.005) == pytest.approx(0.97833, abs=1e-4)
    assert threshold_for_legs({**dev, "chain_reals": chain}, "wideband", 0.87, 0.005) == 0.87  # no table of that band
    leg = _leg(1, [0.95], 0.95, threshold=0.938).decided_at(0.9575, "legs")
    assert leg.label == "real" and leg.threshold == 0.9575
    assert leg.evidence["threshold_set_by"] == "legs" and leg.evidence["model_threshold"] == 0.938
    both = combine_channels([_leg(0, [0.1], 0.2), leg], {"count": 2, "mode": "split", "reason": ""})
    mine = both.at_threshold(0.9)
    assert mine.label == "fake" and mine.evidence["threshold_set_by"] == "user"
    assert mine.evidence["model_threshold"] == 0.938  # the model's, not the leg's


def test_leg_speech_cuts_the_other_partys_echo_with_the_other_leg() -> None:
    """A leg that carries the other party at -25 dB, 40 ms late (echo), keeps that stretch on its
    own; given the other leg, it is cut like silence, also where the late echo outlasts the other
    party's syllables (hence the other leg's envelope). Both talking at once stays."""
    rng = np.random.default_rng(2)
    hush, own_turn, their_turn, both = np.zeros(32000), 0.1 * rng.standard_normal(32000), np.zeros(48000), 16000
    own = np.concatenate([hush, own_turn, their_turn, 0.1 * rng.standard_normal(both)])  # 0-2 s nobody
    syllables = np.tile(np.concatenate([np.ones(3200), np.zeros(1600)]), 10)  # 0.2 s on, 0.1 s off
    their_turn_speech = 0.1 * rng.standard_normal(48000) * syllables
    other = np.concatenate([hush, np.zeros(32000), their_turn_speech, 0.1 * rng.standard_normal(both)])
    echo = np.pad(other, (640, 0))[: other.size]  # 40 ms late
    leg = (own + 10 ** (-25 / 20) * echo + 3e-5 * rng.standard_normal(own.size)).astype(np.float32)
    alone = [(a / 16000, b / 16000) for a, b in leg_speech(leg, 16000)]
    assert alone == [(pytest.approx(1.85, abs=0.04), 8.0)]  # the echo at 4-7 s looks like speech
    kept = leg_speech(leg, 16000, [other.astype(np.float32)])
    seconds = [(a / 16000, b / 16000) for a, b in kept]
    assert len(kept) == 2 and seconds[0][1] == pytest.approx(4.15, abs=0.04)
    assert seconds[1] == (pytest.approx(6.85, abs=0.04), 8.0)  # double talk at 7-8 s is kept
