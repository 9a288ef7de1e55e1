"""The detection benchmark's threshold sweep counts what it says (benchmarks/detection.py --sweep)."""

from __future__ import annotations

import sys

import pytest

from voicefake import api

detection_benchmark = pytest.importorskip("benchmarks.detection")


@pytest.mark.parametrize("band", ["narrowband", "wideband"])
def test_sweep_moves_only_its_own_bands_threshold(band: str) -> None:
    """--sweep (calls) and --sweep-wideband (the rest): the swept band's dev and unseen counts
    follow the threshold; the other band keeps the model's own threshold at every step."""
    other = "wideband" if band == "narrowband" else "narrowband"
    own = api.load("detection").checkpoint.metadata["calibration"]
    other_threshold = own["threshold"] if other == "wideband" else own["narrowband_threshold"]
    nb = band == "narrowband"  # the swept band's recordings
    dev = [(0.5, False, nb), (0.95, False, nb), (0.99, True, nb), (0.9, True, nb),
           (0.999, False, not nb)]  # a real of the other band far above every threshold: not counted on dev
    unseen = [("voices", "as recorded", 0.96, nb), ("voices", "as recorded", 0.5, nb),
              # just above the other band's own threshold, under the strict swept one: flagged only if
              # the other band really keeps its own threshold
              ("voices", "phone", other_threshold + 0.005, not nb), ("voices", "phone", 0.1, not nb)]
    loose, strict = detection_benchmark.threshold_sweep(dev, unseen, [0.92, 0.97], band=band)
    assert loose[f"dev_{band}_false_alarm_rate"] == 0.5 and strict[f"dev_{band}_false_alarm_rate"] == 0.0
    assert loose[f"dev_{band}_miss_rate"] == 0.5 and strict[f"dev_{band}_miss_rate"] == 0.5
    assert loose["unseen"]["voices, as recorded"] == 0.5 and strict["unseen"]["voices, as recorded"] == 0.0
    assert loose["unseen"]["voices, phone"] == strict["unseen"]["voices, phone"] == 0.5
    assert loose[f"{other}_threshold"] == pytest.approx(other_threshold, abs=1e-4)
    key = "threshold_sweep" if nb else "threshold_sweep_wideband"
    table = detection_benchmark.to_markdown({key: [loose, strict]})
    assert f"| {band} threshold | dev {band} false alarms |" in table
    assert "| 0.970 | 0.0 % | 50.0 % | 0.0 % | 50.0 % |" in table


def test_sweep_refuses_an_unknown_band() -> None:
    with pytest.raises(ValueError, match="band"):
        detection_benchmark.threshold_sweep([], [], [0.9], band="phone")


