"""Tests for the vocoder's direct spectral losses and the reconstruction-only training step."""

from __future__ import annotations

import math

import pytest
import torch

from voicefake.audio.features import MelConfig
from voicefake.vocoder.losses import SpectralLoss, anti_wrap
from voicefake.vocoder.model import VocoderConfig
from voicefake.vocoder.training import TrainConfig, build_modules, build_task

HOP, N_FFT = 160, 640


def speech_like(seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 20 * torch.sin(2 * math.pi * 3 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 16000
    wav = sum(torch.sin(k * phase) / k for k in range(1, 20)) * 0.1
    return (wav + 0.003 * torch.randn(t.shape, generator=g)).unsqueeze(0)


def test_anti_wrap_is_the_angle_distance() -> None:
    x = torch.tensor([0.1, 2 * math.pi + 0.1, -2 * math.pi - 0.1, math.pi - 0.01, 4 * math.pi])
    assert torch.allclose(anti_wrap(x), torch.tensor([0.1, 0.1, 0.1, math.pi - 0.01, 0.0]), atol=1e-5)


def test_perfect_prediction_scores_zero_and_random_phase_does_not() -> None:
    loss = SpectralLoss(N_FFT, HOP)
    real = speech_like()
    spec = loss.stft(real)
    log_mag, phase = torch.log(spec.abs().clamp_min(1e-5)), torch.angle(spec)
    # phase shifted by whole turns is the same phase: anti-wrapping must not punish it
    phase = phase + 2 * math.pi * torch.randint(-2, 3, phase.shape)
    window = torch.hann_window(N_FFT)
    fake = torch.istft(torch.polar(spec.abs(), torch.angle(spec)), N_FFT, HOP, N_FFT, window,
                       center=True, length=real.shape[-1])
    good = loss(log_mag, phase, fake, real)
    assert good["mag"] < 1e-4 and good["phase"] < 1e-3 and good["consistency"] < 1e-3
    noisy = torch.rand(phase.shape, generator=torch.Generator().manual_seed(1)) * 2 * math.pi
    bad = loss(log_mag, noisy, fake, real)
    assert bad["phase"] > 2.0  # three terms, each ~pi/2 for unrelated phases
    assert bad["consistency"] > 10 * good["consistency"] + 0.1


def test_spectral_terms_need_the_vocos_head() -> None:
    cfg = TrainConfig(loss_weights={"mel": 1.0, "phase": 1.0}, segment_samples=1600)
    with pytest.raises(ValueError, match="vocos"):
        build_modules(VocoderConfig.hifigan_v3(), MelConfig(), cfg)


def test_unknown_loss_term_is_named() -> None:
    with pytest.raises(ValueError, match="unknown vocoder loss weight.*'phse'.*consistency"):
        TrainConfig(loss_weights={"phse": 1.0})


def test_reconstruction_only_step_trains_generator_and_skips_discriminator() -> None:
    weights = {"mel": 45.0, "mag": 15.0, "phase": 10.0, "consistency": 10.0, "adv": 0.0, "fm": 0.0}
    cfg = TrainConfig(loss_weights=weights, segment_samples=3200)
    task = build_task(VocoderConfig.tiny(), MelConfig(), cfg)
    disc_before = [p.detach().clone() for p in task.modules["discriminator"].parameters()]
    gen_before = [p.detach().clone() for p in task.modules["generator"].parameters()]
    out = task.train_step(task.modules, task.optimizers, speech_like(0.2).repeat(2, 1))
    assert {"loss/mel", "loss/mag", "loss/phase", "loss/consistency"} <= set(out)
    assert "loss/disc" not in out and "loss/adv" not in out
    assert all(torch.equal(a, b) for a, b in zip(disc_before, task.modules["discriminator"].parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(gen_before, task.modules["generator"].parameters(), strict=True))
    total = sum(weights[k] * out[f"loss/{k}"] for k in ("mel", "mag", "phase", "consistency"))
    assert out["loss/total"] == pytest.approx(total, rel=1e-4)


def test_eval_step_reports_the_spectral_terms_only_when_trained_with_them() -> None:
    from voicefake.vocoder.training import eval_step

    batch = speech_like(0.2)
    plain = build_task(VocoderConfig.tiny(), MelConfig(), TrainConfig(segment_samples=3200))
    with torch.no_grad():  # as the training loop calls it
        assert set(eval_step(plain.modules, batch)) == {"eval/mel_l1", "eval/mr_mel_l1"}
    cfg = TrainConfig(loss_weights={"mel": 1.0, "phase": 1.0}, segment_samples=3200)
    spectral = build_task(VocoderConfig.tiny(), MelConfig(), cfg)
    with torch.no_grad():
        out = eval_step(spectral.modules, batch)
    assert {"eval/mag", "eval/phase", "eval/consistency"} <= set(out)
    assert 0 < out["eval/phase"] < 3 * 3.1416


def test_forward_with_spectrum_matches_forward_and_needs_the_vocos_head() -> None:
    from voicefake.vocoder.model import Vocoder

    mel = torch.randn(1, 80, 21)
    voc = Vocoder(VocoderConfig.tiny(), MelConfig()).eval()
    with torch.no_grad():
        wav, log_mag, phase = voc(mel, spectrum=True)
        assert torch.equal(wav, voc(mel)) and log_mag.shape == phase.shape == (1, N_FFT // 2 + 1, 21)
    with pytest.raises(ValueError, match="vocos"):
        Vocoder(VocoderConfig.hifigan_v3(), MelConfig())(mel, spectrum=True)


def test_training_never_uses_the_phase_refinement() -> None:
    """A config whose checkpoints refine at inference trains and evaluates the network itself:
    the same weights give the same GAN-step losses and eval figures as with refinement off."""
    from voicefake.vocoder.training import eval_step

    batch = speech_like(0.2).repeat(2, 1)
    outs = []
    for iterations in (0, 3):
        torch.manual_seed(0)
        task = build_task(VocoderConfig.tiny().replace(phase_iterations=iterations), MelConfig(),
                          TrainConfig(segment_samples=3200))
        with torch.no_grad():
            evaluated = eval_step(task.modules, batch)
        torch.manual_seed(1)
        outs.append((task.train_step(task.modules, task.optimizers, batch), evaluated))
    (train0, eval0), (train3, eval3) = outs
    assert eval0 == pytest.approx(eval3)
    assert train0["loss/mel"] == pytest.approx(train3["loss/mel"], rel=1e-5)


def _saved_teacher(tmp_path, mel: MelConfig):  # type: ignore[no-untyped-def]
    from voicefake.checkpoint import Checkpoint
    from voicefake.vocoder.model import Vocoder

    torch.manual_seed(3)
    teacher = Vocoder(VocoderConfig.tiny(), mel).eval()
    Checkpoint.from_module(teacher, "vocoder", mel).save(tmp_path / "teacher")
    return teacher, tmp_path / "teacher"


def test_distillation_targets_the_refined_teacher_not_the_audio(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from voicefake.vocoder.training import eval_step, targets

    teacher, path = _saved_teacher(tmp_path, MelConfig())
    weights = {"mel": 45.0, "complex": 1.0, "consistency": 10.0, "adv": 0.0, "fm": 0.0}
    cfg = TrainConfig(loss_weights=weights, segment_samples=3200, teacher=str(path), teacher_phase_iterations=2)
    task = build_task(VocoderConfig.tiny(), MelConfig(), cfg)
    assert "teacher" not in task.modules  # run checkpoints do not carry it
    batch = speech_like(0.2).repeat(2, 1)
    mel = task.modules["features"](batch)
    with torch.no_grad():
        expected = teacher(mel, phase_iterations=2)
        assert torch.equal(targets(batch, mel, cfg, task.train_step.keywords["teacher"]), expected)
        assert torch.equal(targets(batch, mel, TrainConfig(), None), batch)
        # a student that is the teacher reproduces its raw output exactly
        raw = TrainConfig(loss_weights=weights, segment_samples=3200, teacher=str(path), teacher_phase_iterations=0)
        student = build_task(VocoderConfig.tiny(), MelConfig(), raw)
        student.modules["generator"].load_state_dict(teacher.state_dict())
        out = eval_step(student.modules, batch, raw, student.train_step.keywords["teacher"])
    assert out["eval/teacher_mr_mel_l1"] < 1e-6 < out["eval/mr_mel_l1"]
    assert {"eval/teacher_phase", "eval/teacher_mag", "eval/teacher_consistency"} <= set(out)
    # the training step compares with the teacher, not the audio: a student equal to the
    # teacher's network scores a zero mel loss on its first step against the unrefined teacher
    stepped = student.train_step(student.modules, student.optimizers, batch)
    assert stepped["loss/mel"] < 1e-6 < out["eval/mr_mel_l1"]
    assert math.isfinite(task.train_step(task.modules, task.optimizers, batch)["loss/total"])


def test_a_teacher_on_another_mel_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, path = _saved_teacher(tmp_path, MelConfig(n_mels=64))
    cfg = TrainConfig(segment_samples=3200, teacher=str(path))
    with pytest.raises(ValueError, match="another mel config"):
        build_task(VocoderConfig.tiny(), MelConfig(), cfg)
    with pytest.raises(ValueError, match="teacher_phase_iterations"):
        TrainConfig(teacher_phase_iterations=-1)
