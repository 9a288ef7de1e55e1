"""Tests for voicefake.audio.features: the mel against librosa, frame arithmetic, LFCC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from voicefake.audio.features import (
    LFCC,
    MEL_16K_40,
    MEL_16K_80,
    MEL_22K_80,
    MEL_24K_100,
    PRESETS,
    LinearSpectrogram,
    MelConfig,
    MelSpectrogram,
    band_bins,
    dct_matrix,
    mel_filterbank,
    num_frames,
    num_samples,
)

# Tolerance of the mel against librosa: max |ours - librosa| relative to the peak of the
# librosa mel (measured ~3e-7 in float32; the filterbank itself agrees to ~7e-8).
MEL_RTOL = 1e-4


def _noise(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def librosa():  # noqa: ANN201 - the module
    """librosa, warmed up once: its first call compiles (seconds), which is not the test."""
    module = pytest.importorskip("librosa")
    module.feature.melspectrogram(y=np.zeros(2048, np.float32), sr=16000)
    return module


def _librosa_mel(librosa, wav: np.ndarray, mel: MelConfig) -> np.ndarray:  # noqa: ANN001
    return librosa.feature.melspectrogram(
        y=wav, sr=mel.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length,
        win_length=mel.win_length, window="hann", center=mel.center, pad_mode="reflect",
        power=mel.power, n_mels=mel.n_mels, fmin=mel.f_min, fmax=mel.f_max,
        htk=mel.mel_scale == "htk", norm="slaney" if mel.norm == "slaney" else None,
    )


CONFIGS = {
    "mel_16k_80": MEL_16K_80,
    "mel_16k_40": MEL_16K_40,
    "mel_22k_80": MEL_22K_80,
    "mel_24k_100": MEL_24K_100,
    "htk_nonorm": MEL_16K_80.replace(mel_scale="htk", norm="none"),
    "power2_fmin": MEL_16K_80.replace(power=2.0, f_min=60.0, f_max=7600.0),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_mel_matches_librosa(librosa, name: str) -> None:  # noqa: ANN001
    mel = CONFIGS[name]
    wav = _noise(0.6, mel.sample_rate)
    ref = _librosa_mel(librosa, wav, mel)
    ours = torch.exp(MelSpectrogram(mel)(torch.from_numpy(wav))).numpy()
    assert ours.shape == ref.shape == (mel.n_mels, num_frames(wav.size, mel))
    # below the log floor ours is clamped; compare where librosa is above it
    ref_floored = np.maximum(ref, mel.log_floor)
    err = np.abs(ours - ref_floored).max() / ref.max()
    assert err < MEL_RTOL, f"{name}: relative max error {err:.2e} >= {MEL_RTOL}"


@pytest.mark.parametrize("name", ["mel_16k_80", "htk_nonorm", "mel_24k_100"])
def test_filterbank_matches_librosa(librosa, name: str) -> None:  # noqa: ANN001
    mel = CONFIGS[name]
    ref = librosa.filters.mel(
        sr=mel.sample_rate, n_fft=mel.n_fft, n_mels=mel.n_mels, fmin=mel.f_min, fmax=mel.f_max,
        htk=mel.mel_scale == "htk", norm="slaney" if mel.norm == "slaney" else None,
    )
    ours = mel_filterbank(mel).numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-6 * ref.max()


def test_presets_registry_and_batch_shape() -> None:
    assert PRESETS["mel_16k_80"] is MEL_16K_80 and len(PRESETS) == 4
    wav = torch.from_numpy(np.stack([_noise(0.2, 16000, s) for s in range(3)]))
    out = MelSpectrogram(MEL_16K_40)(wav)
    assert out.shape == (3, 40, num_frames(wav.shape[-1], MEL_16K_40))
    assert out.dtype == torch.float32
    single = MelSpectrogram(MEL_16K_40)(wav[1])
    assert (single - out[1]).abs().max() < 1e-5


def test_filters_are_non_persistent_buffers() -> None:
    module = MelSpectrogram(MEL_16K_80)
    assert dict(module.state_dict()) == {}
    names = {name for name, _ in module.named_buffers()}
    assert {"filters", "window"} <= names


# ----------------------------------------------------------------------------- frames

LENGTHS = [1, 2, 79, 80, 159, 160, 161, 319, 320, 400, 511, 512, 513, 1023, 1024, 1025,
           1600, 1601, 4799, 16000]


@pytest.mark.parametrize("mel", [MEL_16K_80, MEL_16K_40, MEL_22K_80], ids=lambda m: f"{m.n_fft}-{m.hop_length}")
def test_num_frames_equals_actual_frames(mel: MelConfig) -> None:
    module = MelSpectrogram(mel)
    for length in LENGTHS:
        wav = torch.from_numpy(_noise(length / mel.sample_rate + 1e-9, mel.sample_rate)[:length])
        assert wav.shape[-1] == length
        out = module(wav)
        assert out.shape == (mel.n_mels, num_frames(length, mel)), f"T={length}"
        assert torch.isfinite(out).all(), f"T={length}"


def test_tiny_input_frames_and_values() -> None:
    """Inputs shorter than n_fft // 2 do not crash and keep 1 + T // hop frames."""
    module = MelSpectrogram(MEL_16K_80)
    assert module(torch.zeros(0)).shape == (80, 1)
    short = module(torch.full((100,), 0.5))
    assert short.shape == (80, 1)
    assert short.max() > np.log(MEL_16K_80.log_floor) + 1  # real energy, not only the floor
    assert module(torch.randn(2, 161)).shape == (2, 80, 2)


