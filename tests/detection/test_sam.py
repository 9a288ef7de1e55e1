"""Sharpness-aware minimisation (``train.sam_rho``): the ascent, its undoing, and a SAM step's
update, which is the plain update taken with the gradient at the ascended weights."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from voicefake.detection.model import DetectorConfig
from voicefake.detection.training import (
    TrainConfig,
    build_modules,
    build_optimizers,
    loss_for,
    sam_ascent,
    sam_descent,
    sam_radius,
    train_step,
)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    wav = 0.1 * torch.randn(4, 8000, generator=g)
    wav[1::2] += 0.2 * torch.sin(torch.arange(8000) * 0.3)  # the fakes carry a tone
    return wav, torch.tensor([0.0, 1.0, 0.0, 1.0])


def _gradients(detector: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig) -> None:
    detector.zero_grad(set_to_none=True)
    loss_for(detector.config, cfg, detector(batch[0]).logits, batch[1]).backward()


@pytest.mark.parametrize("adaptive", [False, True])
def test_the_ascent_moves_uphill_by_rho_and_the_descent_undoes_it(adaptive: bool) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig()
    detector = build_modules(DetectorConfig.tiny())["detector"].eval()  # eval: the same function twice
    params = list(detector.parameters())
    start = [p.detach().clone() for p in params]
    _gradients(detector, _batch(), cfg)
    grads = [p.grad.clone() for p in params]
    with torch.no_grad():
        before = float(loss_for(detector.config, cfg, detector(_batch()[0]).logits, _batch()[1]))
    steps = sam_ascent(params, 0.05, adaptive)
    moved = torch.cat([(p.detach() - s).flatten() for p, s in zip(params, start, strict=True)])
    if adaptive:  # ASAM: the step, measured in units of each weight, has length rho
        scale = torch.cat([s.abs().flatten() for s in start])
        assert float((moved[scale > 0] / scale[scale > 0]).norm()) == pytest.approx(0.05, rel=1e-4)
        assert torch.all(moved[scale == 0] == 0)
    else:
        assert float(moved.norm()) == pytest.approx(0.05, rel=1e-4)
    assert float(moved @ torch.cat([g.flatten() for g in grads])) > 0  # along the gradient: uphill
    with torch.no_grad():
        after = float(loss_for(detector.config, cfg, detector(_batch()[0]).logits, _batch()[1]))
    assert after > before
    sam_descent(params, steps)
    for p, s in zip(params, start, strict=True):
        torch.testing.assert_close(p.detach(), s, rtol=0, atol=1e-7)


def test_a_sam_step_applies_the_ascended_gradient_at_the_start_weights_and_counts_the_batch_once() -> None:
    """The SAM step equals a plain step whose gradient is taken at the ascended weights; the
    batch-norm statistics move as in one plain step; rho = 0 (or a ramp's first step) is the
    plain step bit for bit."""
    torch.manual_seed(0)
    sam = TrainConfig(segment_seconds=0.5, min_seconds=0.5, sam_rho=0.05, grad_clip=0.0, label_smoothing=0.0)
    modules = build_modules(DetectorConfig.tiny())
    detector = modules["detector"]
    for m in detector.modules():  # the two passes and the hand-made step must see one function
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    start = copy.deepcopy(detector.state_dict())
    batch = _batch()

    torch.manual_seed(3)
    scalars = train_step(modules, build_optimizers(modules, sam), batch, sam, 16000)
    after_sam = copy.deepcopy(detector.state_dict())
    assert scalars["loss_sam/detector"] > scalars["loss/detector"]

    # by hand: the gradient at the ascended weights (the batch-norm statistics of the start), applied at the start
    detector.load_state_dict(start)
    params = list(detector.parameters())
    _gradients(detector, batch, sam)
    norms = {k: v.clone() for k, v in detector.state_dict().items() if "running" in k}
    steps = sam_ascent(params, sam.sam_rho)
    detector.load_state_dict({**detector.state_dict(), **{k: start[k] for k in norms}})  # the ascended pass sees the start's statistics
    _gradients(detector, batch, sam)
    sam_descent(params, steps)
    detector.load_state_dict({**detector.state_dict(), **norms})  # counted once
    optimizer = build_optimizers(modules, sam)["detector"]
    optimizer.step()
    for key, value in detector.state_dict().items():
        torch.testing.assert_close(after_sam[key], value, rtol=1e-5, atol=1e-6, msg=key)

    # rho = 0, and a ramp's first step (radius 0), are the plain step: the gradient at the start weights
    detector.load_state_dict(start)
    _gradients(detector, batch, sam)
    optimizer = build_optimizers(modules, sam)["detector"]
    optimizer.step()
    by_hand = copy.deepcopy(detector.state_dict())
    assert any(not torch.allclose(by_hand[k], after_sam[k]) for k in start if "running" not in k)
    for cfg in (replace(sam, sam_rho=0.0), replace(sam, sam_warmup_steps=10)):
        detector.load_state_dict(start)
        torch.manual_seed(3)
        scalars = train_step(modules, build_optimizers(modules, cfg), batch, cfg, 16000)
        assert "loss_sam/detector" not in scalars
        for key, value in detector.state_dict().items():
            assert torch.equal(by_hand[key], value), key


def test_the_ascent_ramps_in_over_the_optimisers_own_steps() -> None:
    """sam_warmup_steps: no ascent at the first step (a plain step), then rho * k / N, then rho;
    counted by the optimiser, so a resumed run (its optimiser state restored) goes on where it was."""
    torch.manual_seed(0)
    cfg = TrainConfig(segment_seconds=0.5, min_seconds=0.5, sam_rho=0.05, sam_warmup_steps=4)
    modules = build_modules(DetectorConfig.tiny())
    optimizers = build_optimizers(modules, cfg)
    radii = []
    for _ in range(6):
        radii.append(sam_radius(cfg, optimizers["detector"]))
        scalars = train_step(modules, optimizers, _batch(), cfg, 16000)
        assert scalars.get("sam_rho", 0.0) == pytest.approx(radii[-1])
        assert ("loss_sam/detector" in scalars) == (radii[-1] > 0)
    assert radii == pytest.approx([0.0, 0.0125, 0.025, 0.0375, 0.05, 0.05])
    resumed = build_optimizers(modules, cfg)["detector"]
    resumed.load_state_dict(optimizers["detector"].state_dict())
    assert sam_radius(cfg, resumed) == pytest.approx(0.05)
    assert sam_radius(TrainConfig(sam_rho=0.05), resumed) == 0.05  # no ramp: full from the start
    sgd = torch.optim.SGD(modules["detector"].parameters(), lr=0.01, momentum=0.9)  # keeps no step count
    assert sam_radius(cfg, sgd) == 0.0
    modules["detector"](_batch()[0]).logits.sum().backward()
    sgd.step()
    assert sam_radius(cfg, sgd) == 0.05


@pytest.mark.parametrize("rho", [-0.05, float("nan"), float("inf")])
def test_a_bad_rho_is_refused(rho: float) -> None:
    with pytest.raises(ValueError, match="sam_rho"):
        TrainConfig(sam_rho=rho)
    with pytest.raises(ValueError, match="sam_warmup_steps"):
        TrainConfig(sam_rho=0.05, sam_warmup_steps=-1)
