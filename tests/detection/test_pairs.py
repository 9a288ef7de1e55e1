"""Paired crops: a copy-synthesis fake and the same span of its source recording, through the
same augmentation, side by side in a batch, with a margin loss on their logit difference."""

from __future__ import annotations

import copy
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake.data.manifests import ManifestRow
from voicefake.detection.losses import pair_margin_loss
from voicefake.detection.model import DetectorConfig
from voicefake.detection.training import (
    DetectionCropDataset,
    TrainConfig,
    build_modules,
    build_optimizers,
    copy_sources,
    pair_collate,
    train_step,
)

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "detection"


def row(path: str, speaker: str, label: str, channel: str = "clean") -> ManifestRow:
    return ManifestRow(path=path, speaker=speaker, label=label, notes=f"split=train;channel={channel}")


def test_copy_sources_pairs_a_clean_fake_with_the_clean_recording_it_was_made_from() -> None:
    rows = [
        row("audio/clean/shared/real/vctk/p225_003.flac", "vctk-p225", "real"),            # 0: a source
        row("audio/phone/shared/real/vctk/p225_003.flac", "vctk-p225", "real", "phone"),   # 1: its channel copy
        row("audio/clean/gen/world/p225_003_7.flac", "vctk-p225", "fake"),                 # 2 -> 0
        row("audio/phone/gen/world/p225_003_7.flac", "vctk-p225", "fake", "phone"),        # its channel was drawn apart
        row("audio/clean/gen2/gl-mel/p225_003_12.flac", "vctk-p226", "fake"),              # another speaker's line
        row("audio/clean/tts/espeak/p225_003.flac", "vctk-p225", "fake"),                  # no copy number
        row("audio/clean/gen/world/p225_004_1.flac", "vctk-p225", "fake"),                 # its source is not here
        row("audio/clean/gen/vocoder/p225_003_2.flac", "vctk-p225", "fake"),               # 7 -> 0
    ]
    assert copy_sources(rows) == [-1, -1, 0, -1, -1, -1, -1, 0]


def test_a_pair_is_the_same_span_of_the_fake_and_its_source_through_the_same_augmentation() -> None:
    """The source is a ramp and the fake is half of it. With dither and gain drawn once for both,
    real - fake is exactly the gain times half the source's span: a straight line (the same noise
    cancels), whose slope is the gain and whose intercept is where the span starts."""
    torch.manual_seed(0)
    step = 0.5 / 16000
    source = (np.arange(16000) * step).astype(np.float32)
    cfg = TrainConfig(p_pair=1.0, p_lowpass=0.0, p_dither=1.0, gain_db=3.0)
    data = DetectionCropDataset([source, 0.5 * source, np.full(16000, 0.05, np.float32)], [0, 1, 0], 4000, cfg,
                                16000, length=4, sources=[-1, 0, -1])
    assert data.copies == [(1, 0)]
    starts = set()
    for _ in range(6):
        wav, labels, target, paired = data[0]
        assert wav.shape == (2, 4000) and labels.tolist() == [0.0, 1.0] and paired.all() and (target == -1).all()
        half = (wav[0] - wav[1]).double().numpy()
        slope, intercept = np.polyfit(np.arange(4000), half, 1)
        assert np.abs(half - (slope * np.arange(4000) + intercept)).max() < 1e-6
        gain = slope / (0.5 * step)
        assert 10 ** (-3 / 20) - 1e-4 <= gain <= 10 ** (3 / 20) + 1e-4
        starts.add(round(intercept / slope))
        assert np.abs(wav[1].numpy() / gain - 0.5 * source[round(intercept / slope):][:4000]).max() > 1e-6  # dithered
    assert len(starts) > 1 and all(0 <= s <= 12000 for s in starts)