def test_exact_hop_boundaries() -> None:
    mel = MEL_16K_80
    hop = mel.hop_length
    assert num_frames(hop, mel) == 2
    assert num_frames(hop - 1, mel) == 1
    assert num_frames(hop + 1, mel) == 2
    assert num_frames(0, mel) == 1
    assert num_frames(16000, mel) == 101


@pytest.mark.parametrize("length", [0, 1, 159, 160, 161, 1000, 16000, 16001])
def test_num_samples_inverts_num_frames(length: int) -> None:
    for mel in (MEL_16K_80, MEL_22K_80, MEL_24K_100):
        hop = mel.hop_length
        assert num_samples(num_frames(length, mel), mel) == length // hop * hop
    assert num_samples(0, MEL_16K_80) == 0
    assert num_samples(1, MEL_16K_80) == 0


def test_num_frames_not_centered() -> None:
    mel = MEL_16K_80.replace(center=False)
    module = MelSpectrogram(mel)
    for length in (1024, 1025, 1183, 1184, 4000):
        out = module(torch.randn(length))
        assert out.shape[-1] == num_frames(length, mel), f"T={length}"
    assert num_frames(100, mel) == 0


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sample_rate": 0}, "must be > 0"),
        ({"hop_length": -1}, "must be > 0"),
        ({"n_mels": 0}, "must be > 0"),
        ({"win_length": 2048}, "win_length <= n_fft"),
        ({"win_length": 0}, "win_length <= n_fft"),
        ({"f_max": 9000.0}, "f_max <= sample_rate/2"),
        ({"f_min": 8000.0}, "f_min < f_max"),
        ({"f_min": -1.0}, "0 <= f_min"),
        ({"mel_scale": "mel"}, "mel_scale"),
        ({"norm": "l2"}, "norm"),
        ({"power": 1.5}, "power"),
    ],
)
def test_mel_config_validation(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MEL_16K_80.replace(**changes)


def test_mel_config_frozen_and_replace() -> None:
    with pytest.raises(AttributeError):
        MEL_16K_80.n_mels = 40  # type: ignore[misc]
    other = MEL_16K_80.replace(n_mels=64)
    assert other.n_mels == 64 and MEL_16K_80.n_mels == 80


# ----------------------------------------------------------------------------- linear / LFCC

def test_linear_spectrogram_and_lfcc_on_silence() -> None:
    wav = torch.zeros(2, 4000)
    spec = LinearSpectrogram()(wav)
    assert spec.shape == (2, 257, 1 + 4000 // 160)
    assert torch.isfinite(spec).all()
    lfcc = LFCC(n_filters=60, n_lfcc=20)(wav)
    assert lfcc.shape == (2, 20, 1 + 4000 // 160)
    assert torch.isfinite(lfcc).all()


@pytest.mark.parametrize("length", [50, 160, 257, 400, 1601])
def test_linear_and_lfcc_frames(length: int) -> None:
    wav = torch.randn(length)
    assert LinearSpectrogram()(wav).shape == (257, 1 + length // 160)
    out = LFCC(n_lfcc=13)(wav)
    assert out.shape == (13, 1 + length // 160)
    assert torch.isfinite(out).all()


def test_lfcc_distinguishes_signals() -> None:
    tone = torch.from_numpy(_noise(0.3, 16000))
    noise = torch.randn(tone.shape[0]) * 0.1
    lfcc = LFCC()
    assert (lfcc(tone) - lfcc(noise)).abs().mean() > 0.1


def test_dct_matrix_orthonormal() -> None:
    # torch.testing.assert_close is avoided: its first call costs seconds of imports
    square = dct_matrix(32, 32).double()
    assert (square @ square.T - torch.eye(32, dtype=torch.float64)).abs().max() < 1e-6
    rect = dct_matrix(60, 20).double()
    assert rect.shape == (20, 60)
    assert (rect @ rect.T - torch.eye(20, dtype=torch.float64)).abs().max() < 1e-6
    scipy_fft = pytest.importorskip("scipy.fft")
    x = np.random.default_rng(0).standard_normal(32)
    np.testing.assert_allclose(square.numpy() @ x, scipy_fft.dct(x, norm="ortho"), atol=1e-5)


# ----------------------------------------------------------------------------- precision / devices

def test_float32_under_cpu_autocast() -> None:
    module = MelSpectrogram(MEL_16K_80)
    wav = torch.from_numpy(_noise(0.25, 16000))
    reference = module(wav)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(wav)
        out_bf16_input = module(wav.bfloat16())
    assert out.dtype == torch.float32 and out_bf16_input.dtype == torch.float32
    assert (out - reference).abs().max() < 1e-5
    # a bf16 waveform loses precision itself, but the mel stays close
    assert (out_bf16_input - reference).abs().mean() < 0.05


@pytest.mark.gpu
def test_cpu_and_cuda_agree() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    wav = torch.from_numpy(_noise(1.0, 16000))
    for mel in (MEL_16K_80, MEL_16K_40):
        cpu = MelSpectrogram(mel)(wav)
        gpu = MelSpectrogram(mel).to("cuda")(wav.cuda()).cpu()
        # compare in the linear domain relative to the peak, and the log where energy is real
        err = (gpu.exp() - cpu.exp()).abs().max() / cpu.exp().max()
        assert err < MEL_RTOL


def test_band_bins_are_the_mel_bands_below_the_bandwidth() -> None:
    """The bands counted have no filter weight above the bandwidth; the next one does."""
    mel = MEL_16K_80
    bank = mel_filterbank(mel)
    hz = torch.linspace(0, mel.sample_rate / 2, bank.shape[1])
    assert band_bins(mel, mel.sample_rate / 2) == mel.n_mels
    for bandwidth in (3400.0, 4000.0):
        n = band_bins(mel, bandwidth)
        assert 0 < n < mel.n_mels
        assert bank[:n, hz > bandwidth + 8].abs().max() == 0
        assert bank[n, hz >= bandwidth].max() > 0
    assert band_bins(mel, 3400.0) < band_bins(mel, 4000.0)


@pytest.mark.parametrize("n_fft, hop, win, frames", [
    (640, 160, 640, 101),   # the vocoder head
    (1024, 256, 1024, 40),
    (512, 128, 400, 9),     # a window shorter than the frame, centred in it
    (640, 160, 640, 3),     # fewer frames than n_fft // hop
    (1024, 160, 640, 20),   # hop does not divide n_fft: torch.istft itself
])
@pytest.mark.parametrize("batched", [True, False])
def test_istft_equals_torch_istft(n_fft: int, hop: int, win: int, frames: int, batched: bool) -> None:
    """The overlap-add fast path gives torch.istft's waveform, and its gradient."""
    from voicefake.audio.features import istft

    generator = torch.Generator().manual_seed(n_fft + frames)
    shape = (2, n_fft // 2 + 1, frames) if batched else (n_fft // 2 + 1, frames)
    spec = torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))
    spec.requires_grad_(True)
    length = (frames - 1) * hop
    window = torch.hann_window(win)
    expected = torch.istft(spec, n_fft, hop, win, window, center=True, length=length)
    got = istft(spec, n_fft, hop, win, length)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    weights = torch.randn(expected.shape, generator=generator)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), spec)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), spec)
    torch.testing.assert_close(grad_got, grad_expected, atol=1e-6, rtol=1e-5)


