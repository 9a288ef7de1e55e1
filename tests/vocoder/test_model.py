"""Tests for voicefake.vocoder.model and inference: shapes, lengths, chunked decoding, API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicefake.audio.features import (
    MEL_16K_80,
    MEL_22K_80,
    MelConfig,
    MelSpectrogram,
    num_frames,
    num_samples,
)
from voicefake.vocoder.inference import vocode_chunked
from voicefake.vocoder.model import Vocoder, VocoderConfig

# small HiFi-GAN configs whose upsampling rates multiply to the mel hop (160 or 256)
HIFIGAN_TINY = VocoderConfig(
    architecture="hifigan", upsample_rates=(10, 16), upsample_kernel_sizes=(20, 32),
    upsample_initial_channel=16, resblock_kernel_sizes=(3, 7), resblock_dilations=((1, 3), (1, 3)),
)
HIFIGAN_V3_TINY = VocoderConfig(
    architecture="hifigan", upsample_rates=(5, 4, 8), upsample_kernel_sizes=(10, 8, 16),
    upsample_initial_channel=16, resblock="2", resblock_kernel_sizes=(3, 5, 7),
    resblock_dilations=((1, 2), (2, 6), (3, 12)),
)

MODELS = {
    "vocos": (VocoderConfig.tiny(), MEL_16K_80),
    "vocos_22k": (VocoderConfig(dim=16, intermediate_dim=32, num_layers=2, head_n_fft=1024), MEL_22K_80),
    "hifigan": (HIFIGAN_TINY, MEL_16K_80),
    "hifigan_v3": (HIFIGAN_V3_TINY, MEL_16K_80),
    "vocos_accumulate": (VocoderConfig.tiny().replace(phase_head="accumulate"), MEL_16K_80),
    "vocos_refined": (VocoderConfig.tiny().replace(phase_iterations=3), MEL_16K_80),
    "vocos_accumulate_refined": (VocoderConfig.tiny().replace(phase_head="accumulate", phase_iterations=2), MEL_16K_80),
    "vocos_rematched": (VocoderConfig.tiny().replace(phase_iterations=7), MEL_16K_80),
}


def _vocoder(name: str) -> Vocoder:
    torch.manual_seed(0)
    config, mel = MODELS[name]
    voc = Vocoder(config, mel).eval()
    advance = getattr(voc.generator, "advance", None)
    if advance is not None:  # starts at zero; give the running phase sum something to carry
        torch.nn.init.normal_(advance.weight, std=0.3)
        torch.nn.init.normal_(advance.bias, std=1.0)
    return voc


def _random_mel(mel: MelConfig, frames: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, mel.n_mels, frames, generator=generator) - 4.0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_length_matches_num_samples(name: str) -> None:
    voc = _vocoder(name)
    mel = MODELS[name][1]
    with torch.no_grad():
        for frames in (1, 2, 3, 7, 16, 101):
            wav = voc(_random_mel(mel, frames, batch=2))
            assert wav.shape == (2, num_samples(frames, mel)), f"F={frames}"
            assert torch.isfinite(wav).all() and (wav.abs() <= 1.0).all()


@pytest.mark.parametrize("name", ["vocos", "hifigan"])
def test_round_trip_lengths_with_features(name: str) -> None:
    """wav of T samples -> mel -> vocoder gives T // hop * hop samples."""
    voc = _vocoder(name)
    mel_cfg = MODELS[name][1]
    features = MelSpectrogram(mel_cfg)
    with torch.no_grad():
        for length in (1, 159, 160, 161, 1601, 4000):
            mel = features(torch.randn(1, length) * 0.1)
            assert mel.shape[-1] == num_frames(length, mel_cfg)
            assert voc(mel).shape[-1] == length // mel_cfg.hop_length * mel_cfg.hop_length


@pytest.mark.parametrize("name", ["vocos", "hifigan", "hifigan_v3", "vocos_accumulate", "vocos_refined",
                                  "vocos_accumulate_refined", "vocos_rematched"])
