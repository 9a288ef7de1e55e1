"""Content encoder, decoder, voice profiles, pitch and kNN matching: behaviour on generated audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voicefake.audio.features import MEL_16K_80, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.conversion.decoder_training import DecoderCrops, band_l1, relative_pitch
from voicefake.conversion.finetune import finetune_decoder, with_decoder
from voicefake.conversion.inference import (
    adapt_embedding,
    build_profile,
    convert_mel,
    long_term_spectrum,
    match_global_variance,
    match_long_term_spectrum,
    match_spectra,
    signal_bands,
    spectral_keys,
    voiced_weight,
)
from voicefake.conversion.model import (
    ContentEncoder,
    ContentEncoderConfig,
    ConversionDecoder,
    DecoderConfig,
    cepstral_content,
    contrast_embedding,
)
from voicefake.conversion.training import (
    collate,
    ctc_loss,
    distill_loss,
    greedy_phones,
    phone_error_rate,
    time_mask,
    warp_mel,
)
from voicefake.conversion.voice import VoiceProfile, estimate_log_f0, shift_pitch

SR = 16000
TINY_CONTENT = ContentEncoderConfig(channels=16, dilations=(1, 2), content_dim=8, teacher_dim=12)
TINY_DECODER = DecoderConfig(content_dim=8, speaker_dim=16, channels=16, dilations=(1, 2), bottleneck=4)


def voice(f0: float, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A harmonic "voice" with a vowel-like changing spectrum: generated test audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0 * t
    tilt = 1.0 + 0.5 * np.sin(2 * np.pi * 2 * t)
    wav = sum(np.sin(k * phase) / k ** tilt for k in range(1, 25))
    return (0.05 * wav + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def features() -> MelSpectrogram:
    return MelSpectrogram(MEL_16K_80)


@pytest.fixture(scope="module")
def content() -> ContentEncoder:
    torch.manual_seed(0)
    return ContentEncoder(TINY_CONTENT, MEL_16K_80).eval()


def test_content_features_are_unit_norm_and_level_invariant(features: MelSpectrogram, content: ContentEncoder) -> None:
    mel = features(torch.from_numpy(voice(150)))[None]
    out = content(mel)
    assert out.shape == (1, mel.shape[-1], 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(1, mel.shape[-1]), atol=1e-5)
    # a gain change is a constant in log-mel: the per-utterance normalisation removes it
    assert torch.allclose(content(mel + 1.7), out, atol=1e-4)


def test_warp_moves_energy_up_and_identity_is_exact(features: MelSpectrogram) -> None:
    mel = features(torch.from_numpy(voice(200)))[None]
    assert torch.allclose(warp_mel(mel, torch.ones(1), MEL_16K_80), mel, atol=1e-5)
    up = warp_mel(mel, torch.tensor([1.3]), MEL_16K_80)
    bands = torch.arange(80, dtype=torch.float32)[None, :, None]
    centroid = lambda m: float((m.exp() * bands).sum() / m.exp().sum())  # noqa: E731
    assert centroid(up) > centroid(mel) + 1


def test_distill_loss_pools_to_teacher_rate() -> None:
    teacher = torch.randn(2, 10, 12)
    student = teacher.repeat_interleave(2, dim=1)
    assert float(distill_loss(student, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(-student, teacher)) == pytest.approx(2.0, abs=1e-5)


def test_time_mask_hides_short_spans_with_the_mean() -> None:
    torch.manual_seed(0)
    mel = torch.randn(3, 5, 50)
    out = time_mask(mel, masks=2, max_frames=6)
    assert out.shape == mel.shape
    changed = (out != mel).any(dim=1)  # (B, F) frames that were masked
    assert 0 < int(changed.sum(dim=1).max()) <= 12
    hidden = changed[:, None].expand_as(out)
    assert torch.allclose(out[hidden], mel.mean(dim=(1, 2), keepdim=True).expand_as(out)[hidden])
    assert torch.equal(time_mask(mel, masks=2, max_frames=0), mel)


@pytest.mark.parametrize("f0", [90.0, 150.0, 260.0])
def test_pitch_estimate_on_harmonic_tones(features: MelSpectrogram, f0: float) -> None:
    wav = torch.from_numpy(voice(f0))
    log_f0 = estimate_log_f0(wav, MEL_16K_80)
    assert len(log_f0) == features(wav).shape[-1]
    voiced = log_f0 > 0
    assert voiced.float().mean() > 0.9
    assert float(torch.exp(log_f0[voiced]).median()) == pytest.approx(f0, rel=0.03)
    silence = estimate_log_f0(torch.zeros(SR), MEL_16K_80)
    assert not (silence > 0).any()


def test_shift_pitch_moves_the_voiced_median_only() -> None:
    log_f0 = torch.tensor([0.0, 4.6, 4.7, 4.8, 0.0])
    out = shift_pitch(log_f0, 5.5)
    assert float(out[out > 0].median()) == pytest.approx(5.5)
    assert out[0] == 0 and out[-1] == 0
    rel, voiced = relative_pitch(log_f0[None])
    assert voiced.tolist() == [[0, 1, 1, 1, 0]] and float(rel[0, 2]) == pytest.approx(0.0)


def test_knn_over_its_own_frames_returns_them(features: MelSpectrogram, content: ContentEncoder) -> None:
    wav = voice(140, 1.5) + voice(220, 1.5, seed=1)
    profile = build_profile([wav], features, content, None, k=1)
    mel = features(torch.from_numpy(wav))
    assert torch.allclose(match_spectra(mel, profile, k=1), mel, atol=1e-5)
    keys = spectral_keys(mel)
    assert keys.shape[0] == mel.shape[-1] and torch.allclose(keys.norm(dim=-1), torch.ones(len(keys)), atol=1e-5)


def test_profile_output_is_built_from_the_targets_frames(features: MelSpectrogram, content: ContentEncoder) -> None:
    target = voice(110, 3.0, seed=2)
    profile = build_profile([target], features, content, None, k=1)
    out = profile(content(features(torch.from_numpy(voice(240, 1.0)))[None])[0])
    bank = profile.mels  # every output frame is one of the bank's frames
    distance = (out.T[:, None, :] - bank[None]).abs().amax(dim=-1).amin(dim=1)
    assert float(distance.max()) < 1e-5


def test_long_term_spectrum_match_is_one_static_gain_per_band(features: MelSpectrogram) -> None:
    source = features(torch.from_numpy(voice(140, 2.0)))
    tilt = torch.linspace(-0.4, 0.4, source.shape[0])[:, None]  # a brighter recording of the same sound
    reference = features(torch.from_numpy(voice(140, 3.0, seed=4))) + tilt
    out = match_long_term_spectrum(source, reference, strength=1.0)
    gain = out - source
    assert torch.allclose(gain, gain[:, :1].expand_as(gain), atol=1e-6)  # the same for every frame
    before = (long_term_spectrum(source) - long_term_spectrum(reference)).abs().mean()
    after = (long_term_spectrum(out) - long_term_spectrum(reference)).abs().mean()
    assert after < 0.5 * before
    half = match_long_term_spectrum(source, reference, strength=0.5)
    assert torch.allclose(half - source, 0.5 * gain, atol=1e-6)
    assert torch.equal(match_long_term_spectrum(source, reference, strength=0.0), source)
    loud = match_long_term_spectrum(source, reference + 5.0, strength=1.0)  # 43 dB louder: capped
    assert float((loud - source).max()) == pytest.approx(2.3)


def test_global_variance_match_restores_each_bands_movement(features: MelSpectrogram) -> None:
    reference = features(torch.from_numpy(voice(140, 3.0, seed=4)))
    natural = features(torch.from_numpy(voice(140, 2.0)))
    energy = natural.mean(dim=0)
    loud = energy >= energy.median()
    mean = natural[:, loud].mean(dim=1, keepdim=True)
    smoothed = mean + 0.6 * (natural - mean)  # an over-smoothed copy: every band moves 40 % less

    def spread(x: torch.Tensor) -> torch.Tensor:
        e = x.mean(dim=0)
        return x[:, e >= e.median()].std(dim=1)

    out = match_global_variance(smoothed, natural, strength=1.0)
    assert torch.allclose(spread(out), spread(natural), rtol=1e-3)  # the movement is back
    assert torch.allclose(out[:, loud].mean(dim=1), natural[:, loud].mean(dim=1), atol=1e-4)  # the level is not moved
    assert torch.allclose(long_term_spectrum(out), long_term_spectrum(smoothed), atol=1e-4)  # so eq sees the same
    half = match_global_variance(smoothed, natural, strength=0.5)
    assert torch.allclose(spread(half), spread(smoothed) * (spread(natural) / spread(smoothed)).sqrt(), rtol=1e-3)
    assert torch.equal(match_global_variance(smoothed, reference, strength=0.0), smoothed)
    flat = match_global_variance(smoothed, 20 * (reference - reference.mean()), strength=1.0)  # capped at 2x
    assert float((spread(flat) / spread(smoothed)).max()) == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ValueError, match="max_scale must be >= 1"):
        match_global_variance(smoothed, reference, 1.0, max_scale=0.5)


def test_decoder_shapes_and_voice_checkpoint_round_trip(tmp_path, features: MelSpectrogram,
                                                        content: ContentEncoder) -> None:
    torch.manual_seed(0)
    decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80).eval()
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0).numpy()
    profile = build_profile([voice(120, 3.0)], features, content, embedding, k=2)
    mel = convert_mel(voice(200, 1.0), profile, features, content, decoder, blend=0.5)
    assert mel.shape == features(torch.from_numpy(voice(200, 1.0))).shape
    with pytest.raises(ValueError, match="blend"):
        convert_mel(voice(200, 1.0), profile, features, content, decoder, blend=1.5)
    with pytest.raises(ValueError, match="eq"):
        convert_mel(voice(200, 1.0), profile, features, content, decoder, eq=-0.1)
    equalised = convert_mel(voice(200, 1.0), profile, features, content, decoder, blend=0.5, eq=1.0)
    assert equalised.shape == mel.shape and not torch.allclose(equalised, mel)
    tuned = with_decoder(profile, decoder)
    path = Checkpoint.from_module(tuned, "voice", MEL_16K_80, {"name": "voice"}).save(tmp_path / "voice")
    loaded = Checkpoint.load(path).build().eval()
    assert isinstance(loaded, VoiceProfile) and loaded.decoder is not None
    again = convert_mel(voice(200, 1.0), loaded, features, content, None, blend=0.5)
    assert torch.allclose(again, convert_mel(voice(200, 1.0), tuned, features, content, None, blend=0.5), atol=1e-5)


def test_the_blend_leaves_unvoiced_stretches_to_the_decoder(features: MelSpectrogram,
                                                           content: ContentEncoder) -> None:
    """The kNN blend acts where the source is voiced: in a voiced-noise-voiced source, the noise
    in the middle keeps the decoder's mel at any blend, the voiced parts move."""
    weight = voiced_weight(torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0.0]), 14)
    assert torch.allclose(weight[:12], torch.tensor([0, 0.25, 0.4, 0.6, 0.8, 1, 1, 0.8, 0.6, 0.4, 0.25, 0]))
    assert torch.equal(weight[12:], torch.zeros(2))  # frames past the tracker's are not blended
    assert torch.equal(voiced_weight(torch.ones(8), 8), torch.ones(8))
    torch.manual_seed(0)
    decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80).eval()
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0).numpy()
    profile = build_profile([voice(120, 3.0)], features, content, embedding, k=2)
    noise = (0.05 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    source = np.concatenate([voice(200, 1.0), noise, voice(200, 1.0, seed=2)])
    wav = torch.from_numpy(source)
    voiced = estimate_log_f0(wav, features.config) > 0
    mute = ~voiced
    assert voiced[:80].float().mean() > 0.9 and mute[120:180].float().mean() > 0.9  # the tracker hears it so
    plain = convert_mel(source, profile, features, content, decoder, blend=0.0)
    full = convert_mel(source, profile, features, content, decoder, blend=1.0)
    frames = plain.shape[-1]
    quiet = torch.nn.functional.max_pool1d(voiced[None, None, :frames].float(), 9, 1, 4)[0, 0] == 0
    assert quiet.sum() > 40
    assert torch.allclose(full[:, quiet], plain[:, quiet], atol=1e-5)
    assert (full[:, :80] - plain[:, :80]).abs().mean() > 0.05


def narrowband(wav: np.ndarray) -> np.ndarray:
    """``wav`` with nothing above 3.9 kHz (an ideal low-pass, as an 8 kHz recording has)."""
    spectrum = np.fft.rfft(wav)
    spectrum[int(3900 * len(wav) / SR):] = 0
    return np.fft.irfft(spectrum, len(wav)).astype(np.float32)


def test_a_narrowband_reference_is_compared_only_on_its_band(features: MelSpectrogram,
                                                             content: ContentEncoder) -> None:
    """A reference from a phone call fills the lower mel bands only: the blend, the equaliser and
    the variance post-filter change only those bands of a conversion into it; the upper bands keep
    the decoder's mel (matched against the floor they would be muffled)."""
    wide = features(torch.from_numpy(voice(120, 3.0)))
    assert signal_bands(wide) == 80
    phone = narrowband(voice(120, 3.0))
    bands = signal_bands(features(torch.from_numpy(phone)))
    assert 55 <= bands <= 64  # 3.9 kHz lies near band 61 of the 16 kHz mel
    assert signal_bands(torch.zeros(80, 0)) == 80
    assert signal_bands(torch.full((80, 50), -11.5)) == 80  # silence: no band-limited voice
    hum = torch.full((80, 50), -11.5)
    hum[:3] = -2.0  # a low hum alone
    assert signal_bands(hum) == 80
    torch.manual_seed(0)
    decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80).eval()
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0).numpy()
    profile = build_profile([phone], features, content, embedding, k=2)
    source = voice(200, 1.0)
    plain = convert_mel(source, profile, features, content, decoder, blend=0.0)
    matched = convert_mel(source, profile, features, content, decoder, blend=1.0, eq=1.0, gv=1.0)
    assert torch.equal(matched[bands:], plain[bands:])
    assert (matched[:bands] - plain[:bands]).abs().mean() > 0.05
    wideband = build_profile([voice(120, 3.0)], features, content, embedding, k=2)
    moved = convert_mel(source, wideband, features, content, decoder, blend=1.0, eq=1.0, gv=1.0)
    assert (moved[bands:] - plain[bands:]).abs().mean() > 0.05  # a wideband reference moves them all