def test_istft_pads_a_length_past_the_last_frame_with_zeros() -> None:
    """Asked for more samples than the frames cover, it zero-pads like torch.istft."""
    from voicefake.audio.features import istft

    spec = torch.randn(321, 5, dtype=torch.complex64)
    with pytest.warns(UserWarning):
        expected = torch.istft(spec, 640, 160, 640, torch.hann_window(640), center=True, length=2000)
    got = istft(spec, 640, 160, 640, 2000)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert got[-200:].abs().max() == 0


def test_istft_refuses_a_framing_that_leaves_gaps() -> None:
    """Windows that do not cover every sample: one clear error, as torch.istft gives."""
    from voicefake.audio.features import istft

    spec = torch.randn(1, 513, 20, dtype=torch.complex64)
    with pytest.raises(ValueError, match="no frame covers"):
        istft(spec, 1024, 512, 300, 19 * 512)


def _harmonic(seconds: float = 2.0, f0: float = 150.0) -> torch.Tensor:
    t = torch.arange(int(seconds * 16000)) / 16000
    phase = 2 * math.pi * torch.cumsum(f0 * (1 + 0.05 * torch.sin(2 * math.pi * 3 * t)), 0) / 16000
    wav = sum(torch.sin(k * phase) / k for k in range(1, 30))
    return 0.05 * wav * (0.55 + 0.45 * torch.sin(2 * math.pi * 4 * t)) + 0.001 * torch.randn(t.shape)