@pytest.mark.parametrize("chunk_frames", [9, 50, 113])
def test_chunked_equals_whole(name: str, chunk_frames: int) -> None:
    voc = _vocoder(name)
    mel = _random_mel(MODELS[name][1], 263, batch=2, seed=3)
    with torch.no_grad():
        whole = voc(mel)
        chunked = vocode_chunked(voc, mel, chunk_frames=chunk_frames)
    assert chunked.shape == whole.shape
    error = (chunked - whole).abs().max().item()
    assert error < 1e-5, f"{name} chunk {chunk_frames}: max error {error:.2e}"


@pytest.mark.parametrize("name", ["vocos_refined", "vocos_accumulate_refined", "hifigan"])
@pytest.mark.parametrize("chunk_frames", [9, 113])
def test_chunked_equals_whole_in_bfloat16(name: str, chunk_frames: int) -> None:
    """bfloat16 products round each element the same way in a chunk as in the whole input."""
    voc = _vocoder(name)
    mel = _random_mel(MODELS[name][1], 263, batch=2, seed=3)
    with torch.no_grad():
        whole = vocode_chunked(voc, mel, chunk_frames=10_000, dtype=torch.bfloat16)
        chunked = vocode_chunked(voc, mel, chunk_frames=chunk_frames, dtype=torch.bfloat16)
        reference = vocode_chunked(voc, mel, chunk_frames=10_000)
    assert chunked.dtype == whole.dtype == torch.float32
    error = (chunked - whole).abs().max().item()
    assert error < 1e-5, f"{name} chunk {chunk_frames}: max error {error:.2e}"
    assert (whole - reference).abs().max().item() > 0  # bfloat16 did run (fidelity: the data test)


def test_refinement_stays_float32_under_autocast() -> None:
    voc = _vocoder("vocos_rematched")
    mel = _random_mel(MODELS["vocos_rematched"][1], 120, seed=5)
    gen = voc.generator
    with torch.no_grad():
        log_mag, phase = gen.spectrum(mel)
        plain = gen.synthesize(log_mag, phase, mel=mel, phase_iterations=6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = gen.synthesize(log_mag, phase, mel=mel, phase_iterations=6)
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)


def test_accumulating_head_starts_as_the_frame_head() -> None:
    """Its advance layer starts at zero, so a "frame" model's weights give the same output."""
    torch.manual_seed(0)
    frame = Vocoder(VocoderConfig.tiny(), MEL_16K_80).eval()
    accumulate = Vocoder(VocoderConfig.tiny().replace(phase_head="accumulate"), MEL_16K_80).eval()
    missing, unexpected = accumulate.load_state_dict(frame.state_dict(), strict=False)
    assert sorted(missing) == ["generator.advance.bias", "generator.advance.weight"] and not unexpected
    mel = _random_mel(MEL_16K_80, 40)
    with torch.no_grad():
        assert torch.allclose(accumulate(mel), frame(mel), atol=1e-6)


@pytest.mark.parametrize("phase_head, can_hold_pitch", [("frame", False), ("accumulate", True)])
def test_steady_input_gives_a_steady_tone_only_with_accumulated_phase(phase_head: str, can_hold_pitch: bool) -> None:
    """A constant mel gives the same head output every frame. With a per-frame phase advance
    of 2 pi k hop / n_fft the output is a tone at bin k's frequency (here 225 Hz, bin 9 of a
    640-point STFT at 16 kHz); a frame head repeats one phase every hop (10 ms) and can only
    make multiples of 100 Hz, which is why the bundled model turns 220 Hz into 200 Hz."""
    voc = Vocoder(VocoderConfig.tiny().replace(phase_head=phase_head), MEL_16K_80).eval()
    gen = voc.generator
    bins, k = gen.n_fft // 2 + 1, 9
    with torch.no_grad():
        for p in gen.parameters():
            p.zero_()
        gen.head.bias[:bins] = -20.0
        gen.head.bias[k] = 3.0  # one loud bin
        if gen.advance is not None:
            gen.advance.bias[k] = 2 * np.pi * k * gen.hop_length / gen.n_fft
        out = voc(torch.zeros(1, 80, 201))[0].numpy()
    spectrum = np.abs(np.fft.rfft(out[4000:28000] * np.hanning(24000)))
    peak_hz = np.argmax(spectrum) * 16000 / 24000
    assert (abs(peak_hz - 225) < 2) == can_hold_pitch, peak_hz