def test_a_narrowband_offset_moves_only_a_narrowband_references_embedding(features: MelSpectrogram,
                                                                        content: ContentEncoder) -> None:
    """A decoder with ``narrowband_offset`` conditions on a call reference's embedding plus its
    offset (renormalised); a wideband reference, and every decoder without one, keep the profile's
    embedding. The offset is a saved buffer: it survives a checkpoint round trip."""
    torch.manual_seed(0)
    plain_decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80).eval()
    config = DecoderConfig(**{**TINY_DECODER.__dict__, "narrowband_offset": True})
    decoder = ConversionDecoder(config, MEL_16K_80).eval()
    decoder.load_state_dict({**plain_decoder.state_dict(), "narrowband_offset": torch.zeros(16)})
    assert plain_decoder.narrowband_offset is None and "narrowband_offset" not in plain_decoder.state_dict()
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0)
    assert torch.equal(decoder.voice_embedding(embedding, narrowband=True), embedding)  # a zero offset
    decoder.narrowband_offset.copy_(torch.nn.functional.normalize(torch.randn(16), dim=0))
    shifted = decoder.voice_embedding(embedding, narrowband=True)
    assert torch.allclose(shifted, torch.nn.functional.normalize(embedding + decoder.narrowband_offset, dim=0))
    assert torch.equal(decoder.voice_embedding(embedding, narrowband=False), embedding)
    assert torch.equal(plain_decoder.voice_embedding(embedding, narrowband=True), embedding)
    restored = Checkpoint.from_module(decoder, "conversion", MEL_16K_80).build()
    assert torch.equal(restored.narrowband_offset, decoder.narrowband_offset)

    # in a conversion: the call reference's output moves, the wideband one's does not
    source = voice(200, 1.0)
    for wav, moves in ((narrowband(voice(120, 3.0)), True), (voice(120, 3.0), False)):
        profile = build_profile([wav], features, content, embedding.numpy(), k=2)
        before = convert_mel(source, profile, features, content, plain_decoder, blend=0.0)
        after = convert_mel(source, profile, features, content, decoder, blend=0.0)
        assert (after - before).abs().mean() > 1e-3 if moves else torch.equal(after, before)
        # the decoder is conditioned on the shifted embedding, and the identity steps start from it
        start = decoder.voice_embedding(profile.embedding, narrowband=moves)
        assert torch.equal(adapt_embedding(torch.zeros(1, 5, 12), torch.zeros(1, 5), torch.zeros(1, 5), profile,
                                           decoder, None, None, 0, start=start), start)  # type: ignore[arg-type]
        seen = []
        real = decoder.forward

        def spy(*args, _real=real, _seen=seen, **kwargs):  # noqa: ANN002, ANN003, ANN202
            _seen.append(args[3].detach().clone())
            return _real(*args, **kwargs)

        decoder.forward = spy  # type: ignore[method-assign]
        try:
            convert_mel(source, profile, features, content, decoder, blend=0.0, identity_steps=0)
        finally:
            del decoder.forward
        assert torch.equal(seen[0][0], start)


