"""recipes/detection/prepare_corpora.py: the public corpora's protocols as manifests (miniature
corpora laid out as their publishers ship them), and lazy training on such a manifest."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voicefake.checkpoint import Checkpoint
from voicefake.data.manifests import read_manifest
from voicefake.detection.training import copy_sources

RECIPES = Path(__file__).parents[2] / "recipes" / "detection"
RECIPE = RECIPES / "prepare_corpora.py"


def tone(path: Path, freq: float = 220.0, seconds: float = 1.2, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def run(monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["prepare_corpora.py", *argv])
    runpy.run_path(str(RECIPE), run_name="__main__")


def asvspoof2019(root: Path) -> Path:
    """An LA folder: two lines per part (a real and a fake), plus one listed file missing in eval."""
    la = root / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    parts = {"train": ("trn", "T", "A01"), "dev": ("trl", "D", "A04"), "eval": ("trl", "E", "A11")}
    for part, (suffix, letter, attack) in parts.items():
        lines = [f"LA_00{letter}1 LA_{letter}_0000001 - - bonafide", f"LA_00{letter}2 LA_{letter}_0000002 - {attack} spoof"]
        for line in lines:
            tone(la / f"ASVspoof2019_LA_{part}" / "flac" / f"{line.split()[1]}.flac", 150.0 if "bonafide" in line else 300.0)
        if part == "eval":
            lines.append("LA_00E3 LA_E_0000003 - A19 spoof")  # listed, not on disk
        (protocols / f"ASVspoof2019.LA.cm.{part}.{suffix}.txt").write_text("\n".join(lines) + "\n")
    return la


def test_asvspoof2019_keeps_its_protocols_splits_and_names_each_attacks_family(tmp_path, monkeypatch, capsys) -> None:
    la = asvspoof2019(tmp_path / "corpus")
    out = tmp_path / "runs" / "asvspoof2019_la.csv"
    run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(out))
    rows = {Path(r.path).stem: r for r in read_manifest(out)}
    assert set(rows) == {"LA_T_0000001", "LA_T_0000002", "LA_D_0000001", "LA_D_0000002", "LA_E_0000001", "LA_E_0000002"}
    for row in rows.values():  # paths point at the corpus's own files, relative to the manifest
        assert (out.parent / row.path).resolve().is_file() and not Path(row.path).is_absolute()
        assert row.sample_rate == 16000 and row.channels == 1 and abs(row.duration_s - 1.2) < 1e-3
        assert row.tags["channel"] == "clean" and row.corpus == "asvspoof2019"
    assert {r.tags["split"] for r in rows.values()} == {"train", "dev", "eval"}
    assert rows["LA_T_0000001"].label == "real" and rows["LA_T_0000001"].system == "human"
    assert rows["LA_T_0000001"].speaker == "asvspoof2019-LA_00T1"
    fakes = {r.tags["attack"]: r for r in rows.values() if r.is_fake}
    assert {a: r.folder for a, r in fakes.items()} == {"A01": "neural-autoregressive", "A04": "waveform-concatenation",
                                                        "A11": "griffin-lim"}
    assert fakes["A11"].system == "asvspoof2019-A11" and fakes["A11"].tags["split"] == "eval"
    printed = capsys.readouterr().out
    assert "6 recordings" in printed and "skipped 1 listed but not on disk" in printed and "LA_E_0000003" in printed


def test_asvspoof2019_errors_name_the_file_and_the_problem(tmp_path, monkeypatch, capsys) -> None:
    la = asvspoof2019(tmp_path / "corpus")
    protocol = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    protocol.write_text("LA_00D1 LA_D_0000001 - A42 spoof\n")
    with pytest.raises(SystemExit) as exit_info:
        run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(tmp_path / "m.csv"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "ASVspoof2019.LA.cm.dev.trl.txt" in err and "unknown attack 'A42'" in err
    protocol.unlink()
    with pytest.raises(SystemExit):
        run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(tmp_path / "m.csv"))
    assert "protocol file not found" in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()  # nothing half-written


def test_asvspoof2021_la_and_df_are_eval_only_with_their_channels_and_families(tmp_path, monkeypatch) -> None:
    base = tmp_path / "ASVspoof2021"
    for name in ("LA_E_1", "LA_E_2", "LA_E_3"):
        tone(base / "ASVspoof2021_LA_eval" / "flac" / f"{name}.flac")
    for name in ("DF_E_1", "DF_E_2"):
        tone(base / "ASVspoof2021_DF_eval" / "flac" / f"{name}.flac")
    (base / "keys" / "LA" / "CM").mkdir(parents=True)
    (base / "keys" / "LA" / "CM" / "trial_metadata.txt").write_text(
        "LA_0009 LA_E_1 alaw ita_tx A07 spoof notrim eval\n"
        "LA_0009 LA_E_2 none - bonafide bonafide notrim progress\n"
        "LA_0010 LA_E_3 gsm loc_tx A16 spoof trim eval\n")
    (base / "keys" / "DF" / "CM").mkdir(parents=True)
    (base / "keys" / "DF" / "CM" / "trial_metadata.txt").write_text(
        "LA_0043 DF_E_1 mp3m4a asvspoof A09 spoof notrim eval traditional_vocoder - - - -\n"
        "VCC2018 DF_E_2 nocodec vcc2018 bonafide bonafide notrim eval - - - - -\n")
    la_out, df_out = tmp_path / "m" / "la.csv", tmp_path / "m" / "df.csv"
    run(monkeypatch, "asvspoof2021-la", "--root", str(base / "ASVspoof2021_LA_eval"), "--out", str(la_out),
        "--keys", str(base / "keys" / "LA" / "CM" / "trial_metadata.txt"))
    run(monkeypatch, "asvspoof2021-df", "--root", str(base / "ASVspoof2021_DF_eval"), "--out", str(df_out))  # keys beside
    la = {Path(r.path).stem: r for r in read_manifest(la_out)}
    assert {r.tags["split"] for r in la.values()} == {"eval"}
    assert la["LA_E_1"].tags["channel"] == "alaw-ita_tx" and la["LA_E_1"].folder == "world"
    assert la["LA_E_2"].tags["channel"] == "clean" and la["LA_E_2"].label == "real"
    assert la["LA_E_2"].tags["subset"] == "progress" and la["LA_E_3"].folder == "waveform-concatenation"
    df = {Path(r.path).stem: r for r in read_manifest(df_out)}
    assert df["DF_E_1"].folder == "traditional-vocoder" and df["DF_E_1"].tags["channel"] == "mp3m4a"
    assert df["DF_E_1"].tags["source"] == "asvspoof" and df["DF_E_2"].label == "real"
    assert df["DF_E_2"].tags["channel"] == "clean"  # DF writes "nocodec" where LA writes "none"


def test_in_the_wild_is_split_by_speaker_or_all_eval(tmp_path, monkeypatch) -> None:
    root = tmp_path / "release_in_the_wild"
    lines = ["file,speaker,label"]
    for i in range(40):
        speaker = f"Famous Person {i % 10}"
        tone(root / f"{i}.wav", 200.0 + i, seconds=0.5)
        lines.append(f'{i}.wav,"{speaker}",{"spoof" if i % 2 else "bona-fide"}')
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "itw.csv"
    run(monkeypatch, "in-the-wild", "--root", str(root), "--out", str(out), "--dev-fraction", "0.4")
    rows = read_manifest(out)
    assert len(rows) == 40 and sum(r.is_fake for r in rows) == 20
    dev = {r.speaker for r in rows if r.tags["split"] == "dev"}
    train = {r.speaker for r in rows if r.tags["split"] == "train"}
    assert dev and train and not dev & train  # speaker-disjoint, both sides used
    assert {r.folder for r in rows if r.is_fake} == {"in-the-wild"} and "itw-famous-person-3" in dev | train
    run(monkeypatch, "in-the-wild", "--root", str(root), "--out", str(out), "--eval-only")
    assert {r.tags["split"] for r in read_manifest(out)} == {"eval"}
    (root / "meta.csv").write_text("file,speaker,label\n0.wav,x,maybe\n")
    with pytest.raises(SystemExit):
        run(monkeypatch, "in-the-wild", "--root", str(root), "--out", str(out))


def wavefake_corpus(base: Path) -> tuple[Path, Path]:
    """A miniature WaveFake (``generated_audio``) and LJSpeech: 30 utterances, MelGAN copies of
    all, HiFi-GAN and WaveGlow copies of five, one TTS prompt."""
    gen, lj = base / "generated_audio", base / "LJSpeech-1.1"
    ids = [f"LJ001-{i:04d}" for i in range(30)]
    for i, utt in enumerate(ids):
        tone(lj / "wavs" / f"{utt}.wav", 150.0, seconds=0.4)
        tone(gen / "ljspeech_melgan" / f"{utt}_gen.wav", 150.0, seconds=0.4)
        if i < 5:
            tone(gen / "ljspeech_hifiGAN" / f"{utt}_generated.wav", 150.0, seconds=0.4)
            tone(gen / "ljspeech_waveglow" / f"{utt}.wav", 150.0, seconds=0.4)
    tone(gen / "common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech" / "generated" / "gen_0.wav")
    return gen, lj


def test_wavefake_keeps_each_fake_with_its_source_and_names_the_architecture(tmp_path, monkeypatch) -> None:
    gen, lj = wavefake_corpus(tmp_path)
    out = tmp_path / "wf.csv"
    run(monkeypatch, "wavefake", "--root", str(gen), "--ljspeech", str(lj), "--out", str(out), "--dev-fraction", "0.3")
    rows = read_manifest(out)
    assert len(rows) == 30 + 30 + 5 + 5 + 1
    families = {r.system: r.folder for r in rows if r.is_fake}
    assert families == {"wavefake-ljspeech_melgan": "melgan", "wavefake-ljspeech_hifiGAN": "hifigan",
                        "wavefake-ljspeech_waveglow": "waveglow",
                        "wavefake-common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech": "parallel-wavegan"}
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row.tags["utterance"], set()).add(row.tags["split"])
    assert all(len(s) == 1 for s in split_of.values())  # a fake and its source: one split
    assert {next(iter(s)) for s in split_of.values()} == {"train", "dev"}
    # train.p_pair finds each vocoder copy's LJSpeech source by the utterance, not the file name
    sources = copy_sources(rows)
    for row, source in zip(rows, sources, strict=True):
        if row.is_fake and row.tags["utterance"].startswith("LJ"):
            assert source >= 0 and not rows[source].is_fake and rows[source].tags["utterance"] == row.tags["utterance"]
        else:
            assert source == -1  # reals, and the TTS prompts, which have no source recording


def test_full_configs_training_options_run_together_on_wavefake(tmp_path, monkeypatch) -> None:
    """full.yaml's data path in miniature: WaveFake read lazily, pairs of vocoder copies and their
    LJSpeech sources, crops through channels drawn on the fly."""
    gen, lj = wavefake_corpus(tmp_path)
    out = tmp_path / "wf.csv"
    run(monkeypatch, "wavefake", "--root", str(gen), "--ljspeech", str(lj), "--out", str(out), "--dev-fraction", "0.3")
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPES / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run"), f"data.manifest={out}", "data.lazy=true",
                                      "data.dev_items=4", "train.p_pair=0.5", "train.p_channel=0.5",
                                      "loop.batch_size=2"])
    runpy.run_path(str(RECIPES / "train.py"), run_name="__main__")
    assert "pair_order/train" in (tmp_path / "run" / "logs" / "scalars.jsonl").read_text()
    copies = sum(r.is_fake and r.tags["split"] == "train" and r.tags["utterance"].startswith("LJ")
                 for r in read_manifest(out))
    step = sorted((tmp_path / "run").glob("step_*"))[-1]
    assert copies > 0 and Checkpoint.load(step / "detector").metadata["data"]["train_copies_with_source"] == copies


def test_merge_re_roots_paths_and_lazy_training_reads_the_corpus_in_place(tmp_path, monkeypatch) -> None:
    la = asvspoof2019(tmp_path / "corpus")
    first, second = tmp_path / "a" / "asv.csv", tmp_path / "b" / "asv_again.csv"
    run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(first))
    run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(second))
    merged = tmp_path / "full" / "manifest.csv"
    run(monkeypatch, "merge", str(first), str(second), "--out", str(merged))
    rows = read_manifest(merged)
    assert len(rows) == 6 and all((merged.parent / r.path).is_file() for r in rows)  # the duplicates kept once
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPES / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run"), f"data.manifest={merged}", "data.lazy=true"])
    runpy.run_path(str(RECIPES / "train.py"), run_name="__main__")
    ckpt = Checkpoint.load(tmp_path / "run" / "step_00000004" / "detector")
    assert ckpt.metadata["data"]["train_items"] == 2 and ckpt.metadata["data"]["train_hours"] == round(2 * 1.2 / 3600, 3)


def test_lazy_waves_read_what_the_in_memory_path_holds(tmp_path) -> None:
    from voicefake.audio.io import load_audio
    from voicefake.detection.training import DetectionCropDataset, LazyWaves, TrainConfig

    paths = [tmp_path / "a.wav", tmp_path / "b.flac"]
    tone(paths[0], 200.0, seconds=1.0, rate=22050)  # resampled on read
    tone(paths[1], 400.0, seconds=3.0)
    lazy = LazyWaves([str(p) for p in paths], 16000, max_samples=32000)
    assert len(lazy) == 2 and lazy[1].shape == (32000,) and len(lazy[0:2]) == 2
    assert torch.equal(lazy[0], torch.from_numpy(load_audio(paths[0], 16000, allow_silence=True)))
    data = DetectionCropDataset(lazy, [0, 1], 8000, TrainConfig(), 16000, length=4)
    assert data.waves is lazy and data[0][0].shape == (8000,)
    with pytest.raises(ValueError, match="max_samples"):
        LazyWaves([str(paths[0])], 16000, 0)


def test_training_on_a_manifest_with_missing_files_stops_with_one_clear_line(tmp_path, monkeypatch) -> None:
    la = asvspoof2019(tmp_path / "corpus")
    out = tmp_path / "m" / "asv.csv"
    run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(out))
    (la / "ASVspoof2019_LA_train" / "flac" / "LA_T_0000002.flac").unlink()  # the corpus moved or shrank since
    for lazy in ("true", "false"):
        monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPES / "configs" / "tiny.yaml"),
                                          "--run", str(tmp_path / "run"), f"data.manifest={out}", f"data.lazy={lazy}"])
        with pytest.raises(SystemExit, match=r"1 of its train files are missing \(first: .*LA_T_0000002.flac\)"):
            runpy.run_path(str(RECIPES / "train.py"), run_name="__main__")
    assert not (tmp_path / "run").exists()


def test_loading_benchmark_times_both_paths_on_one_split(tmp_path, monkeypatch, capsys) -> None:
    """benchmarks/detection_loading.py: the same crops drawn in memory and lazily; the JSON holds both rates,
    and with --channel-crops what a chain of each kind adds to a crop."""
    import json

    la = asvspoof2019(tmp_path / "corpus")
    out = tmp_path / "m" / "asv.csv"
    run(monkeypatch, "asvspoof2019-la", "--root", str(la), "--out", str(out))
    result = tmp_path / "loading.json"
    monkeypatch.setattr(sys, "argv", ["detection_loading.py", "--manifest", str(out), "--crops", "6",
                                      "--segment-seconds", "0.5", "--channel-crops", "3", "--json", str(result)])
    runpy.run_path(str(Path(__file__).parents[2] / "benchmarks" / "detection_loading.py"), run_name="__main__")
    figures = json.loads(result.read_text())
    assert figures["clips"] == 2 and figures["crops"] == 6 and figures["in_memory_mbytes"] > 0
    assert figures["lazy_crops_per_second"] > 0 and figures["in_memory_crops_per_second"] > 0
    # a codec round trip per crop costs more than a crop cut from memory
    assert figures["channel_phone_added_ms_per_crop"] > 0 and figures["channel_recording_ms_per_crop"] > 0
    monkeypatch.setattr(sys, "argv", ["detection_loading.py", "--manifest", str(out), "--split", "nope"])
    with pytest.raises(SystemExit, match="no rows with split=nope"):
        runpy.run_path(str(Path(__file__).parents[2] / "benchmarks" / "detection_loading.py"), run_name="__main__")


def test_training_on_an_eval_only_manifest_names_the_missing_split(tmp_path, monkeypatch) -> None:
    """ASVspoof 2021's manifests are eval only: training on one alone stops with one line."""
    base = tmp_path / "ASVspoof2021"
    tone(base / "ASVspoof2021_LA_eval" / "flac" / "LA_E_1.flac")
    (base / "keys" / "LA" / "CM").mkdir(parents=True)
    (base / "keys" / "LA" / "CM" / "trial_metadata.txt").write_text("LA_0009 LA_E_1 none - bonafide bonafide notrim eval\n")
    out = tmp_path / "m" / "la.csv"
    run(monkeypatch, "asvspoof2021-la", "--root", str(base / "ASVspoof2021_LA_eval"), "--out", str(out))
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPES / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run"), f"data.manifest={out}", "data.lazy=true"])
    with pytest.raises(SystemExit, match="no train rows"):
        runpy.run_path(str(RECIPES / "train.py"), run_name="__main__")
