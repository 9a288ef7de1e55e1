"""Tests for voicefake.vocoder.phase: matching the mel, consistent phase, the config switch."""

from __future__ import annotations

import math

import pytest
import torch

from voicefake.audio.features import MEL_16K_80, MEL_22K_80, MelConfig, MelSpectrogram, istft, stft
from voicefake.vocoder.model import Vocoder, VocoderConfig
from voicefake.vocoder.phase import context_frames, head_filterbank, match_mel, refine


def _speechy(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """Harmonics of a gliding pitch with a moving formant-like tilt, plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 140 + 40 * torch.sin(2 * math.pi * 1.5 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    wav = sum(torch.sin(k * phase) / k * (1 + 0.8 * torch.sin(2 * math.pi * (0.7 + 0.1 * k) * t))
              for k in range(1, 25))
    wav = wav + 0.01 * torch.randn(len(t), generator=generator)
    return (0.3 * wav / wav.abs().max()).float()


@pytest.mark.parametrize("mel_cfg, n_fft", [(MEL_16K_80, 640), (MEL_22K_80, 1024)])
def test_head_filterbank_gives_the_mel_of_the_signal(mel_cfg: MelConfig, n_fft: int) -> None:
    """The mel summed from the head's STFT grid is the signal's own mel (same scale)."""
    wav = _speechy(sample_rate=mel_cfg.sample_rate)
    reference = MelSpectrogram(mel_cfg)(wav)
    spec = stft(wav, n_fft, mel_cfg.hop_length, n_fft).abs()
    ours = torch.log((head_filterbank(mel_cfg, n_fft, n_fft) @ spec).clamp_min(mel_cfg.log_floor))
    voiced = reference > reference.max() - 6  # bands within 6 nepers of the loudest
    error = (ours - reference)[voiced].abs().mean().item()
    assert error < 0.12, error
    bias = (ours - reference)[voiced].mean().item()
    assert abs(bias) < 0.05, bias  # no level change


def test_match_mel_reaches_the_target_mel() -> None:
    filters = head_filterbank(MEL_16K_80, 640, 640)
    wav = _speechy()
    target = MelSpectrogram(MEL_16K_80)(wav)
    generator = torch.Generator().manual_seed(1)
    wrong = stft(wav, 640, 160, 640).abs() * torch.exp(torch.randn(321, 1, generator=generator))  # a coloured error
    def mel_error(mag: torch.Tensor) -> float:
        return (torch.log((filters @ mag).clamp_min(1e-5)) - target).abs().mean().item()
    before = mel_error(wrong)
    after = mel_error(match_mel(wrong, target, filters, 1e-5))
    assert before > 0.3 and after < 0.15 * before, (before, after)


def test_match_mel_keeps_bins_outside_every_filter() -> None:
    mel_cfg = MelConfig(f_min=300.0, f_max=6000.0)
    filters = head_filterbank(mel_cfg, 640, 640)
    outside = filters.sum(0) == 0
    assert outside[0] and outside[-1]
    mag = torch.rand(1, 321, 20) + 0.1
    out = match_mel(mag, torch.full((1, 80, 20), -3.0), filters, 1e-5)
    assert torch.equal(out[:, outside], mag[:, outside])
    assert not torch.equal(out[:, ~outside], mag[:, ~outside])


def _inconsistency(wav: torch.Tensor, mag: torch.Tensor) -> float:
    """How far the output's STFT magnitude is from the magnitude asked for (relative)."""
    got = stft(wav, 640, 160, 640).abs()[..., : mag.shape[-1]]
    return ((got - mag).norm() / mag.norm()).item()


def test_iterations_make_a_scrambled_phase_consistent() -> None:
    """The real magnitude with a random phase: each setting of more iterations gets closer to a
    signal whose STFT has that magnitude, and the mel of the output approaches the input mel."""
    wav = _speechy()
    mel = MelSpectrogram(MEL_16K_80)(wav)[None]
    mag = stft(wav, 640, 160, 640).abs()[None]
    generator = torch.Generator().manual_seed(2)
    scrambled = (torch.rand(mag.shape, generator=generator) * 2 - 1) * math.pi
    matched = match_mel(mag, mel, head_filterbank(MEL_16K_80, 640, 640), 1e-5)
    errors = [_inconsistency(refine(torch.log(mag), scrambled, mel, MEL_16K_80, 640, n)[0], matched)
              for n in (0, 4, 16)]
    assert errors[0] > 0.4 and errors[1] < 0.8 * errors[0] and errors[2] < 0.8 * errors[1], errors


def test_late_iterations_rematch_the_mel(monkeypatch: pytest.MonkeyPatch) -> None:
    """From REMATCH_FROM on, each iteration pulls the output's mel back to the input mel: after
    12 iterations from a scrambled phase it is closer than with the magnitude held throughout."""
    import voicefake.vocoder.phase as phase_module

    wav = _speechy()
    features = MelSpectrogram(MEL_16K_80)
    mel = features(wav)[None]
    mag = stft(wav, 640, 160, 640).abs()[None]
    scrambled = (torch.rand(mag.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1) * math.pi

    def mel_error() -> float:
        out = refine(torch.log(mag), scrambled, mel, MEL_16K_80, 640, 12)
        return (features(out) - mel[..., : features(out).shape[-1]]).abs().mean().item()

    rematched = mel_error()
    monkeypatch.setattr(phase_module, "REMATCH_FROM", 100)
    held = mel_error()
    assert rematched < 0.95 * held, (rematched, held)  # measured 0.102 vs 0.111


def test_the_real_phase_is_left_nearly_alone() -> None:
    """Started from the real STFT, the refinement keeps the signal (it is already consistent)."""
    wav = _speechy()
    mel = MelSpectrogram(MEL_16K_80)(wav)[None]
    spec = stft(wav, 640, 160, 640)[None]
    out = refine(torch.log(spec.abs().clamp_min(1e-7)), torch.angle(spec), mel, MEL_16K_80, 640, 8)[0]
    n = out.shape[-1]
    snr = 10 * torch.log10(wav[:n].pow(2).sum() / (wav[:n] - out).pow(2).sum()).item()
    assert snr > 15, snr


def test_config_and_call_switches() -> None:
    torch.manual_seed(0)
    plain = Vocoder(VocoderConfig.tiny(), MEL_16K_80).eval()
    refined = Vocoder(VocoderConfig.tiny().replace(phase_iterations=4), MEL_16K_80).eval()
    refined.load_state_dict(plain.state_dict())
    mel = torch.randn(1, 80, 60) - 4
    with torch.no_grad():
        assert torch.equal(refined(mel, phase_iterations=0), plain(mel))
        assert torch.equal(plain(mel, phase_iterations=4), refined(mel))
        assert not torch.allclose(refined(mel), plain(mel), atol=1e-4)
        # training-time spectrum output is never refined
        _, log_mag, phase = refined(mel, spectrum=True)
        assert torch.equal(phase, plain(mel, spectrum=True)[2])
    assert refined.receptive_field() == plain.receptive_field() + context_frames(640, 160, 4)
    with pytest.raises(ValueError, match="phase_iterations must be >= 0"):
        plain(mel, phase_iterations=-1)
    with pytest.raises(ValueError, match="must be >= 0"):
        VocoderConfig(phase_iterations=-2)
    with pytest.raises(ValueError, match="needs the vocos architecture"):
        VocoderConfig(architecture="hifigan", phase_iterations=2)
    hifigan = Vocoder(VocoderConfig(architecture="hifigan", upsample_rates=(10, 16), upsample_kernel_sizes=(20, 32),
                                    upsample_initial_channel=16, resblock_kernel_sizes=(3,),
                                    resblock_dilations=((1,),)), MEL_16K_80)
    with pytest.raises(ValueError, match="needs the vocos architecture"):
        hifigan(mel, phase_iterations=2)


@pytest.mark.parametrize("frames", [1, 2, 3, 5])
def test_very_short_inputs(frames: int) -> None:
    voc = Vocoder(VocoderConfig.tiny().replace(phase_iterations=3), MEL_16K_80).eval()
    with torch.no_grad():
        wav = voc(torch.randn(2, 80, frames) - 4)
    assert wav.shape == (2, (frames - 1) * 160) and torch.isfinite(wav).all()


def test_polar_and_with_magnitude_equal_the_torch_forms() -> None:
    """The fast complex helpers give torch.polar and torch.sgn(spec) * mag, zero bins included."""
    from voicefake.vocoder.phase import polar, with_magnitude

    generator = torch.Generator().manual_seed(3)
    mag = torch.rand(2, 321, 50, generator=generator) * 10
    phase = (torch.rand(2, 321, 50, generator=generator) - 0.5) * 4 * math.pi
    torch.testing.assert_close(polar(mag, phase), torch.polar(mag, phase), atol=1e-5, rtol=1e-5)
    spec = torch.complex(torch.randn(2, 321, 50, generator=generator), torch.randn(2, 321, 50, generator=generator))
    spec[0, 0, 0] = 0
    spec[1, 5, 7] = 1e-12  # small, but well above where the squared modulus underflows
    expected = torch.sgn(spec) * mag
    got = with_magnitude(spec, mag)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got[0, 0, 0] == 0


@pytest.mark.parametrize("n_fft, hop, frames", [
    (640, 160, 40),    # the bundled head: the direct path
    (1024, 256, 12),   # a 22 kHz head: the direct path
    (640, 160, 6),     # few frames: the reflect padding reaches across the whole signal
    (1000, 160, 30),   # the hop does not divide n_fft: istft() and stft() themselves
])
def test_consistency_projection_equals_istft_then_stft(n_fft: int, hop: int, frames: int) -> None:
    """The refinement's frame-major projection gives stft(istft(spec)) and istft(spec)."""
    from voicefake.vocoder.phase import _Consistency

    generator = torch.Generator().manual_seed(frames)
    shape = (2, n_fft // 2 + 1, frames)
    spec = torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))
    length = (frames - 1) * hop
    wav = istft(spec, n_fft, hop, n_fft, length)
    expected = stft(wav, n_fft, hop, n_fft)[..., :frames]
    projection = _Consistency(n_fft, hop, frames, spec.real)
    assert (projection.scale is None) == (n_fft % hop != 0)
    frame_major = spec.transpose(1, 2)
    torch.testing.assert_close(projection.waveform(frame_major), wav, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(projection(frame_major), expected.transpose(1, 2), atol=1e-4, rtol=1e-4)


def test_magnitude_equals_abs() -> None:
    from voicefake.vocoder.phase import magnitude

    spec = torch.randn(2, 321, 50, dtype=torch.complex64)
    spec[0, 0, 0] = 0
    torch.testing.assert_close(magnitude(spec), spec.abs())
    assert magnitude(spec)[0, 0, 0] == 0


def test_with_magnitude_has_a_finite_gradient_at_a_zero_bin() -> None:
    from voicefake.vocoder.phase import with_magnitude

    parts = torch.randn(1, 5, 4, 2)
    parts[0, 1, 2] = 0
    parts.requires_grad_(True)
    out = with_magnitude(torch.view_as_complex(parts), torch.rand(1, 5, 4))
    (grad,) = torch.autograd.grad(torch.view_as_real(out).sum(), parts)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("mel_cfg", [MEL_16K_80, MelConfig(f_min=300.0, f_max=6000.0), MEL_22K_80])
def test_banded_filters_equal_the_full_products(mel_cfg: MelConfig) -> None:
    """The refinement's blocked filterbank gives mag @ filters.T and ratio @ weights, bins outside
    every filter included (their spread is 0)."""
    from voicefake.vocoder.phase import _Bands

    n_fft = 640 if mel_cfg.sample_rate == 16000 else 1024
    filters = head_filterbank(mel_cfg, n_fft, n_fft)
    weights = filters / filters.sum(0, keepdim=True).clamp_min(1e-8)
    generator = torch.Generator().manual_seed(4)
    mag = torch.rand(2, 30, filters.shape[1], generator=generator)
    ratio = torch.randn(2, 30, filters.shape[0], generator=generator)
    for blocks in (1, 4, 7):
        bands = _Bands(filters, blocks)
        torch.testing.assert_close(bands.sum(mag), mag @ filters.T)
        torch.testing.assert_close(bands.spread(ratio), ratio @ weights)