def test_a_speaker_contrast_pushes_the_voice_away_from_the_average_voice(features: MelSpectrogram,
                                                                         content: ContentEncoder) -> None:
    """``contrast_embedding`` moves a unit embedding away from the centre along its own difference
    from it (cosine to the centre falls, the result stays unit-norm), 0 is the embedding itself, a
    negative contrast is refused. In a conversion it changes what the decoder is conditioned on,
    before the identity steps start, and needs a centre."""
    torch.manual_seed(1)
    centre = 0.7 * torch.nn.functional.normalize(torch.randn(16), dim=0)
    embedding = torch.nn.functional.normalize(centre + 0.6 * torch.randn(16), dim=0)
    assert contrast_embedding(embedding, centre, 0.0) is embedding
    unit = torch.nn.functional.normalize(centre, dim=0)
    cosines = [float(contrast_embedding(embedding, centre, c) @ unit) for c in (0.0, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(cosines[:-1], cosines[1:], strict=True)), cosines
    moved = contrast_embedding(embedding, centre, 1.0)
    assert torch.allclose(moved, torch.nn.functional.normalize(2 * embedding - centre, dim=0))
    assert moved.norm() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="contrast must be >= 0"):
        contrast_embedding(embedding, centre, -0.5)
    with pytest.raises(ValueError, match="speaker_contrast must be >= 0"):
        DecoderConfig(**{**TINY_DECODER.__dict__, "speaker_contrast": -1.0})

    torch.manual_seed(0)
    decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80).eval()
    # the decoder's conditioning applies it (the narrowband offset, if any, comes after)
    assert torch.allclose(decoder.voice_embedding(embedding, narrowband=False, contrast=1.0, centre=centre), moved)
    assert decoder.voice_embedding(embedding, narrowband=False, contrast=0.0) is embedding
    with pytest.raises(ValueError, match="centre"):
        decoder.voice_embedding(embedding, narrowband=False, contrast=1.0)
    profile = build_profile([voice(120, 3.0)], features, content, embedding.numpy(), k=2)
    source = voice(200, 1.0)
    seen = []
    real = decoder.forward

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(args[3].detach().clone())
        return real(*args, **kwargs)

    decoder.forward = spy  # type: ignore[method-assign]
    try:
        plain = convert_mel(source, profile, features, content, decoder, blend=0.0)
        zero = convert_mel(source, profile, features, content, decoder, blend=0.0, contrast=0.0, centre=centre)
        pushed = convert_mel(source, profile, features, content, decoder, blend=0.0, contrast=1.0, centre=centre)
    finally:
        del decoder.forward
    assert torch.equal(plain, zero) and (pushed - plain).abs().mean() > 1e-3
    assert torch.equal(seen[0][0], profile.embedding) and torch.allclose(seen[2][0], moved)
    with pytest.raises(ValueError, match="centre"):
        convert_mel(source, profile, features, content, decoder, blend=0.0, contrast=1.0)