def test_unseen_voices_joined_into_longer_recordings(tmp_path) -> None:
    """--by-length N joins each new voice's recordings N at a time (0.3 s apart), drops a short
    leftover group and ignores voices that are not new; the table shows the counts."""
    import numpy as np

    from voicefake.audio.io import write_audio

    header = "path,speaker,label,system,transcript,media,sample_rate,channels,duration_s,folder,license,notes\n"
    lines = []
    rng = np.random.default_rng(0)
    for index, (voice, new) in enumerate([("a", 1)] * 5 + [("b", 0)] * 2):
        write_audio(tmp_path / f"{index}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        lines.append(f"{index}.wav,{voice},real,human,,audio,16000,1,1.0,x,x,new_voice={new}\n")
    (tmp_path / "manifest.csv").write_text(header + "".join(lines))
    out = detection_benchmark.unseen_by_length(tmp_path, [1, 2])
    assert out["1"]["recordings"] == 5 and out["1"]["mean_seconds"] == 1.0
    assert out["2"]["recordings"] == 2 and out["2"]["mean_seconds"] == 2.3
    assert {"false_alarm_rate_as_recorded", "false_alarm_rate_phone"} <= set(out["2"])
    table = detection_benchmark.to_markdown({"false_alarms_unseen_by_length": {"voices": out}})
    assert "| 2 | 2 | 2.3 s |" in table


def test_unseen_check_leaves_out_voices_the_candidate_trained_on(tmp_path) -> None:
    """--trained-voices: a voice of an --unseen folder that the checkpoint trained on (stage fillets'
    Czech pair) is not counted, in the per-voice table, the pooled rate or the joined recordings."""
    import numpy as np

    from voicefake.audio.io import write_audio

    header = "path,speaker,label,system,transcript,media,sample_rate,channels,duration_s,folder,license,notes\n"
    lines = []
    rng = np.random.default_rng(0)
    for index, (voice, seconds) in enumerate([("cs", 1.0)] * 3 + [("nl", 1.0)] * 2 + [("nl", 0.5)]):
        write_audio(tmp_path / f"{index}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        lines.append(f"{index}.wav,{voice},real,human,,audio,16000,1,{seconds},x,x,new_voice=1\n")
    (tmp_path / "manifest.csv").write_text(header + "".join(lines))
    assert [i for i, _ in detection_benchmark.unseen_rows(tmp_path)] == [0, 1, 2, 3, 4]
    assert [i for i, _ in detection_benchmark.unseen_rows(tmp_path, frozenset({"cs"}))] == [3, 4]
    points: list = []
    out = detection_benchmark.unseen_voices(tmp_path, points=points, trained=frozenset({"cs"}))
    assert "cs" not in out and out["nl"]["phone"]["n"] == 2
    assert out[f"all unseen voices ({tmp_path.name})"]["as recorded"]["n"] == 2 and len(points) == 4
    joined = detection_benchmark.unseen_by_length(tmp_path, [1], trained=frozenset({"cs"}))
    assert joined["1"]["recordings"] == 2


def test_voices_of_the_data_manifest_are_never_unseen() -> None:
    """The benchmark leaves out of the unseen check every voice with a real recording in its data
    manifest (training or calibration: stage ktuberling's dev voices), not the fakes' speakers."""
    from voicefake.data.manifests import ManifestRow

    rows = [ManifestRow(path="a.flac", speaker="ktuberling-el", label="real", notes="split=dev;channel=clean"),
            ManifestRow(path="b.flac", speaker="ktuberling-ca", label="real", notes="split=train;channel=phone"),
            ManifestRow(path="c.flac", speaker="flite_kal16", label="fake", notes="split=train;channel=clean"),
            ManifestRow(path="d.flac", speaker="", label="real", notes="split=train;channel=clean")]
    assert detection_benchmark.voices_in(rows) == frozenset({"ktuberling-el", "ktuberling-ca"})


def test_the_benchmark_leaves_the_manifests_voices_out_of_the_unseen_check(tmp_path, monkeypatch) -> None:
    """End to end: a voice of an --unseen folder that the data manifest calibrates on (cs) gets no
    unseen row; the other voice (nl) does."""
    import json

    import numpy as np

    from voicefake.audio.io import write_audio

    header = "path,speaker,label,system,transcript,media,sample_rate,channels,duration_s,folder,license,notes\n"
    unseen, data = tmp_path / "voices", tmp_path / "data"
    unseen.mkdir()
    data.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        write_audio(unseen / f"{index}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    (unseen / "manifest.csv").write_text(header + "".join(
        f"{i}.wav,{v},real,human,,audio,16000,1,1.0,x,x,new_voice=1\n" for i, v in enumerate(["cs", "nl"])))
    (data / "manifest.csv").write_text(header + "a.flac,cs,real,human,,audio,16000,1,1.0,human,x,split=dev;channel=clean\n")
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["detection.py", "--data", str(data), "--unseen", str(unseen),
                                      "--skip", "logo", "bundled", "reliability", "speed", "--out", str(out)])
    detection_benchmark.main()
    voices = json.loads(out.read_text())["false_alarms_unseen_voices"]
    assert "nl" in voices and "cs" not in voices


def test_flagged_by_system_groups_settings_and_decides_like_detect(tmp_path) -> None:
    """benchmarks/detection_by_system.py: one split, systems grouped by their first parts, each
    recording decided as ``api.detect`` decides it (same p_fake, same label)."""
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest

    by_system = pytest.importorskip("benchmarks.detection_by_system")
    rng = np.random.default_rng(0)
    rows, waves = [], {}
    for index, (system, split, channel) in enumerate([("voc-adapted-convert-s200k0.7", "dev", "clean"),
                                                       ("voc-adapted-convert-s100k1.0", "dev", "clean"),
                                                       ("voc-adapted-convert-s100k1.0", "dev", "phone"),
                                                       ("human", "dev", "clean"), ("human", "train", "clean")]):
        path = f"audio/{index}.flac"
        waves[path] = (0.1 * rng.standard_normal(24000)).astype(np.float32)
        write_audio(tmp_path / path, waves[path], 16000)
        rows.append(ManifestRow(path=path, speaker="s", label="real" if system == "human" else "fake",
                                system=system, folder="human" if system == "human" else "voc",
                                notes=f"split={split};channel={channel}"))
    write_manifest(rows, tmp_path / "manifest.csv")
    report = by_system.flagged(tmp_path / "manifest.csv", "detection", "dev", 3)
    assert set(report) == {"voc-adapted-convert", "human", "all synthetic"}
    assert report["voc-adapted-convert"]["clean"]["n"] == 2 and report["voc-adapted-convert"]["phone"]["n"] == 1
    assert report["human"] == {"clean": report["human"]["clean"]} and report["human"]["clean"]["n"] == 1
    expected = api.detect(waves["audio/3.flac"], evidence=False)
    assert report["human"]["clean"]["mean_p"] == pytest.approx(expected.p_fake, abs=1e-3)
    assert report["human"]["clean"]["flagged"] == float(expected.label == "fake")
    whole = by_system.flagged(tmp_path / "manifest.csv", "detection", "dev", 0)
    assert set(whole) == {"voc-adapted-convert-s200k0.7", "voc-adapted-convert-s100k1.0", "human", "all synthetic"}
    families = by_system.flagged(tmp_path / "manifest.csv", "detection", "dev", 3, by_family=True)
    assert set(families) == {"voc", "human", "all synthetic"} and families["voc"]["clean"]["n"] == 2
    # one real clean recording against two fakes: the EER is 0 or 0.5 or 1 depending on the scores
    ps = sorted(api.detect(waves[f"audio/{i}.flac"], evidence=False).p_fake for i in (0, 1))
    real_p = families["human"]["clean"]["mean_p"]
    expected_eer = 0.0 if real_p < ps[0] else 1.0 if real_p > ps[1] else 0.5
    assert families["voc"]["clean"]["eer"] == pytest.approx(expected_eer, abs=0.01)
    assert families["human"]["clean"]["eer"] is None and families["voc"]["phone"]["eer"] is None
    assert families["all synthetic"]["clean"]["n"] == 2