def test_mel_reanalysis_follows_the_target_analysis_up_to_a_band_offset() -> None:
    from voicefake.audio.features import MEL_16K_40, MelReanalysis

    torch.manual_seed(0)
    wav = _harmonic()
    m80, m40 = MelSpectrogram(MEL_16K_80)(wav), MelSpectrogram(MEL_16K_40)(wav)
    mapped = MelReanalysis(MEL_16K_80, MEL_16K_40)(m80[None])[0]
    assert mapped.shape == m40.shape
    diff = mapped - m40
    # measured 0.81 raw and 0.07 once each band's constant offset is removed
    assert (diff - diff.mean(dim=1, keepdim=True)).abs().mean() < 0.15 < diff.abs().mean()
    same = MelReanalysis(MEL_16K_80, MEL_16K_80)(m80[None])[0]
    assert (same - m80).abs().mean() < 0.1  # measured 0.047 (the clamp at zero of the spread bins)


def test_mel_reanalysis_is_differentiable_and_refuses_other_framings() -> None:
    from voicefake.audio.features import MEL_16K_40, MEL_22K_80, MelReanalysis

    mel = torch.zeros(1, 80, 5, requires_grad=True)
    MelReanalysis(MEL_16K_80, MEL_16K_40)(mel).sum().backward()
    assert mel.grad is not None and torch.isfinite(mel.grad).all() and mel.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="22050 Hz / hop 256 mel .* frames would not line up"):
        MelReanalysis(MEL_22K_80, MEL_16K_40)


def test_mel_reanalysis_of_a_diverged_mel_stays_finite() -> None:
    """A decoder that diverges (a log-mel of 250 in one frame) must not turn the speaker term NaN:
    exp overflowed to inf there, and inf - inf in the pseudo-inverse made NaN (session 37)."""
    from voicefake.audio.features import MEL_16K_40, MelReanalysis

    to_40 = MelReanalysis(MEL_16K_80, MEL_16K_40)
    mel = torch.full((1, 80, 5), -5.0)
    sane = to_40(mel)
    mel[0, 10:20, 2] = 250.0
    mel.requires_grad_(True)
    out = to_40(mel)
    out.sum().backward()
    assert torch.isfinite(out).all() and mel.grad is not None and torch.isfinite(mel.grad).all()
    assert torch.equal(out[..., [0, 1, 3, 4]], sane[..., [0, 1, 3, 4]])  # other frames unchanged
    assert mel.grad[0, 10:20, 2].abs().max() == 0  # the capped values get no gradient