def test_cepstral_content_drops_level_channel_and_long_term_timbre(features: MelSpectrogram) -> None:
    mel = features(torch.from_numpy(voice(150, 2.0)))[None]
    ceps = cepstral_content(mel, 20)
    assert ceps.shape == (1, mel.shape[-1], 20)
    assert torch.allclose(ceps.mean(dim=1), torch.zeros(20), atol=1e-4)
    assert torch.allclose(ceps.std(dim=1), torch.ones(20), atol=1e-2)
    # any static filter (one gain per band, here a tilt plus a notch) is a constant in the
    # log-mel, so it is gone after the per-utterance normalisation
    gain = torch.linspace(-2.0, 1.0, mel.shape[1])
    gain[30:34] -= 3.0
    assert torch.allclose(cepstral_content(mel + gain[None, :, None], 20), ceps, atol=1e-3)
    # but the sounds' order is kept: reversing time reverses the features
    assert torch.allclose(cepstral_content(mel.flip(-1), 20), ceps.flip(1), atol=1e-4)
    # one frame has no statistics over time: its cepstrum comes back as it is, not as zeros
    single = cepstral_content(mel[..., :1], 20)
    assert single.shape == (1, 1, 20) and single.abs().max() > 0.1
    with pytest.raises(ValueError, match="cepstral coefficients"):
        cepstral_content(mel, 80)