def test_unpaired_items_draw_apart_and_the_batch_keeps_real_then_fake() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(p_pair=0.5, p_lowpass=0.0, p_dither=0.0, gain_db=0.0)
    waves = [np.full(8000, 0.1, np.float32), np.full(8000, 0.2, np.float32), np.full(8000, -0.3, np.float32)]
    data = DetectionCropDataset(waves, [0, 0, 1], 4000, cfg, 16000, length=8, sources=[-1, -1, 0])
    wav, labels, target, paired = pair_collate([data[i] for i in range(40)])
    assert wav.shape == (80, 4000) and labels.tolist() == [0.0, 1.0] * 40
    assert paired[0::2].equal(paired[1::2]) and 0 < int(paired[0::2].sum()) < 40
    reals = wav[0::2][:, 0]
    assert torch.allclose(reals[paired[0::2]], torch.full_like(reals[paired[0::2]], 0.1))  # the fake's own source
    drawn = {round(v, 4) for v in reals[~paired[0::2]].tolist()}
    assert drawn == {0.1, 0.2}  # unpaired: any real recording
    single = pair_collate([(torch.zeros(5), torch.tensor(1.0))] * 3)  # dev items: the default collate
    assert single[0].shape == (3, 5) and single[1].tolist() == [1.0, 1.0, 1.0]


def test_pairing_needs_fakes_with_their_sources() -> None:
    waves = [np.zeros(800, np.float32), np.ones(800, np.float32)]
    with pytest.raises(ValueError, match="train.p_pair needs copy-synthesis fakes"):
        DetectionCropDataset(waves, [0, 1], 400, TrainConfig(p_pair=0.5), 16000)
    with pytest.raises(ValueError, match="probability"):
        TrainConfig(p_pair=1.5)


def test_the_margin_loss_asks_each_fake_to_outscore_its_own_source() -> None:
    real, fake = torch.tensor([0.0, 0.0]), torch.tensor([5.0, -5.0])
    assert float(pair_margin_loss(real, fake, 2.0)) == pytest.approx(
        (float(torch.nn.functional.softplus(torch.tensor(-3.0))) + float(torch.nn.functional.softplus(torch.tensor(7.0)))) / 2)
    assert pair_margin_loss(real + 10, fake + 10, 2.0) == pair_margin_loss(real, fake, 2.0)  # only the difference


def test_paired_batches_train_the_pairs_order() -> None:
    """The margin loss is added only for flagged pairs, and training on it puts each fake above
    its own source: the fake here is its source without the breath noise."""
    torch.manual_seed(0)
    cfg = TrainConfig(segment_seconds=0.5, min_seconds=0.5, p_pair=1.0, lr=5e-3, pair_weight=1.0)
    rng = np.random.default_rng(0)
    tones = [np.sin(np.arange(8000) * f).astype(np.float32) * 0.2 for f in (0.05, 0.08, 0.11)]
    waves = [w + 0.02 * rng.standard_normal(8000).astype(np.float32) for w in tones] + tones
    data = DetectionCropDataset(waves, [0, 0, 0, 1, 1, 1], 8000, cfg, 16000, length=8, sources=[-1, -1, -1, 0, 1, 2])
    batch = pair_collate([data[i] for i in range(8)])
    modules = build_modules(DetectorConfig.tiny())
    optimizers = build_optimizers(modules, cfg)
    start = copy.deepcopy(modules["detector"].state_dict())
    torch.manual_seed(5)
    flagged = train_step(modules, optimizers, batch, cfg, 16000)
    assert "pair_order/train" in flagged
    modules["detector"].load_state_dict(start)
    torch.manual_seed(5)
    plain = train_step(modules, build_optimizers(modules, cfg), batch[:3] + (torch.zeros_like(batch[3]),), cfg, 16000)
    with torch.no_grad():  # the flagged step's loss is the plain one plus the pairs' margin loss
        modules["detector"].load_state_dict(start)
        logits = modules["detector"](batch[0]).logits
    assert flagged["loss/detector"] - plain["loss/detector"] == pytest.approx(
        float(pair_margin_loss(logits[0::2], logits[1::2], cfg.pair_margin)), rel=5e-3)  # a separate forward pass, not the step's own
    torch.manual_seed(1)
    modules = build_modules(DetectorConfig.tiny())
    optimizers = build_optimizers(modules, cfg)
    for _ in range(40):
        scalars = train_step(modules, optimizers, batch, cfg, 16000)
    assert scalars["pair_order/train"] == 1.0
    unflagged = train_step(modules, optimizers, batch[:3] + (torch.zeros_like(batch[3]),), cfg, 16000)
    assert "pair_order/train" not in unflagged


