"""Speaker encoder: shapes, unit norm, checkpoint round trip, training steps, tiny recipe."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from voicefake.audio.features import MEL_16K_40
from voicefake.checkpoint import Checkpoint, CheckpointError
from voicefake.config import load_yaml
from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig
from voicefake.speaker.training import (
    MelCropDataset,
    TrainConfig,
    build_modules,
    build_optimizers,
    train_step,
)

ROOT = Path(__file__).resolve().parents[2]


def _recipe() -> types.ModuleType:
    """recipes/speaker/train.py as a module (recipes are scripts, not a package)."""
    if "speaker_train_recipe" not in sys.modules:
        spec = importlib.util.spec_from_file_location("speaker_train_recipe", ROOT / "recipes/speaker/train.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while being built
        spec.loader.exec_module(module)
    return sys.modules["speaker_train_recipe"]


def _center_recipe() -> types.ModuleType:
    """recipes/speaker/center.py as a module."""
    spec = importlib.util.spec_from_file_location("speaker_center_recipe", ROOT / "recipes/speaker/center.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny() -> SpeakerEncoder:
    torch.manual_seed(0)
    return SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).eval()


@pytest.mark.parametrize("frames", [1, 2, 3, 39, 40, 41, 97, 250])
def test_shapes_and_unit_norm_over_lengths(tiny: SpeakerEncoder, frames: int) -> None:
    mel = torch.randn(2, 40, frames)
    with torch.no_grad():
        for emb in (tiny(mel), tiny.embed_long(mel)):
            assert emb.shape == (2, 16)
            assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
            assert torch.isfinite(emb).all()


def test_frame_features_follow_the_stride(tiny: SpeakerEncoder) -> None:
    config = SpeakerEncoderConfig(channels=8, dilations=(1, 2), stride=2, pool_channels=8,
                                  attention_dim=4, emb_dim=16)
    model = SpeakerEncoder(config, MEL_16K_40).eval()
    for frames in (1, 160, 161):
        assert model.frames(torch.randn(1, 40, frames)).shape == (1, 8, (frames + 1) // 2)


def test_long_input_is_the_mean_of_windows(tiny: SpeakerEncoder) -> None:
    # a signal of exactly one window pools as one window; a longer one differs from one pass
    mel = torch.randn(1, 40, 200)
    with torch.no_grad():
        assert torch.allclose(tiny.embed_long(mel[..., :40]), tiny(mel[..., :40]), atol=1e-6)
        assert not torch.allclose(tiny.embed_long(mel), tiny(mel), atol=1e-4)


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match="dilations"):
        SpeakerEncoderConfig(dilations=())
    with pytest.raises(ValueError, match="kernel_size"):
        SpeakerEncoderConfig(kernel_size=4)


def test_checkpoint_round_trip(tiny: SpeakerEncoder, tmp_path: Path) -> None:
    ckpt = Checkpoint.from_module(tiny, "speaker", mel=MEL_16K_40, metadata={"name": "speaker"})
    ckpt.save(tmp_path / "a")
    rebuilt = Checkpoint.load(tmp_path / "a").build().eval()
    mel = torch.randn(1, 40, 123)
    with torch.no_grad():
        assert torch.equal(tiny.embed_long(mel), rebuilt.embed_long(mel))
    header = json.loads((tmp_path / "a" / "config.json").read_text())
    header["model"]["channels"] = 12
    (tmp_path / "a" / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="shape"):
        Checkpoint.load(tmp_path / "a").build()
    header["model"]["colour"] = 1
    (tmp_path / "a" / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="colour"):
        Checkpoint.load(tmp_path / "a")


def test_two_train_steps_change_parameters() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(min_frames=30, warmup_steps=1, loss_weights={"distill": 1.0, "aam": 0.5})
    modules = build_modules(SpeakerEncoderConfig.tiny(), MEL_16K_40, cfg, num_speakers=3)
    optimizers = build_optimizers(modules, cfg)
    before = [p.detach().clone() for p in modules["encoder"].parameters()]
    data = MelCropDataset(torch.randn(6, 2, 40, 50), torch.randn(6, 16), torch.tensor([0, 0, 1, 1, 2, 2]))
    batch = torch.utils.data.default_collate([data[i] for i in range(6)])
    for _ in range(2):
        scalars = train_step(modules, optimizers, batch, cfg)
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values())
    assert {"loss/distill", "loss/aam", "loss/total"} <= set(scalars)
    assert any(not torch.equal(a, b) for a, b in zip(before, modules["encoder"].parameters(), strict=True))


def test_every_recipe_config_loads() -> None:
    recipe = _recipe()
    from voicefake.audio.features import MelConfig
    from voicefake.config import from_dict
    from voicefake.train.loop import LoopConfig

    for path in sorted((ROOT / "recipes/speaker/configs").glob("*.yaml")):
        raw = load_yaml(path)
        from_dict(SpeakerEncoderConfig, raw["model"], "model")
        assert from_dict(MelConfig, raw["mel"], "mel") == MEL_16K_40
        from_dict(TrainConfig, raw["train"], "train")
        from_dict(LoopConfig, raw["loop"], "loop")
        from_dict(recipe.DataConfig, raw["data"], "data")


def test_tiny_recipe_trains_and_exports(tmp_path: Path) -> None:
    recipe = _recipe()
    from voicefake.audio.features import MelConfig
    from voicefake.config import from_dict
    from voicefake.speaker.training import build_task
    from voicefake.train.loop import LoopConfig, fit

    raw = load_yaml(ROOT / "recipes/speaker/configs/tiny.yaml")
    model = from_dict(SpeakerEncoderConfig, raw["model"], "model")
    mel = from_dict(MelConfig, raw["mel"], "mel")
    cfg = from_dict(TrainConfig, raw["train"], "train")
    loop = from_dict(LoopConfig, raw["loop"], "loop")
    train, dev, speakers = recipe.datasets(from_dict(recipe.DataConfig, raw["data"], "data"), mel, 0)
    scalars = fit(build_task(model, mel, cfg, speakers), loop, train, tmp_path / "run", eval_data=dev)
    assert 0.0 <= scalars["eval/eer_mean"] <= 1.0
    assert Checkpoint.load(tmp_path / "run" / "best" / "encoder").kind == "speaker"


def test_spec_augment_masks_part_of_each_example() -> None:
    from voicefake.speaker.training import spec_augment

    torch.manual_seed(0)
    mel = torch.randn(4, 40, 100)
    out = spec_augment(mel, 8, 20)
    assert out.shape == mel.shape
    assert 0 < (out != mel).float().mean() < 0.5
    assert torch.equal(spec_augment(mel, 0, 0), mel)


def test_output_relu_gives_non_negative_unit_embeddings() -> None:
    torch.manual_seed(0)
    config = SpeakerEncoderConfig(channels=8, dilations=(1,), pool_channels=8, attention_dim=4, emb_dim=16,
                                  window_frames=40, window_hop_frames=20, output_relu=True)
    model = SpeakerEncoder(config, MEL_16K_40).eval()
    plain = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).eval()
    plain.load_state_dict(model.state_dict())  # same weights, no ReLU
    mel = torch.randn(6, 40, 97)
    with torch.no_grad():
        for emb in (model(mel), model.embed_long(mel)):
            assert (emb >= 0).all()
            assert torch.allclose(emb.norm(dim=-1), torch.ones(6), atol=1e-5)
        assert (plain(mel) < 0).any()  # the option is what makes them non-negative


def test_center_teacher_removes_the_common_component(tmp_path: Path) -> None:
    recipe = _recipe()
    torch.manual_seed(0)
    common = torch.rand(256) * 3
    teacher = common + 0.1 * torch.randn(12, 256)
    cache = {"mels": torch.randn(12, 2, 40, 81).half(), "teacher": teacher, "speaker": torch.arange(12) % 3,
             "speakers": ["a", "b", "c"],
             "dev": {"clean": torch.randn(3, 40, 81).half(), "phone": torch.randn(3, 40, 81).half(),
                     "speaker": torch.arange(3)}}
    torch.save(cache, tmp_path / "cache.pt")
    raw, _, _ = recipe.datasets(recipe.DataConfig(cache=str(tmp_path / "cache.pt")), MEL_16K_40, 0)
    centred, _, speakers = recipe.datasets(recipe.DataConfig(cache=str(tmp_path / "cache.pt"), center_teacher=True),
                                           MEL_16K_40, 0)
    assert speakers == 3
    assert torch.equal(raw.teacher, teacher)
    assert torch.allclose(centred.teacher, teacher - teacher.mean(dim=0))
    assert centred.teacher.mean(dim=0).abs().max() < 1e-5


def test_centre_checkpoint_subtracts_the_mean_training_embedding(tmp_path: Path) -> None:
    center = _center_recipe()
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).eval()
    ckpt = Checkpoint.from_module(model, "speaker", MEL_16K_40, {"calibration": {"a": 1.0, "b": 0.0}})
    mels = torch.randn(5, 2, 40, 81).half()
    out = center.centre_checkpoint(ckpt, mels)
    out.save(tmp_path / "centred")
    centred = Checkpoint.load(tmp_path / "centred").build().eval()
    assert centred.config.center_embeddings and not model.config.center_embeddings
    assert "calibration" not in out.metadata  # cosines moved: it must be calibrated again
    with torch.no_grad():
        plain = model(mels.flatten(0, 1).float())
        assert torch.allclose(centred.center, plain.mean(dim=0), atol=1e-5)
        probe = torch.randn(3, 40, 250)
        expected = torch.nn.functional.normalize(model.embed_long(probe) - plain.mean(dim=0), dim=-1)
        assert torch.allclose(centred.embed_long(probe), expected, atol=1e-5)
        # centring spreads the training crops: their mean embedding shrinks towards 0
        assert centred(mels.flatten(0, 1).float()).mean(dim=0).norm() < plain.mean(dim=0).norm()


def test_score_is_the_cosine_without_a_cohort_and_as_norm_with_one() -> None:
    torch.manual_seed(0)
    plain = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).eval()
    a, b = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1), torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    assert torch.allclose(plain.score(a, b), a @ b.T, atol=1e-6)
    config = SpeakerEncoderConfig(channels=8, dilations=(1,), pool_channels=8, attention_dim=4, emb_dim=16,
                                  window_frames=40, window_hop_frames=20, cohort_size=6, cohort_top=3)
    model = SpeakerEncoder(config, MEL_16K_40).eval()
    cohort = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    model.cohort.copy_(cohort)
    scores = model.score(a, b)
    near_a, near_b = (a @ cohort.T).topk(3).values, (b @ cohort.T).topk(3).values
    for i in range(3):
        for j in range(4):
            cos = float(a[i] @ b[j])
            expected = 0.5 * ((cos - near_a[i].mean()) / near_a[i].std(correction=0)
                              + (cos - near_b[j].mean()) / near_b[j].std(correction=0))
            assert abs(float(scores[i, j]) - float(expected)) < 1e-4
    # symmetric, and a test voice close to many cohort speakers needs a higher cosine
    assert torch.allclose(model.score(b, a), scores.T, atol=1e-5)
    with pytest.raises(ValueError, match="cohort"):
        SpeakerEncoderConfig(cohort_size=-1)


def test_centre_checkpoint_builds_a_cohort_of_real_speakers_only(tmp_path: Path) -> None:
    center = _center_recipe()
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).eval()
    ckpt = Checkpoint.from_module(model, "speaker", MEL_16K_40, {})
    mels = torch.randn(9, 2, 40, 81).half()
    speaker = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    out = center.centre_checkpoint(ckpt, mels, speaker, ["a", "b", "a@+2st"], cohort_top=2)
    out.save(tmp_path / "c")
    built = Checkpoint.load(tmp_path / "c").build().eval()
    assert built.config.cohort_size == 2 and built.config.cohort_top == 2
    with torch.no_grad():
        emb = model(mels.flatten(0, 1).float()).view(9, 2, -1)
        centred = torch.nn.functional.normalize(emb - emb.mean(dim=(0, 1)), dim=-1).mean(dim=1)
        expected = torch.stack([torch.nn.functional.normalize(centred[speaker == i].mean(dim=0), dim=0) for i in (0, 1)])
    assert torch.allclose(built.cohort, expected, atol=1e-5)
    with pytest.raises(ValueError, match="speaker"):
        center.centre_checkpoint(ckpt, mels, cohort_top=2)


def _shape_model(seed: int = 0) -> SpeakerEncoder:
    torch.manual_seed(seed)
    config = SpeakerEncoderConfig(channels=8, dilations=(1,), pool_channels=8, attention_dim=4, emb_dim=16,
                                  window_frames=40, window_hop_frames=20, spectral_shape=True)
    return SpeakerEncoder(config, MEL_16K_40).eval()


def test_spectral_shape_sees_the_band_means_but_not_the_gain(tiny: SpeakerEncoder) -> None:
    model = _shape_model()
    with torch.no_grad():  # a trained BatchNorm: the shape branch then moves the output
        model.shape_norm.running_var.fill_(0.01)
    mel = torch.randn(3, 40, 97)
    tilt = torch.linspace(-2, 2, 40)[None, :, None]
    with torch.no_grad():
        # the mean normalisation hides a fixed colouring from the plain model ...
        assert torch.allclose(tiny(mel), tiny(mel + tilt), atol=1e-5)
        # ... the shape branch sees it, but not an overall gain (the same offset in every band)
        assert not torch.allclose(model(mel), model(mel + tilt), atol=1e-3)
        assert torch.allclose(model(mel), model(mel + 3.0), atol=1e-5)
        for emb in (model(mel), model.embed_long(mel)):
            assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
        # long inputs: every window is pooled with the whole input's shape
        h, shape = model.frames(mel), model.shape(mel)
        assert shape is not None and torch.allclose(shape, mel.mean(-1) - mel.mean(dim=(1, 2))[:, None], atol=1e-6)
        windows = [model.pool_frames(h[..., s : s + 20], shape) for s in (0, 10, 20, 29)]
        expected = torch.nn.functional.normalize(torch.stack(windows).mean(0), dim=-1)
        assert torch.allclose(model.embed_long(mel), expected, atol=1e-5)
        with pytest.raises(ValueError, match="spectral shape"):
            model.pool_frames(h)


def test_init_encoder_widens_the_head_and_starts_from_the_source(tiny: SpeakerEncoder, tmp_path: Path) -> None:
    recipe = _recipe()
    Checkpoint.from_module(tiny, "speaker", mel=MEL_16K_40, metadata={"name": "speaker"}).save(tmp_path / "plain")
    model = _shape_model(seed=1)
    new = recipe.init_encoder(model, str(tmp_path / "plain"))
    assert {"shape_norm.weight", "shape_norm.bias", "shape_norm.running_mean", "shape_norm.running_var"} <= set(new)
    assert all(name.startswith("shape_norm.") for name in new)
    mel = torch.randn(2, 40, 150)
    with torch.no_grad():
        assert torch.allclose(model.embed_long(mel), tiny.embed_long(mel), atol=1e-6)
        assert torch.equal(model.head.weight[:, 16:], torch.zeros(16, 40))
    wider = SpeakerEncoder(SpeakerEncoderConfig(channels=12, dilations=(1,), pool_channels=8, attention_dim=4,
                                                emb_dim=16), MEL_16K_40)
    with pytest.raises(SystemExit, match="do not fit"):
        recipe.init_encoder(wider, str(tmp_path / "plain"))


def test_clean_share_sets_how_often_the_clean_version_is_drawn() -> None:
    mels = torch.zeros(1, 4, 40, 10)
    mels[0, 0] = 1.0  # the clean version is the one filled with ones
    teacher, speaker = torch.zeros(1, 16), torch.zeros(1, dtype=torch.long)
    torch.manual_seed(0)
    for share, expected in ((None, 0.25), (0.5, 0.5), (1.0, 1.0)):
        data = MelCropDataset(mels, teacher, speaker, share)
        drawn = sum(float(data[0]["mel"].mean()) == 1.0 for _ in range(2000)) / 2000
        assert drawn == pytest.approx(expected, abs=0.04)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="clean_share"):
            MelCropDataset(mels, teacher, speaker, bad)


def test_benchmark_counts_rejections_and_false_accepts_at_the_threshold() -> None:
    spec = importlib.util.spec_from_file_location("speaker_benchmark", ROOT / "benchmarks/speaker.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    trials = {"clean": ([0.9, 0.4, 0.8, 0.1, 0.6], [1, 1, 0, 0, 0])}
    assert bench.at_threshold(trials, 0.5) == {"clean": {"frr": 0.5, "far": pytest.approx(2 / 3)}}