def test_cepstrum_decoder_needs_no_content_encoder(features: MelSpectrogram, content: ContentEncoder) -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="content_input"):
        DecoderConfig(content_input="phones")
    ceps = ConversionDecoder(DecoderConfig(content_input="cepstrum", content_dim=12, speaker_dim=16, channels=16,
                                           dilations=(1, 2), bottleneck=4), MEL_16K_80).eval()
    mel = features(torch.from_numpy(voice(150, 1.0)))[None]
    assert torch.equal(ceps.encode(mel, None), cepstral_content(mel, 12))
    plain = ConversionDecoder(TINY_DECODER, MEL_16K_80).eval()
    assert torch.equal(plain.encode(mel, content), content(mel))
    with pytest.raises(ValueError, match="content encoder"):
        plain.encode(mel, None)
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0).numpy()
    profile = build_profile([voice(120, 3.0)], features, content, embedding, k=2)
    out = convert_mel(voice(200, 1.0), profile, features, content, ceps, blend=0.0)
    assert out.shape == mel[0].shape


def test_finetune_lowers_the_reconstruction_loss(features: MelSpectrogram, content: ContentEncoder) -> None:
    torch.manual_seed(0)
    decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80)
    wavs = [voice(130, 2.5, seed=i) for i in range(3)]
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0)
    tuned, losses = finetune_decoder(decoder, content, wavs, embedding, features, steps=40, batch_size=4,
                                     crop_frames=100, lr=3e-3)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert not any(p.requires_grad for p in tuned.parameters())
    with pytest.raises(ValueError, match="at least"):
        finetune_decoder(decoder, content, [voice(130, 0.5)], embedding, features, steps=1, crop_frames=100)


