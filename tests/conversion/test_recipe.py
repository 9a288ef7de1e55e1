"""The conversion recipes' tiny configs train, export and resume on the CPU."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake.checkpoint import Checkpoint
from voicefake.conversion.model import with_narrowband_offset

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "conversion"


def _train(script: str, config: str, run: Path, *overrides: str, ok: bool = True) -> str:
    cmd = [sys.executable, str(RECIPE / script), "--config", str(RECIPE / "configs" / config), "--run", str(run), *overrides]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": f"{ROOT}:{RECIPE}", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert (done.returncode == 0) == ok, done.stderr[-2000:]
    return done.stderr


def test_content_then_decoder_tiny_recipes(tmp_path: Path) -> None:
    _train("train.py", "tiny.yaml", tmp_path / "content")
    encoder = Checkpoint.load(tmp_path / "content" / "best" / "encoder")
    assert encoder.kind == "content" and encoder.metadata["name"] == "content"
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "decoder",
           f"data.content={tmp_path / 'content' / 'best' / 'encoder'}")
    decoder = Checkpoint.load(tmp_path / "decoder" / "best" / "decoder")
    assert decoder.kind == "conversion" and decoder.mel == encoder.mel
    # re-running the finished command resumes at the last step and does nothing more
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "decoder",
           f"data.content={tmp_path / 'content' / 'best' / 'encoder'}")
    assert sorted(p.name for p in (tmp_path / "decoder").glob("step_*")) == ["step_00000002", "step_00000004"]


def test_cepstrum_decoder_tiny_recipe(tmp_path: Path) -> None:
    # the decoder reads the source's cepstrum: no content encoder is trained, needed or loaded
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "decoder", f"data.content={tmp_path / 'none'}",
           "model.content_input=cepstrum", "model.content_dim=12")
    decoder = Checkpoint.load(tmp_path / "decoder" / "best" / "decoder")
    assert decoder.model["content_input"] == "cepstrum" and decoder.model["content_dim"] == 12
    assert decoder.metadata["content"] == "cepstrum"
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "bad", "data.content=content",
           "model.content_input=phones", ok=False)
    # a decoder given a narrowband offset can be trained on; the offset is left behind (it fits the old weights)
    with_offset = with_narrowband_offset(decoder, np.ones(decoder.model["speaker_dim"], np.float32), {})
    with_offset.save(tmp_path / "offset")
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "again", f"data.content={tmp_path / 'none'}",
           "model.content_input=cepstrum", "model.content_dim=12", "--init", str(tmp_path / "offset"))
    again = Checkpoint.load(tmp_path / "again" / "best" / "decoder")
    assert not again.model["narrowband_offset"] and "narrowband_offset" not in again.state_dict


def test_content_init_fine_tunes_and_refuses_a_size_mismatch(tmp_path: Path) -> None:
    _train("train.py", "tiny.yaml", tmp_path / "first")
    first = tmp_path / "first" / "best" / "encoder"
    _train("train.py", "tiny.yaml", tmp_path / "second", "--init", str(first), "train.lr=0.0")
    # with a zero learning rate the exported weights are the init's; the metadata names it
    second = Checkpoint.load(tmp_path / "second" / "best" / "encoder")
    assert second.metadata["init"] == str(first)
    reference = Checkpoint.load(first).state_dict
    assert all(torch.equal(second.state_dict[k], reference[k]) for k in reference)
    err = _train("train.py", "tiny.yaml", tmp_path / "third", "--init", "content", ok=False)
    assert "does not match the config's model size" in err
    err = _train("train.py", "tiny.yaml", tmp_path / "fourth", "--init", "vocoder", ok=False)
    assert "not a content encoder" in err


def test_content_ctc_fine_tune_adds_a_phone_head(tmp_path: Path) -> None:
    _train("train.py", "tiny.yaml", tmp_path / "first")
    first = tmp_path / "first" / "best" / "encoder"
    err = _train("train.py", "tiny.yaml", tmp_path / "nohead", "train.ctc_weight=0.5", ok=False)
    assert "set model.phones" in err
    # an encoder trained without a phone head gets one (the rest of its weights are kept)
    err = _train("train.py", "tiny.yaml", tmp_path / "ctc", "--init", str(first), "train.ctc_weight=0.5",
                 "model.phones=6")
    assert "loss/ctc=" in err and "eval/per=" in err
    tuned = Checkpoint.load(tmp_path / "ctc" / "best" / "encoder")
    assert tuned.state_dict["phone_head.weight"].shape == (6, 8)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng program is not installed")
def test_phone_labels_come_from_espeak_without_stress() -> None:
    sys.path.insert(0, str(RECIPE))
    from prepare_phones import language, phonemize  # type: ignore[import-not-found]

    from voicefake.data.manifests import ManifestRow

    assert language(ManifestRow(path="a.wav", notes="package=x;language=fr;in_shared=0")) == "fr"
    assert language(ManifestRow(path="a.wav", notes="Asterisk core sounds (it), telephone")) == "it"
    assert language(ManifestRow(path="a.wav")) == "en"
    phones = phonemize("Hello there.", "en")
    assert phones[0] == "h" and len(phones) >= 5 and not any(c in "ˈˌ" for p in phones for c in p)
    assert phonemize("Hello.", "xx") == [] and phonemize("  ", "en") == []


def test_speed_perturb_changes_tempo_and_pitch() -> None:
    sys.path.insert(0, str(RECIPE))
    from make_speed import SAMPLE_RATE, speed_perturb  # type: ignore[import-not-found]

    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    for factor in (0.9, 1.1):
        out = speed_perturb(tone, factor)
        assert abs(len(out) - len(tone) / factor) <= 2
        spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
        peak = np.argmax(spectrum) * SAMPLE_RATE / len(out)
        assert abs(peak - 200 * factor) < 3, (factor, peak)
    with pytest.raises(ValueError, match="outside"):
        speed_perturb(tone, 3.0)


def test_speed_copies_are_new_speakers_with_the_band_they_fill() -> None:
    sys.path.insert(0, str(RECIPE))
    from build_decoder_cache import bins_of, speed_copies  # type: ignore[import-not-found]

    from voicefake.data.manifests import ManifestRow

    rows = [ManifestRow(path="a.wav", speaker="ann", sample_rate=16000), ManifestRow(path="b.wav", sample_rate=8000)]
    wavs = [np.zeros(32000, np.float32), np.zeros(16000, np.float32)]  # loaded at 16 kHz, as in the cache
    out_rows, out_wavs = speed_copies(rows, wavs, [0.8, 1.25])
    # b.wav played 1.25x as fast lasts 0.8 s: too short to be kept
    assert [r.speaker for r in out_rows] == ["ann-speed0.8", "b.wav-speed0.8", "ann-speed1.25"]
    assert [r.sample_rate for r in out_rows] == [12800, 6400, 16000]
    assert [len(w) for w in out_wavs] == [40000, 20000, 25600]
    # a slowed-down 16 kHz file no longer fills the top bands; a sped-up 8 kHz one fills more of them
    fast_narrow = speed_copies(rows[1:], [np.zeros(32000, np.float32)], [1.25])[0][0]
    full, slow, narrow, fast = bins_of([rows[0], out_rows[0], rows[1], fast_narrow]).tolist()
    assert slow < full and narrow < fast < full


def test_every_decoder_config_loads() -> None:
    # each decoder recipe's settings are valid together (e.g. train.content_loss with the cross conversions)
    sys.path.insert(0, str(RECIPE))
    try:
        import train_decoder  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(RECIPE))
    from voicefake.config import load_sections

    paths = sorted((RECIPE / "configs").glob("decoder_*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        configs, _ = load_sections(str(path), [], train_decoder.SECTIONS)
        assert configs["model"].content_input in ("encoder", "cepstrum"), path.name
    content, _ = load_sections(str(RECIPE / "configs" / "decoder_content.yaml"), [], train_decoder.SECTIONS)
    assert content["train"].content_loss > 0 and content["train"].converts
    flite, _ = load_sections(str(RECIPE / "configs" / "decoder_flite_content.yaml"), [], train_decoder.SECTIONS)
    assert flite["model"].reference_heads > 0 and flite["train"].speaker_dropout > 0  # the attention decoder's own settings
    assert flite["train"].content_loss > 0 and flite["data"].reference_frames > 0


def _narrowband_recipe():  # noqa: ANN202
    import importlib.util

    spec = importlib.util.spec_from_file_location("_recipe_narrowband_offset", RECIPE / "narrowband_offset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_narrowband_offset_is_the_mean_difference_and_ships_inside_the_decoder(tmp_path: Path) -> None:
    """The recipe's offset is the mean clean-minus-call embedding difference; written into a
    decoder checkpoint it reloads strictly with its weights untouched, and bad input is refused."""
    from voicefake.audio.features import MEL_16K_80
    from voicefake.conversion.model import ConversionDecoder, DecoderConfig

    recipe = _narrowband_recipe()
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((12, 16)).astype(np.float32)
    shift = rng.standard_normal(16).astype(np.float32)
    narrow = clean - shift + 0.01 * rng.standard_normal((12, 16)).astype(np.float32)
    assert np.allclose(recipe.estimate_offset(clean, narrow), shift, atol=0.02)
    with pytest.raises(ValueError, match="paired embeddings"):
        recipe.estimate_offset(clean, narrow[:5])

    torch.manual_seed(0)
    decoder = ConversionDecoder(DecoderConfig(content_dim=8, speaker_dim=16, channels=16, dilations=(1, 2),
                                              bottleneck=4), MEL_16K_80)
    source = Checkpoint.from_module(decoder, "conversion", MEL_16K_80, {"name": "conversion-call", "version": "0.1.0"})
    out = with_narrowband_offset(source, shift, {"version": "0.2.0", "narrowband_offset": {"scale": 1.0}})
    out.save(tmp_path / "call")
    loaded = Checkpoint.load(tmp_path / "call")
    assert loaded.model["narrowband_offset"] is True and loaded.metadata["version"] == "0.2.0"
    rebuilt = loaded.build()
    assert torch.equal(rebuilt.narrowband_offset, torch.from_numpy(shift))
    for key, tensor in decoder.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], tensor), key
    with pytest.raises(ValueError, match="8-d offset"):
        with_narrowband_offset(source, shift[:8], {})
    speaker = Checkpoint.load("speaker")
    with pytest.raises(ValueError, match="give a conversion decoder"):
        with_narrowband_offset(speaker, shift, {})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.csv").write_text("path,label,speaker,folder\n")
    with pytest.raises(FileNotFoundError, match="train-clean-100"):
        recipe.offset_speakers(tmp_path / "data")


def test_speaker_contrast_recipe_writes_the_default_and_keeps_the_weights(tmp_path: Path) -> None:
    """recipes/conversion/speaker_contrast.py writes a copy of a decoder whose default contrast is the
    one asked for, with every weight as it was; a contrast of 0 is the plain decoder, and a negative
    contrast or a checkpoint that is no conversion decoder is one line on stderr, with nothing written."""
    from voicefake.audio.features import MEL_16K_80
    from voicefake.conversion.model import ConversionDecoder, DecoderConfig, with_speaker_contrast

    torch.manual_seed(0)
    decoder = ConversionDecoder(DecoderConfig(content_dim=8, speaker_dim=16, channels=16, dilations=(1, 2),
                                              bottleneck=4), MEL_16K_80)
    Checkpoint.from_module(decoder, "conversion", MEL_16K_80, {"name": "conversion-ref", "version": "0.1.0"}
                           ).save(tmp_path / "plain")
    script = str(RECIPE / "speaker_contrast.py")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, script, "--measure", "0", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=300, env=env)

    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}

    init = ("--init", str(tmp_path / "plain"))
    done = run(*init, "--contrast", "1.5", "--version", "0.2.0", "--out", str(tmp_path / "pushed"))
    assert done.returncode == 0, done.stderr
    loaded = Checkpoint.load(tmp_path / "pushed")
    assert loaded.model["speaker_contrast"] == 1.5 and loaded.metadata["version"] == "0.2.0"
    assert loaded.metadata["speaker_contrast"]["contrast"] == 1.5
    plain = Checkpoint.load(tmp_path / "plain")
    assert plain.state_dict.keys() == loaded.state_dict.keys()
    for key, tensor in plain.state_dict.items():
        assert torch.equal(loaded.state_dict[key], tensor), key
    assert loaded.build().config.speaker_contrast == 1.5
    assert with_speaker_contrast(loaded, 0.0, {}).build().config.speaker_contrast == 0.0
    bad = run(*init, "--contrast", "-1", "--out", str(tmp_path / "negative"))
    assert bad.returncode == 1 and "--contrast must be >= 0" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "negative").exists()
    wrong = run("--init", "speaker", "--out", str(tmp_path / "w"))
    assert wrong.returncode == 1 and "give a conversion decoder" in wrong.stderr and not (tmp_path / "w").exists()


def test_speaker_contrast_recipe_reports_the_move_from_the_centre() -> None:
    """The recipe's report: voices' mean cosine to the centre falls with the contrast, and is unchanged at 0."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_recipe_speaker_contrast", RECIPE / "speaker_contrast.py")
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    rng = np.random.default_rng(1)
    centre = torch.from_numpy(0.7 * np.ones(16, np.float32) / 4.0)
    embeddings = centre.numpy() + 0.5 * rng.standard_normal((10, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    before, after = recipe.centre_cosines(embeddings, centre, 1.0)
    assert -1.0 <= after < before <= 1.0
    assert recipe.centre_cosines(embeddings, centre, 0.0) == pytest.approx((before, before))