def test_pooled_folds_keep_the_records_asked_for() -> None:
    """pooled(): every record; dev_split: reals of both splits and dev fakes; dev_only: dev records only."""
    records = [{"channel": "clean", "label": y, "split": split, "p": p, "p_net": p}
               for y, split, p in [(0, "train", 0.9), (0, "dev", 0.1), (0, "dev", 0.2), (1, "train", 0.05),
                                   (1, "dev", 0.8), (1, "dev", 0.7)]]
    folds = [{"records": records}]
    assert detection_benchmark.pooled(folds, dev_only=True)["clean"]["eer"] == 0.0
    assert detection_benchmark.pooled(folds)["clean"]["eer"] > 0.3
    assert detection_benchmark.pooled(folds, dev_split=True)["clean"]["eer"] > 0.0  # the train real at 0.9 stays


def test_a_missing_manifest_is_one_clear_error_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["detection.py", "--data", str(tmp_path), "--manifest", str(tmp_path / "aux.csv"),
                                      "--skip", "bundled", "unseen", "reliability", "speed", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        detection_benchmark.main()
    assert exit_info.value.code == 2
    assert "aux.csv: no such file" in capsys.readouterr().err
    assert not out.exists()


def test_dev_operating_point_uses_each_bands_threshold() -> None:
    """dev_operating_point: a narrowband point is decided at the narrowband threshold and a
    wideband one at the wideband threshold; misses count fakes, false alarms count reals."""
    points = [(0.93, False, True),   # narrowband real under 0.95: not an alarm (at 0.9 it would be)
              (0.96, False, True),   # narrowband real over 0.95: an alarm
              (0.93, True, False),   # wideband fake over 0.9: found
              (0.85, True, False),   # wideband fake under 0.9: missed
              (0.1, False, False)]
    out = detection_benchmark.dev_operating_point(points, 0.95, 0.9)
    assert out["narrowband"] == {"reals": 2, "fakes": 0, "false_alarm_rate": 0.5, "miss_rate": None}
    assert out["wideband"] == {"reals": 1, "fakes": 2, "false_alarm_rate": 0.0, "miss_rate": 0.5}
    assert out["all"]["false_alarm_rate"] == pytest.approx(1 / 3, abs=1e-4) and out["all"]["miss_rate"] == 0.5
    assert out["all"]["eer"] is not None
    assert detection_benchmark.dev_operating_point(points, 0.9, 0.9)["narrowband"]["false_alarm_rate"] == 1.0


def test_speed_sizes_parse_and_time_each_size_beside_the_bundled_network() -> None:
    """--speed-sizes: each size is parsed strictly, built at that width on the bundled front end,
    and timed beside the bundled network (its own row first, with its real parameter count)."""
    import argparse

    import torch

    assert detection_benchmark.parse_size("8,16,32,48:48") == ((8, 16, 32, 48), 48)
    for bad in ("8,16,32:48", "8,16,32,48", "a,16,32,48:48", "0,16,32,48:48", "8,16,32,48:-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="four positive block widths"):
            detection_benchmark.parse_size(bad)
    module = api.load("detection").module
    rows = detection_benchmark.size_speed(module, [((8, 16, 32, 48), 48)], torch.zeros(16000), rounds=1)
    assert [r["size"] for r in rows] == ["bundled", "8,16,32,48:48"]
    assert rows[0]["parameters"] == sum(p.numel() for p in module.parameters())
    assert rows[0]["channels"] == list(module.config.channels)
    assert rows[1]["channels"] == [8, 16, 32, 48] and rows[1]["hidden"] == 48
    assert rows[1]["parameters"] > rows[0]["parameters"]
    assert all(r["x_real_time_1_thread_wall"] > 0 for r in rows)