def test_finetune_keep_moves_the_weights_part_of_the_way(features: MelSpectrogram, content: ContentEncoder) -> None:
    torch.manual_seed(0)
    decoder = ConversionDecoder(TINY_DECODER, MEL_16K_80)
    wavs = [voice(130, 2.5, seed=i) for i in range(3)]
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0)
    kwargs = {"steps": 10, "batch_size": 4, "crop_frames": 100, "lr": 3e-3}
    full, _ = finetune_decoder(decoder, content, wavs, embedding, features, **kwargs)
    part, _ = finetune_decoder(decoder, content, wavs, embedding, features, keep=0.25, **kwargs)  # same seed, same steps
    for name, start in decoder.state_dict().items():
        moved = full.state_dict()[name] - start
        torch.testing.assert_close(part.state_dict()[name] - start, 0.25 * moved, atol=1e-6, rtol=1e-4)
    assert any(float((full.state_dict()[n] - w).abs().max()) > 1e-3 for n, w in decoder.state_dict().items())
    assert not any(p.requires_grad for p in part.parameters())
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="keep must be in"):
            finetune_decoder(decoder, content, wavs, embedding, features, steps=1, crop_frames=100, keep=bad)


def test_band_l1_ignores_the_empty_bands_of_narrowband_rows() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 80, 30), torch.randn(2, 80, 30)
    bins = torch.tensor([61, 80])
    loss = band_l1(pred, target, bins)
    changed = target.clone()
    changed[0, 61:] += 5.0  # above row 0's band: not counted
    assert torch.allclose(band_l1(pred, changed, bins), loss)
    changed[1, 61:] += 5.0  # row 1 is wideband: counted
    assert band_l1(pred, changed, bins) > loss + 0.3
    assert torch.allclose(band_l1(pred, target, torch.tensor([80, 80])), (pred - target).abs().mean())