def test_tagged_channel_pairs_pair_by_their_tag_and_never_by_name() -> None:
    """Stage ``pairs`` rows: a fake and its source through one channel, tagged ``pair=<id>``."""
    def tagged(path: str, label: str, pair: str, speaker: str = "vctk-p225") -> ManifestRow:
        return ManifestRow(path=path, speaker=speaker, label=label, notes=f"split=train;channel=phone;pair={pair}")

    rows = [
        row("audio/clean/shared/real/vctk/p225_003.flac", "vctk-p225", "real"),                 # 0
        tagged("audio/pairs/phone/gen/world/p225_003_7.source.flac", "real", "gen/world/p225_003_7"),  # 1
        tagged("audio/pairs/phone/gen/world/p225_003_7.fake.flac", "fake", "gen/world/p225_003_7"),    # 2 -> 1
        tagged("audio/pairs/phone/gen/world/p225_003_9.fake.flac", "fake", "gen/world/p225_003_9"),    # its source is gone
        row("audio/clean/gen/world/p225_003_7.flac", "vctk-p225", "fake"),                      # 4 -> 0
        ManifestRow(path="audio/clean/gen/world/p225_003_8.flac", speaker="vctk-p225", label="fake",
                    notes="split=train;channel=clean;pair=x"),                                  # a tag wins over the name
    ]
    assert copy_sources(rows) == [-1, -1, 1, -1, 0, -1]


def test_pair_only_waveforms_are_drawn_as_pairs_and_never_alone() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(p_pair=0.5, p_lowpass=0.0, p_dither=0.0, gain_db=0.0)
    waves = [np.full(8000, v, np.float32) for v in (0.1, -0.3, 0.2, -0.4)]
    data = DetectionCropDataset(waves, [0, 1, 0, 1], 4000, cfg, 16000, length=8, sources=[-1, -1, -1, 2],
                                pair_only=[False, False, True, True])
    assert data.by_label == {0: [0], 1: [1]} and data.copies == [(3, 2)]
    wav, _, _, paired = pair_collate([data[i] for i in range(60)])
    firsts = wav[:, 0]
    assert {round(v, 4) for v in firsts[0::2][paired[0::2]].tolist()} == {0.2}
    assert {round(v, 4) for v in firsts[1::2][paired[1::2]].tolist()} == {-0.4}
    assert {round(v, 4) for v in firsts[~paired].tolist()} == {0.1, -0.3}
    with pytest.raises(ValueError, match="pair_only flags"):
        DetectionCropDataset(waves, [0, 1, 0, 1], 4000, cfg, 16000, sources=[-1, -1, -1, 2], pair_only=[True])


