"""The decoder's adversarial training: a mel discriminator that judges fine structure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conversion.test_recipe import _train
from tests.conversion.test_reference import BASE
from voicefake.audio.features import MEL_16K_40, MEL_16K_80
from voicefake.checkpoint import Checkpoint
from voicefake.conversion.decoder_training import TrainConfig, adversarial_terms, build_task
from voicefake.conversion.model import MelDiscriminator
from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig


def _textured(batch: int, seed: int) -> torch.Tensor:
    """Log-mels with a harmonic-like ripple across bands that moves over time."""
    gen = torch.Generator().manual_seed(seed)
    bands = torch.arange(80.0)[None, :, None]
    frames = torch.arange(60.0)[None, None, :]
    pitch = 0.6 + 0.4 * torch.rand(batch, 1, 1, generator=gen)
    return 2 * torch.sin(bands * pitch + 0.2 * frames) - 4 + 0.1 * torch.randn(batch, 80, 60, generator=gen)


def test_config_refuses_negative_weights_and_matching_without_a_discriminator() -> None:
    with pytest.raises(ValueError, match="adversarial_loss"):
        TrainConfig(adversarial_loss=-0.1)
    with pytest.raises(ValueError, match="needs train.adversarial_loss"):
        TrainConfig(feature_loss=0.5)
    with pytest.raises(ValueError, match="at least one"):
        MelDiscriminator(())
    with pytest.raises(ValueError, match="adversarial_cross must be"):
        TrainConfig(adversarial_cross=-1.0)
    with pytest.raises(ValueError, match="cross conversions"):  # nothing converted to judge
        TrainConfig(adversarial_loss=0.1, adversarial_cross=0.1)
    with pytest.raises(ValueError, match="the discriminator"):
        TrainConfig(speaker_loss=0.3, adversarial_cross=0.1)


def test_discriminator_scores_patches_and_returns_every_layers_maps() -> None:
    scores, maps = MelDiscriminator((8, 16))(torch.randn(3, 80, 60))
    assert scores.shape == (3, 20 * 15) and len(maps) == 3
    assert [m.shape[1] for m in maps] == [8, 16, 1]


def test_discriminator_learns_to_tell_fine_structure_from_its_smoothed_copy() -> None:
    torch.manual_seed(0)
    disc = MelDiscriminator((8, 16))
    optimizer = torch.optim.Adam(disc.parameters(), 2e-3)
    real = _textured(8, 0)
    smooth = real.mean(dim=1, keepdim=True).expand_as(real).clone()  # the ripple averaged away
    cfg = TrainConfig(adversarial_loss=1.0)
    first: dict[str, float] = {}
    adversarial_terms(disc, optimizer, smooth, real, cfg, first)
    for _ in range(40):
        last: dict[str, float] = {}
        adversarial_terms(disc, optimizer, smooth, real, cfg, last)
    assert last["loss/disc"] < 0.5 * first["loss/disc"], (first, last)
    assert last["loss/adversarial"] > first["loss/adversarial"]  # the smoothed copy now scores as fake


def test_build_task_trains_a_discriminator_but_exports_only_the_decoder() -> None:
    plain = build_task(BASE, MEL_16K_80, TrainConfig(), None)
    assert set(plain.modules) == {"decoder"}
    task = build_task(BASE, MEL_16K_80, TrainConfig(adversarial_loss=0.1, feature_loss=0.3), None)
    assert set(task.modules) == set(task.optimizers) == set(task.schedulers) == {"decoder", "discriminator"}
    assert set(task.exports) == {"decoder"}


def test_a_step_moves_both_networks_and_logs_the_terms() -> None:
    torch.manual_seed(0)
    task = build_task(BASE, MEL_16K_80, TrainConfig(adversarial_loss=0.1, feature_loss=0.3, warp=1.0,
                                                    gain_db=0.0), None)
    mel = _textured(4, 1)
    batch = {"mel": mel, "source": mel, "log_f0": torch.full((4, 60), 5.0),
             "speaker": torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)}
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in task.modules.items()}
    logged = task.train_step(task.modules, task.optimizers, batch)
    assert {"loss/disc", "loss/adversarial", "loss/feature_matching", "loss/mel_l1"} <= set(logged)
    for name, module in task.modules.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True)), name


def test_decoder_recipe_trains_adversarially_resumes_and_exports_the_decoder_alone(tmp_path: Path) -> None:
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)  # for the cross conversions
    Checkpoint.from_module(judge, "speaker", MEL_16K_40, {"name": "tiny-judge"}).save(tmp_path / "judge")
    args = ("model.content_input=cepstrum", "train.adversarial_loss=0.1", "train.feature_loss=0.3",
            "train.speaker_loss=0.3", "train.adversarial_cross=0.1", f"data.content={tmp_path / 'none'}",
            f"data.speaker={tmp_path / 'judge'}")
    log = _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "run", *args)
    assert "loss/disc" in log  # the console line is abridged; the run's scalars have every term
    logged = (tmp_path / "run" / "logs" / "scalars.jsonl").read_text()
    assert all(k in logged for k in ("loss/feature_matching", "loss/adversarial_cross", "loss/cross_speaker"))
    assert Checkpoint.load(tmp_path / "run" / "best" / "decoder").kind == "conversion"
    assert not (tmp_path / "run" / "best" / "discriminator").exists()
    # the discriminator is in the trainer state: re-running the finished command resumes and stops
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "run", *args)
    assert sorted(p.name for p in (tmp_path / "run").glob("step_*")) == ["step_00000002", "step_00000004"]


def test_bands_without_signal_give_the_discriminator_nothing_to_judge() -> None:
    """An 8 kHz crop's empty top bands: the reconstruction's are replaced by the real crop's, so
    they get no gradient (mel L1 skips them too), and a change there changes nothing."""
    torch.manual_seed(0)
    disc, real = MelDiscriminator((8, 16)), _textured(2, 2)
    pred = (real + torch.randn_like(real)).requires_grad_(True)
    bins = torch.tensor([80, 40])
    cfg = TrainConfig(adversarial_loss=1.0, feature_loss=1.0)
    terms = adversarial_terms(disc, torch.optim.SGD(disc.parameters(), 0.0), pred, real, cfg, {}, bins)
    (grad,) = torch.autograd.grad(terms, pred)
    assert grad[1, 40:].abs().max() == 0 and grad[1, :40].abs().max() > 0 and grad[0, 40:].abs().max() > 0
    moved = pred.detach().clone()
    moved[1, 40:] += 5.0
    again = adversarial_terms(disc, torch.optim.SGD(disc.parameters(), 0.0), moved, real, cfg, {}, bins)
    assert torch.allclose(again, terms.detach())


def test_cross_conversions_are_fakes_too_and_get_their_own_gradient() -> None:
    """With ``converted``, the discriminator's fakes include the conversions (its loss changes
    with them), and the decoder's term reaches them, weighted by ``adversarial_cross``, except in
    the bands an 8 kHz crop never had."""
    torch.manual_seed(0)
    disc, real = MelDiscriminator((8, 16)), _textured(2, 3)
    pred = real + 0.5 * torch.randn_like(real)
    converted = (real.mean(dim=1, keepdim=True).expand_as(real) + 0.1 * torch.randn_like(real)).requires_grad_(True)
    bins = torch.tensor([80, 40])
    frozen = torch.optim.SGD(disc.parameters(), 0.0)
    plain: dict[str, float] = {}
    alone = adversarial_terms(disc, frozen, pred, real, TrainConfig(adversarial_loss=1.0), plain, bins)
    cfg = TrainConfig(adversarial_loss=1.0, speaker_loss=0.3, adversarial_cross=0.5)
    logged: dict[str, float] = {}
    total = adversarial_terms(disc, frozen, pred, real, cfg, logged, bins, converted)
    assert logged["loss/disc"] != plain["loss/disc"] and "loss/adversarial_cross" in logged
    assert torch.allclose(total.detach(), alone + 0.5 * logged["loss/adversarial_cross"], atol=1e-5)
    (grad,) = torch.autograd.grad(total, converted)
    assert grad[1, 40:].abs().max() == 0 and grad[1, :40].abs().max() > 0 and grad[0, 40:].abs().max() > 0