def test_decoder_crops_follow_weights_and_carry_bins() -> None:
    mels = [torch.zeros(2, 80, 50), torch.ones(2, 80, 50), torch.ones(2, 80, 10)]  # the third is too short
    crops = DecoderCrops(mels, [torch.zeros(50), torch.zeros(50), torch.zeros(10)], torch.tensor([0, 1, 1]),
                         torch.eye(2), frames=40, items=8, bins=torch.tensor([80, 61, 61]),
                         weights=torch.tensor([0.0, 1.0, 1.0]))
    items = [crops[i] for i in range(20)]
    assert all(float(it["mel"].mean()) == 1.0 and int(it["bins"]) == 61 for it in items)
    with pytest.raises(ValueError, match="bins has 2 entries"):
        DecoderCrops(mels, [torch.zeros(50)] * 3, torch.tensor([0, 1, 1]), torch.eye(2), 40, 8, bins=torch.tensor([80, 61]))


def tone_sequence(pitches: list[float], seconds: float = 0.3) -> np.ndarray:
    """Generated test audio: one steady harmonic tone per "phone", back to back."""
    return np.concatenate([voice(f, seconds, seed=i) for i, f in enumerate(pitches)])


def test_greedy_phones_merges_repeats_and_drops_blanks() -> None:
    ids = [0, 3, 3, 0, 3, 2, 2, 0, 0, 1]
    logits = torch.nn.functional.one_hot(torch.tensor(ids), 4).float()
    assert greedy_phones(logits) == [3, 3, 2, 1]


def test_collate_stacks_equal_shapes_and_keeps_whole_utterances_as_lists() -> None:
    items = [{"mel": torch.zeros(2, 5), "ctc_mel": torch.zeros(2, n), "phones": torch.ones(n // 3)} for n in (6, 9)]
    batch = collate(items)
    assert batch["mel"].shape == (2, 2, 5)
    assert [m.shape[-1] for m in batch["ctc_mel"]] == [6, 9] and len(batch["phones"]) == 2


def test_phone_head_learns_tone_sequences_with_ctc(features: MelSpectrogram) -> None:
    """Two "phones" (a low and a high tone): CTC training makes greedy decoding read them back."""
    torch.manual_seed(0)
    encoder = ContentEncoder(ContentEncoderConfig(channels=16, dilations=(1, 2), content_dim=8,
                                                  teacher_dim=12, phones=3), MEL_16K_80)
    labels = [[1, 2, 1], [2, 1], [1, 2, 2, 1]]  # 1: 140 Hz, 2: 300 Hz; the repeat needs a blank between
    mels = [features(torch.from_numpy(tone_sequence([140.0 if p == 1 else 300.0 for p in seq]))) for seq in labels]
    phones = [torch.tensor(seq) for seq in labels]
    before = phone_error_rate(encoder, mels, phones)
    optimizer = torch.optim.Adam(encoder.parameters(), 3e-3)
    for _ in range(400):  # a few seconds on one thread
        optimizer.zero_grad()
        ctc_loss(encoder, mels, phones).backward()
        optimizer.step()
    assert phone_error_rate(encoder, mels, phones) < 0.2 < before
    with pytest.raises(ValueError, match="no phone head"):
        ContentEncoder(TINY_CONTENT, MEL_16K_80).phone_logits(torch.zeros(1, 4, 8))


def test_cepstrum_decoder_fine_tunes_without_a_content_encoder(features: MelSpectrogram) -> None:
    """A decoder that reads the cepstrum needs no content encoder to fine-tune; the others do."""
    from dataclasses import replace

    from voicefake.conversion.decoder_training import TrainConfig, build_task

    torch.manual_seed(0)
    decoder = ConversionDecoder(replace(TINY_DECODER, content_input="cepstrum", content_dim=12), MEL_16K_80)
    wavs = [voice(130, 2.5, seed=i) for i in range(2)]
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0)
    tuned, losses = finetune_decoder(decoder, None, wavs, embedding, features, steps=20, batch_size=4,
                                     crop_frames=100, lr=3e-3)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    with pytest.raises(ValueError, match="needs the content encoder"):
        build_task(TINY_DECODER, MEL_16K_80, TrainConfig(), None)
