"""Detector shapes over lengths, frame arithmetic, checkpoint round trip, two train steps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from voicefake.checkpoint import Checkpoint, CheckpointError
from voicefake.detection.losses import one_class_loss
from voicefake.detection.model import Detector, DetectorConfig, num_model_frames
from voicefake.detection.training import (
    DetectionCropDataset,
    TrainConfig,
    build_modules,
    build_optimizers,
    decision_logit,
    eval_step,
    frame_targets,
    train_step,
)


@pytest.mark.parametrize("phase", [False, True])
@pytest.mark.parametrize("num_samples", [1, 100, 159, 160, 161, 640, 16000, 16001, 23457])
def test_shapes_over_lengths(num_samples: int, phase: bool) -> None:
    model = Detector(DetectorConfig.tiny().__class__(**{**DetectorConfig.tiny().__dict__, "phase": phase})).eval()
    out = model(torch.randn(2, num_samples) * 0.1)
    assert out.logits.shape == (2,)
    assert out.frame_logits.shape == (2, num_model_frames(num_samples, model.config))
    assert torch.isfinite(out.logits).all()
    # the utterance logit is the mean of the frame logits (what makes the timeline one pass)
    assert torch.allclose(out.logits, out.frame_logits.mean(-1))


def test_default_model_is_small() -> None:
    params = sum(p.numel() for p in Detector(DetectorConfig()).parameters())
    assert params < 200_000  # well under the 10 MB bundle limit in float16


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        DetectorConfig(n_filters=30)
    with pytest.raises(ValueError, match="odd"):
        DetectorConfig(context=4)


def test_checkpoint_round_trip(tmp_path) -> None:
    model = Detector(DetectorConfig.tiny()).eval()
    wav = torch.randn(1, 8000) * 0.1
    Checkpoint.from_module(model, "detection", metadata={"name": "t"}).save(tmp_path / "ckpt")
    loaded = Checkpoint.load(tmp_path / "ckpt")
    rebuilt = loaded.build().eval()
    assert torch.equal(model(wav).frame_logits, rebuilt(wav).frame_logits)
    loaded.save(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tmp_path / "ckpt" / "model.safetensors").read_bytes()


def test_checkpoint_mismatch_raises(tmp_path) -> None:
    Checkpoint.from_module(Detector(DetectorConfig.tiny()), "detection").save(tmp_path / "ckpt")
    ckpt = Checkpoint.load(tmp_path / "ckpt")
    ckpt.model["hidden"] = 9
    with pytest.raises(CheckpointError):
        ckpt.build()
    ckpt.model["bogus"] = 1
    with pytest.raises(Exception, match="bogus"):
        ckpt.build()


def test_two_train_steps_change_parameters() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(segment_seconds=0.5, min_seconds=0.25)
    modules = build_modules(DetectorConfig.tiny())
    optimizers = build_optimizers(modules, cfg)
    waves = [np.random.default_rng(i).standard_normal(8000).astype(np.float32) * 0.1 for i in range(4)]
    data = DetectionCropDataset(waves, [0, 1, 0, 1], 8000, cfg, 16000, length=8)
    wav, labels, targets = zip(*[data[i] for i in range(4)], strict=True)
    assert all((t == -1).all() for t in targets)  # p_splice 0: whole crops, no frame targets
    batch = (torch.stack(wav), torch.stack(labels))
    before = [p.detach().clone() for p in modules["detector"].parameters()]
    for _ in range(2):
        scalars = train_step(modules, optimizers, batch, cfg, 16000)
        assert np.isfinite(scalars["loss/detector"])
    assert any(not torch.equal(a, b) for a, b in zip(before, modules["detector"].parameters(), strict=True))
    assert labels[0].item() == 0.0 and labels[1].item() == 1.0  # class-balanced: even real, odd fake


def test_phase_planes_see_what_magnitudes_cannot() -> None:
    """A steady tone has a steady reassigned frequency where a band of noise of the same
    spectrum wanders; an impulse at every frame centre has zero group delay. In [-1, 1]."""
    model = Detector(DetectorConfig(phase=True)).eval()
    rate, n = 16000, 16000
    t = torch.arange(n) / rate
    tone = 0.3 * torch.sin(2 * torch.pi * 1010 * t)
    noise = torch.fft.irfft(torch.fft.rfft(torch.randn(n, generator=torch.Generator().manual_seed(0)))
                            * ((torch.fft.rfftfreq(n, 1 / rate) - 1010).abs() < 60), n=n)
    noise = 0.3 * noise / noise.abs().max()
    planes = model.features(torch.stack([tone, noise]))
    assert planes.shape[:3] == (2, 4, 128)
    assert planes[:, 1:].abs().max() <= 1.0 + 1e-5
    band = int(torch.argmax(model.frontend(tone[None])[0, :, 20]))  # the tone's band
    wander = planes[:, 1, band - 2: band + 3, 5:-5].std(-1).mean(-1)
    assert wander[0] < 0.005 and wander[1] > 0.03
    clicks = torch.zeros(n)
    clicks[::160] = 1.0  # one impulse at every frame centre
    group = model.features(clicks[None])[0, 2, 10:-10, 5:-5]
    assert group.mean() > 0.95  # cos(group delay) ~ 1 everywhere


def test_phase_model_saliency_sums_planes() -> None:
    from voicefake.detection.inference import saliency

    model = Detector(DetectorConfig(phase=True)).eval()
    out = saliency(model, torch.randn(16000) * 0.1, 16000)
    assert abs(sum(b["share"] for b in out["bands"]) - 1.0) < 0.05


def test_spliced_crops_mark_only_the_inserted_fake_span() -> None:
    """A spliced crop is a real crop with a span of a fake clip (odd index: frames labelled 1
    there) or of another real clip (even index: all 0): the splice itself is never the cue."""
    torch.manual_seed(0)
    cfg = TrainConfig(p_splice=1.0, splice_fraction=(0.25, 0.5), p_lowpass=0.0, p_dither=0.0, gain_db=0.0)
    real = [np.full(8000, 0.1, np.float32), np.full(8000, 0.2, np.float32)]
    fake = [np.full(8000, -0.3, np.float32)]
    data = DetectionCropDataset(real + fake, [0, 0, 1], 4000, cfg, 16000, length=8)
    for index in range(8):
        wav, label, target = data[index]
        assert label.item() == index % 2 and set(target.unique().tolist()) <= {0.0, 1.0}
        if index % 2:
            span = target == 1
            assert 0.25 * 4000 <= span.sum() <= 0.5 * 4000
            inside = wav[span][160:-160]  # past the 10 ms (160-sample) cross-fades
            assert torch.allclose(inside, torch.full_like(inside, -0.3))
            assert (wav[~span] > 0).all()  # the rest is real audio
        else:
            assert not target.any()


def test_frame_targets_average_each_frame_span() -> None:
    target = torch.zeros(1, 2000)
    target[0, 640:1280] = 1
    target[0, 1600:] = 1
    # frames cover [0, 640), [640, 1280), [1280, 1920), [1920, 2560): the last is edge-padded
    assert torch.allclose(frame_targets(target, 4, 640), torch.tensor([[0.0, 1.0, 0.5, 1.0]]))


def test_spliced_batch_trains_the_frame_logits() -> None:
    """Only spliced items give frame targets; a batch of both kinds trains and its loss moves
    the frame logits of the spliced span towards "synthetic"."""
    torch.manual_seed(0)
    cfg = TrainConfig(segment_seconds=0.5, min_seconds=0.5, p_splice=0.5, lr=5e-3)
    modules = build_modules(DetectorConfig.tiny())
    optimizers = build_optimizers(modules, cfg)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(8000).astype(np.float32) * 0.1, np.sin(np.arange(8000) * 0.3).astype(np.float32) * 0.3]
    data = DetectionCropDataset(waves, [0, 1], 8000, cfg, 16000, length=16)
    wav, labels, targets = (torch.stack(x) for x in zip(*[data[i] for i in range(16)], strict=True))
    spliced = targets[:, 0] >= 0
    assert spliced.any() and (~spliced).any()
    for _ in range(30):
        scalars = train_step(modules, optimizers, (wav, labels, targets), cfg, 16000)
        assert np.isfinite(scalars["loss/detector"]) and 0 < scalars["spliced/train"] < 1
    with torch.no_grad():
        frames = modules["detector"](wav[spliced]).frame_logits
    marks = frame_targets(targets[spliced], frames.shape[-1], 640)
    assert frames[marks > 0.9].mean() > frames[marks < 0.1].mean() + 1.0


def test_speed_perturbed_crops_keep_their_length_and_both_labels() -> None:
    """With p_speed=1 and a fixed factor 1.2 every crop, real or fake, is played 1.2x faster:
    a 500 Hz tone comes out at 600 Hz, and the crop keeps its length."""
    torch.manual_seed(0)
    cfg = TrainConfig(p_speed=1.0, speed_range=(1.2, 1.2), p_lowpass=0.0, p_dither=0.0, gain_db=0.0)
    tone = (0.3 * np.sin(2 * np.pi * 500.0 * np.arange(24000) / 16000)).astype(np.float32)
    data = DetectionCropDataset([tone, tone[:5000]], [0, 1], 8000, cfg, 16000, length=6)
    for index in range(6):
        wav, label, _ = data[index]
        assert wav.shape == (8000,) and torch.isfinite(wav).all() and label.item() == index % 2
        peak = np.argmax(np.abs(np.fft.rfft(wav.numpy()))) * 16000 / 8000
        assert abs(peak - 600.0) <= 4.0


def test_one_class_head_scores_by_cosine_and_is_bounded() -> None:
    """The one-class head's frame logit is -oc_scale * cosine with the real direction, so it
    stays within +-oc_scale; the utterance logit is still the mean of the frame logits."""
    torch.manual_seed(0)
    model = Detector(replace(DetectorConfig.tiny(), head="one_class", oc_scale=10.0)).eval()
    out = model(torch.randn(2, 16000) * 0.3)
    assert out.frame_logits.abs().max() <= 10.0 + 1e-4
    assert torch.allclose(out.logits, out.frame_logits.mean(-1))
    with pytest.raises(ValueError, match="head"):
        DetectorConfig(head="softmax")
    with pytest.raises(ValueError, match="oc_margins"):
        TrainConfig(oc_margins=(0.2, 0.9))


def test_one_class_loss_asks_a_tight_cone_of_real_and_a_wide_one_of_fakes() -> None:
    """Cosine 0.95 is free for a real item, 0.5 is not; a fake at cosine 0.1 is free, at 0.5 not.
    A frame that is half synthetic pays half of each term."""
    scale, margins = 20.0, (0.9, 0.2)

    def loss(cosine: float, target: float) -> float:
        return float(one_class_loss(torch.tensor([-scale * cosine]), torch.tensor([target]), scale, margins))

    assert loss(0.95, 0) < 0.5 and loss(0.5, 0) > 7.0
    assert loss(0.1, 1) < 0.2 and loss(0.5, 1) > 5.0
    assert loss(0.0, 1) < loss(-0.9, 0)  # a fake far from the real direction costs little
    half = loss(0.5, 0.5)
    assert abs(half - (loss(0.5, 0) + loss(0.5, 1)) / 2) < 1e-5


def test_one_class_detector_learns_to_separate() -> None:
    """Trained on noise (real) against clean tones (fake), the one-class head puts the real
    items inside the cone and the fakes outside, i.e. on either side of its decision logit."""
    torch.manual_seed(0)
    cfg = TrainConfig(segment_seconds=0.5, min_seconds=0.5, lr=5e-3, p_dither=0.0)
    model_cfg = replace(DetectorConfig.tiny(), head="one_class")
    modules = build_modules(model_cfg)
    optimizers = build_optimizers(modules, cfg)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(8000).astype(np.float32) * 0.1, np.sin(np.arange(8000) * 0.3).astype(np.float32) * 0.3]
    data = DetectionCropDataset(waves, [0, 1], 8000, cfg, 16000, length=8)
    wav, labels, _ = (torch.stack(x) for x in zip(*[data[i] for i in range(8)], strict=True))
    first = train_step(modules, optimizers, (wav, labels), cfg, 16000)["loss/detector"]
    for _ in range(60):
        last = train_step(modules, optimizers, (wav, labels), cfg, 16000)
    assert last["loss/detector"] < first / 2 and last["acc/train"] == 1.0
    scalars = eval_step(modules, (wav, labels), cfg)
    assert scalars["eval/acc"] == 1.0 and np.isfinite(scalars["eval/loss"])
    assert decision_logit(model_cfg, cfg) == pytest.approx(-11.0)


def test_frequency_masking_flattens_a_run_of_bands_in_training_only() -> None:
    from voicefake.detection.model import mask_bands

    torch.manual_seed(0)
    spec = torch.randn(64, 1, 32, 10)
    masked = mask_bands(spec, 8)
    zero_bands = (masked == 0).all(-1)[:, 0]  # (B, N)
    widths = zero_bands.sum(-1)
    assert widths.max() <= 8 and widths.min() == 0 and (widths > 0).float().mean() > 0.7
    for row in zero_bands[widths > 0]:  # one contiguous run per item
        idx = torch.nonzero(row)[:, 0]
        assert idx[-1] - idx[0] + 1 == idx.numel()
    assert torch.equal(masked[~zero_bands[:, None, :, None].expand_as(masked)],
                       spec[~zero_bands[:, None, :, None].expand_as(spec)])
    model = Detector(replace(DetectorConfig.tiny(), freq_mask=8, dropout=0.0)).eval()
    wav = torch.randn(2, 8000) * 0.1
    assert torch.equal(model(wav).logits, model(wav).logits)  # eval: no masking
    with pytest.raises(ValueError, match="freq_mask"):
        DetectorConfig(freq_mask=128)


def artefact_detector(weight: float = 0.5) -> Detector:
    config = replace(DetectorConfig.tiny(), artefact_channels=8, artefact_dilations=(1, 2), artefact_weight=weight)
    return Detector(config).eval()


@pytest.mark.parametrize("num_samples", [1, 159, 161, 640, 16001])
def test_artefact_branch_adds_its_pooled_frame_logits(num_samples: int) -> None:
    model = artefact_detector(0.5)
    wav = torch.randn(2, num_samples) * 0.1
    with torch.no_grad():
        torch.nn.init.normal_(model.artefact_probe.weight)
        out = model(wav)
        alone = model.score_features(model.features(wav))
        branch = model.artefact_frame_logits(wav)
    assert out.frame_logits.shape == (2, num_model_frames(num_samples, model.config))
    assert torch.allclose(out.logits, out.frame_logits.mean(-1))
    # each 40 ms network frame gets the mean of the branch's four 10 ms frames inside it
    expected = alone.frame_logits[:, 0] + 0.5 * branch[:, :4].mean(-1)
    assert torch.allclose(out.frame_logits[:, 0], expected, atol=1e-5)
    assert not torch.allclose(out.frame_logits, alone.frame_logits)


def test_artefact_branch_is_frozen_and_round_trips(tmp_path) -> None:
    model = artefact_detector()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(name.startswith("artefact") for name in trainable)
    Checkpoint.from_module(model, "detection").save(tmp_path / "d")
    loaded = Checkpoint.load(tmp_path / "d").build("cpu").eval()
    assert loaded.config == model.config and loaded.config.artefact_dilations == (1, 2)
    wav = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        assert torch.allclose(loaded(wav).frame_logits, model(wav).frame_logits, atol=1e-6)
    with pytest.raises(ValueError, match="artefact"):
        replace(DetectorConfig.tiny(), artefact_weight=-1.0)


@pytest.mark.parametrize("pool", [(2, 2), (2, 1), (1, 2)])
@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 4, 7, 9), (1, 1, 1, 1)])
def test_pair_max_pool_is_max_pool2d_with_partial_windows(pool, shape) -> None:
    """Inference takes neighbouring maxima (session 48: faster on CPUs without AVX-512); the
    numbers are max_pool2d's with ceil_mode, odd sizes included; with autograd, max_pool2d runs."""
    from voicefake.detection.model import PairMaxPool

    x = torch.randn(shape)
    with torch.inference_mode():
        assert torch.equal(PairMaxPool(pool)(x), F.max_pool2d(x, pool, ceil_mode=True))
    leaf = x.clone().requires_grad_(True)
    out = PairMaxPool(pool)(leaf)
    assert out.grad_fn is not None and "MaxPool2D" in type(out.grad_fn).__name__
    with pytest.raises(ValueError, match="1 or 2"):
        PairMaxPool((3, 3))


def test_bundled_detector_scores_as_with_max_pool2d() -> None:
    """The bundled weights through PairMaxPool give max_pool2d's frame logits bit for bit."""
    import copy

    from voicefake import api
    from voicefake.detection.model import PairMaxPool

    module = api.load("detection").module
    before = copy.deepcopy(module)
    before.stem_pool = nn.MaxPool2d((2, 2), ceil_mode=True)
    for block in before.blocks:
        if isinstance(block.pool, PairMaxPool):
            block.pool = nn.MaxPool2d(block.pool.pool, ceil_mode=True)
    wav = torch.from_numpy(np.random.default_rng(0).standard_normal(16000 * 3 + 123).astype(np.float32) * 0.05)
    with torch.inference_mode():
        assert torch.equal(module(wav[None]).frame_logits, before(wav[None]).frame_logits)