def test_chunked_short_input_and_bad_chunk() -> None:
    voc = _vocoder("vocos")
    mel = _random_mel(MEL_16K_80, 5)
    with torch.no_grad():
        assert torch.equal(vocode_chunked(voc, mel, chunk_frames=2), voc(mel))
    with pytest.raises(ValueError, match="chunk_frames must be positive"):
        vocode_chunked(voc, mel, chunk_frames=0)


def test_hifigan_rates_must_multiply_to_hop() -> None:
    with pytest.raises(ValueError, match=r"multiply to 128, but the mel hop_length is 160"):
        Vocoder(HIFIGAN_TINY.replace(upsample_rates=(8, 16)), MEL_16K_80)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"architecture": "wavenet"}, "architecture"),
        ({"resblock": "3"}, "resblock"),
        ({"upsample_rates": (10,)}, "differ in length"),
        ({"phase_head": "integrate"}, "phase_head"),
    ],
)
def test_config_validation(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VocoderConfig().replace(**changes)


def test_vocos_head_must_cover_hop() -> None:
    with pytest.raises(ValueError, match="head_n_fft"):
        Vocoder(VocoderConfig.tiny().replace(head_n_fft=128), MEL_16K_80)


def test_vocoder_needs_mel_config() -> None:
    with pytest.raises(ValueError, match="MelConfig"):
        Vocoder(VocoderConfig.tiny())


@pytest.mark.parametrize("shape", [(80, 10), (1, 40, 10), (1, 1, 80, 10)])
def test_rejects_wrong_mel_shape(shape: tuple[int, ...]) -> None:
    voc = _vocoder("vocos")
    with pytest.raises(ValueError, match=r"expected mel of shape \(B, 80, F\)"):
        voc(torch.zeros(shape))


def test_named_sizes_build() -> None:
    assert VocoderConfig.small() == VocoderConfig()
    assert VocoderConfig.hifigan_v1().architecture == "hifigan"
    v3 = Vocoder(VocoderConfig.hifigan_v3(), MEL_16K_80)
    assert v3.generator.hop_length == 160
    tiny = Vocoder(VocoderConfig.tiny(), MEL_16K_80)
    assert sum(p.numel() for p in tiny.parameters()) < 50_000


def test_gradients_flow_to_all_parameters() -> None:
    voc = Vocoder(VocoderConfig.tiny(), MEL_16K_80)
    voc(_random_mel(MEL_16K_80, 12)).pow(2).mean().backward()
    missing = [n for n, p in voc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


# ----------------------------------------------------------------------------- api


def test_api_vocode_lengths() -> None:
    from voicefake import api

    mel = _random_mel(MEL_16K_80, 31)[0]
    wav = api.vocode(mel)
    assert wav.shape == (30 * 160,) and wav.dtype == torch.float32
    batch = api.vocode(_random_mel(MEL_16K_80, 31, batch=2), chunk_frames=8)
    assert batch.shape == (2, 30 * 160)
    assert (batch[0] - api.vocode(_random_mel(MEL_16K_80, 31, batch=2)[0])).abs().max() < 1e-4
    with pytest.raises(ValueError, match="expected mel of shape"):
        api.vocode(torch.zeros(40, 10))
    broken = mel.clone()
    broken[3, 5] = float("nan")
    with pytest.raises(ValueError, match="the mel has 1 non-finite values"):
        api.vocode(broken)


@pytest.mark.parametrize("length", [160, 4001, 8000])
def test_api_resynthesize_lengths(length: int) -> None:
    from voicefake import api

    t = np.arange(length) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    out, sample_rate = api.resynthesize(wav)
    assert sample_rate == 16000
    assert out.dtype == np.float32 and out.shape == (length // 160 * 160,)
    assert np.isfinite(out).all()


def test_api_resynthesize_from_file_resamples(tmp_path) -> None:  # noqa: ANN001
    from voicefake import api
    from voicefake.audio.io import write_audio

    t = np.arange(8000) / 8000
    path = write_audio(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 200 * t), 8000)
    out, sample_rate = api.resynthesize(path)
    assert sample_rate == 16000 and out.shape == (16000,)
    with pytest.raises(ValueError):
        api.resynthesize(np.zeros((2, 100), np.float32))


@pytest.mark.xfail(
    reason="a steady tone's mel is the same in every frame, and the Vocos head predicts each "
    "frame's phase from its mel alone, so the output repeats every hop: 220 Hz comes back at "
    "200 Hz (still so after the session-4 phase training); needs a head that accumulates phase "
    "over frames (docs/benchmarks/vocoder.md). The default's 12 refinement iterations (0.4.1) "
    "bring 220 Hz and 440 Hz back but not 110 Hz (100 Hz) or 330 Hz (340 Hz), so this one may pass",
    strict=False,
)
def test_bundled_vocoder_reconstructs_a_tone() -> None:
    """The shipped model turns a tone's mel back into that tone (pitch within 2 %)."""
    from voicefake import api

    t = np.arange(16000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out, _ = api.resynthesize(wav)
    spectrum = np.abs(np.fft.rfft(out[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 220) < 0.02 * 220
    assert 0.1 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(wav**2)) < 10


@pytest.mark.data
def test_bundled_vocoder_on_unseen_speakers(data_root) -> None:  # noqa: ANN001
    """Copy-synthesis log-mel L1 on held-out speakers (never trained on): the first 3 s of one
    utterance of each of the first four LibriSpeech test-other speakers. Measured 0.077 with
    the bundled default (0.4.1: 0.4.0's weights, 12 phase-refinement iterations; 0.079 on the
    benchmark's 38 utterances), 0.159 with one iteration (0.4.0's default); the network's STFT
    alone gives about 0.5 and the session-1 model 0.65. The bound sits above 0.077 with room for
    other CPUs' arithmetic, and below 8 iterations' 0.094 on the benchmark, so a default that
    loses refinement iterations or a regression of the shipped weights fails."""
    from voicefake import api
    from voicefake.audio.io import load_audio
    from voicefake.data.manifests import read_manifest

    picked: dict[str, object] = {}
    for row in read_manifest(data_root / "manifest.csv"):
        if "/test-other/" in row.path and row.label == "real" and row.speaker not in picked:
            picked[row.speaker] = row
    rows = [picked[k] for k in sorted(picked)][:4]
    assert len(rows) == 4, "the shared data should hold LibriSpeech test-other speakers"
    features = MelSpectrogram(MEL_16K_80)
    distances: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for row in rows:
        wav = load_audio(data_root / row.path, 16000)[: 16000 * 3]
        for precision, found in distances.items():
            out, _ = api.resynthesize(wav, precision=precision)
            assert out.shape == (wav.size // 160 * 160,)
            real, fake = features(torch.from_numpy(wav[: out.size])), features(torch.from_numpy(out))
            found.append(float((real - fake).abs().mean()))
    assert np.mean(distances["float32"]) < 0.09, distances
    # bfloat16 products (the default where the CPU has them) cost no measurable fidelity
    assert abs(np.mean(distances["bfloat16"]) - np.mean(distances["float32"])) < 0.01, distances