def test_the_recipe_adds_the_pairs_manifest_to_training_only(tmp_path) -> None:
    """train.py's ``data.pairs``: its rows join the training split as pair-only waveforms, a pair
    whose fake's family or whose corpus is left out goes whole, and dev never reads it."""
    from voicefake.audio.io import write_audio
    from voicefake.data.manifests import write_manifest

    train = runpy.run_path(str(RECIPE / "train.py"))
    tone = (0.1 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    main = [ManifestRow(path="p225_003.flac", speaker="vctk-p225", label="real", notes="split=train;channel=clean"),
            ManifestRow(path="p225_003_1.flac", speaker="vctk-p225", label="fake", folder="world",
                        notes="split=train;channel=clean"),
            ManifestRow(path="d.flac", speaker="vctk-p228", label="real", notes="split=dev;channel=clean")]
    pool = []
    for pair, (speaker, family) in enumerate([("vctk-p225", "world"), ("librispeech-1", "griffin-lim")]):
        for label, folder in (("real", "human"), ("fake", family)):
            pool.append(ManifestRow(path=f"pairs/{pair}{label}.flac", speaker=speaker, label=label, folder=folder,
                                    notes=f"split=train;channel=phone;pair=p{pair}"))
    (tmp_path / "pairs").mkdir()
    for r in main + pool:
        write_audio(tmp_path / r.path, tone, 16000)
    write_manifest(main, tmp_path / "manifest.csv")
    write_manifest(pool, tmp_path / "manifest_pairs.csv")  # paths relative to its folder
    data = train["DataConfig"]
    kw = {"manifest": str(tmp_path / "manifest.csv"), "pairs": str(tmp_path / "manifest_pairs.csv")}
    waves, labels, sources, only, seconds = train["load_split"](data(**kw), "train", 16000)
    assert labels == [0, 1, 0, 1, 0, 1] and only == [False, False, True, True, True, True]
    assert sources == [-1, 0, -1, 2, -1, 4] and len(waves) == 6 and seconds == [w.size / 16000 for w in waves]
    # read from disk when drawn (data.lazy): the same clips, labels, sources and flags
    lazy, *rest = train["load_split"](data(**kw, lazy=True), "train", 16000)
    assert rest[:3] == [labels, sources, only] and len(lazy) == 6
    assert all(np.array_equal(lazy[i].numpy(), waves[i]) for i in range(6))
    _, labels, sources, only, _ = train["load_split"](data(**kw, exclude_family="world"), "train", 16000)
    assert labels == [0, 0, 1] and sources == [-1, -1, 1] and only == [False, True, True]  # pair 0 went whole
    _, labels, _, only, _ = train["load_split"](data(**kw, exclude_corpus="librispeech"), "train", 16000)
    assert labels == [0, 1, 0, 1] and only == [False, False, True, True]
    _, labels, _, only, _ = train["load_split"](data(**kw), "dev", 16000)
    assert labels == [0] and only == [False]


def test_stage_pairs_sends_a_fake_and_its_source_through_one_channel(tmp_path) -> None:
    """prepare_shared.py's stage ``pairs``: a fake that is a sample-exact copy of its source (but
    longer) comes out of the shared channel sample-exact too, noise included, cut to the shorter
    length; the other pair draws its own channel; dev fakes and fakes without a source are left out."""
    from voicefake.audio.io import load_audio, write_audio

    shared = runpy.run_path(str(RECIPE / "prepare_shared.py"))
    rng = np.random.default_rng(0)
    speech = (0.1 * np.sin(np.arange(24000) / 9.0) * (1 + 0.5 * rng.standard_normal(24000))).astype(np.float32)
    files = {"audio/clean/shared/real/a.flac": speech[:20000], "audio/clean/gen/world/a_1.flac": speech,
             "audio/clean/gen/world/a_2.flac": speech, "audio/clean/gen/world/a_3.flac": speech,
             "audio/clean/gen/world/b_1.flac": speech}
    for rel, wav in files.items():
        write_audio(tmp_path / rel, wav, 16000)
    rows = [row("audio/clean/shared/real/a.flac", "vctk-p225", "real"),
            row("audio/clean/gen/world/a_1.flac", "vctk-p225", "fake"),
            row("audio/clean/gen/world/a_2.flac", "vctk-p225", "fake"),
            ManifestRow(path="audio/clean/gen/world/a_3.flac", speaker="vctk-p225", label="fake",
                        notes="split=dev;channel=clean"),
            row("audio/clean/gen/world/b_1.flac", "vctk-p225", "fake")]
    out = shared["add_channel_pairs"](tmp_path, rows)
    assert len(out) == 4 and copy_sources(out) == [-1, 0, -1, 2]
    assert [r.tags["pair"] for r in out] == ["gen/world/a_1"] * 2 + ["gen/world/a_2"] * 2
    assert {r.tags["channel"] for r in out} <= {"phone", "wideband"} and all(r.tags["split"] == "train" for r in out)
    waves = [load_audio(tmp_path / r.path, 16000, allow_silence=True) for r in out]
    assert all(w.size == 20000 for w in waves)
    assert np.abs(waves[0] - waves[1]).max() < 1e-3        # the same channel, noise and all
    assert np.abs(waves[2] - waves[3]).max() < 1e-3
    assert np.abs(waves[0] - waves[2]).max() > 1e-2        # another pair, another channel draw


def test_the_recipe_refuses_a_pairs_manifest_without_pairing(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(RECIPE / "configs" / "tiny.yaml"),
                                      "--run", str(tmp_path / "run"), "data.pairs=manifest_pairs.csv", "train.p_pair=0"])
    with pytest.raises(SystemExit, match="drawn only as pairs; set train.p_pair"):
        runpy.run_path(str(RECIPE / "train.py"), run_name="__main__")
    assert not (tmp_path / "run").exists()
