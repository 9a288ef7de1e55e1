"""Speaker verbs and CLI: embed / similarity / verify on tiny and bundled checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake import api
from voicefake.audio.features import MEL_16K_40
from voicefake.audio.io import write_audio
from voicefake.checkpoint import BUNDLED_DIR, Checkpoint
from voicefake.cli import main
from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig

SAMPLE_RATE = 16000


def voice(f0: float, seconds: float = 2.0, tilt: float = 1.0, seed: int = 0) -> np.ndarray:
    """A buzzy harmonic "voice" with syllable-rate gating: generated test audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 4 * t))) / SAMPLE_RATE
    wav = sum(np.sin(k * phase) / k**tilt for k in range(1, 20))
    gate = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return (0.1 * wav * gate + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)
    calibration = {"scale": 10.0, "offset": -5.0, "threshold": 0.5, "far": 0.01}
    path = tmp_path_factory.mktemp("ckpt") / "tiny-speaker"
    Checkpoint.from_module(model, "speaker", mel=MEL_16K_40,
                           metadata={"name": "tiny-speaker", "calibration": calibration}).save(path)
    return str(path)


@pytest.fixture(scope="module")
def wav_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    files = {"a1": voice(120, seed=1), "a2": voice(122, seed=2), "b": voice(230, tilt=2.0, seed=3)}
    paths = {name: folder / f"{name}.wav" for name in files}
    for name, wav in files.items():
        write_audio(paths[name], wav, SAMPLE_RATE)
    # an 8 kHz copy: upsampled on load
    write_audio(folder / "a1_8k.wav", voice(120, seed=1)[::2], 8000)
    paths["a1_8k"] = folder / "a1_8k.wav"
    (folder / "bad.wav").write_bytes(b"not audio at all")
    paths["bad"] = folder / "bad.wav"
    return paths


def test_embed_is_unit_norm_and_deterministic(tiny_checkpoint: str, wav_files: dict[str, Path]) -> None:
    emb = api.embed(wav_files["a1"], tiny_checkpoint)
    assert emb.shape == (16,) and emb.dtype == np.float32
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    # the file holds 16-bit samples, the array float32: equal up to quantisation
    np.testing.assert_allclose(api.embed(voice(120, seed=1), tiny_checkpoint), emb, atol=1e-3)
    assert api.embed(wav_files["a1_8k"], tiny_checkpoint).shape == (16,)


def test_short_input_rules(tiny_checkpoint: str) -> None:
    assert api.embed(voice(120, seconds=0.8), tiny_checkpoint).shape == (16,)  # < 1.5 s: accepted
    with pytest.raises(ValueError, match="too short"):
        api.embed(voice(120, seconds=0.3), tiny_checkpoint)


def test_similarity_and_verify(tiny_checkpoint: str, wav_files: dict[str, Path]) -> None:
    a = api.embed(wav_files["a1"], tiny_checkpoint)
    assert api.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="same non-zero size"):
        api.similarity(a, a[:3])
    result = api.verify([wav_files["a1"], wav_files["a2"]], wav_files["a1"], tiny_checkpoint)
    assert -1 <= result.cosine <= 1 and 0 <= result.p_same <= 1
    assert result.same == (result.cosine >= 0.5) and result.threshold == 0.5
    assert result.p_same == pytest.approx(1 / (1 + np.exp(-(10 * result.cosine - 5))))


def test_enrollment_averages_clips(tiny_checkpoint: str, wav_files: dict[str, Path]) -> None:
    a1, a2 = (api.embed(wav_files[k], tiny_checkpoint) for k in ("a1", "a2"))
    mean = (a1 + a2) / np.linalg.norm(a1 + a2)
    np.testing.assert_allclose(api.embed_speaker([wav_files["a1"], wav_files["a2"]], tiny_checkpoint), mean, atol=1e-5)


def test_enrollment_leaves_out_clips_too_short_to_embed(tiny_checkpoint: str, wav_files: dict[str, Path],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A clip under 0.5 s (a "yes", the tail of a cut recording) no longer makes the whole
    enrollment an error: it is left out, with a warning; clips that are all that short are
    embedded joined; one short clip alone is still one clear error."""
    a1 = api.embed(wav_files["a1"], tiny_checkpoint)
    with caplog.at_level("WARNING"):
        enrolled = api.embed_speaker([wav_files["a1"], voice(120, seconds=0.3)], tiny_checkpoint)
    np.testing.assert_allclose(enrolled, a1, atol=1e-5)
    assert "1 of 2 clips of one speaker are under 0.5 s" in caplog.text
    pieces = [voice(120, seconds=0.3, seed=s) for s in range(4)]
    np.testing.assert_allclose(api.embed_speaker(pieces, tiny_checkpoint),
                               api.embed(np.concatenate(pieces), tiny_checkpoint), atol=1e-5)
    with pytest.raises(ValueError, match="too short"):
        api.embed_speaker([voice(120, seconds=0.3)], tiny_checkpoint)
    with pytest.raises(ValueError, match="no enrollment clips"):
        api.embed_speaker([], tiny_checkpoint)


def test_cli_embed_json_with_bad_file(tiny_checkpoint: str, wav_files: dict[str, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["embed", str(wav_files["a1"]), str(wav_files["bad"]), "--json", "--checkpoint", tiny_checkpoint])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert lines[0]["file"] == str(wav_files["a1"]) and len(lines[0]["embedding"]) == 16
    assert lines[0]["model"].startswith("tiny-speaker")
    assert lines[1]["file"] == str(wav_files["bad"]) and "error" in lines[1]


def test_cli_verify_json(tiny_checkpoint: str, wav_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", str(wav_files["a1"]), str(wav_files["a2"]), str(wav_files["b"]), "--json",
                   "--checkpoint", tiny_checkpoint])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0 and len(lines) == 2
    for line in lines:
        assert {"file", "cosine", "p_same", "same", "score", "model"} <= set(line)
        assert line["score"] == line["cosine"]  # the tiny model has no cohort: it scores by cosine
        assert isinstance(line["same"], bool) and 0 <= line["p_same"] <= 1


def test_cli_verify_missing_enroll_is_one_line(tiny_checkpoint: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["verify", str(tmp_path / "nobody.wav"), str(tmp_path / "x.wav"), "--checkpoint", tiny_checkpoint]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nobody.wav" in err[0]


@pytest.mark.skipif(not (BUNDLED_DIR / "speaker-16k").is_dir(), reason="bundled speaker model not built")
def test_bundled_model_on_generated_audio(wav_files: dict[str, Path]) -> None:
    ckpt = Checkpoint.load("speaker")
    assert ckpt.kind == "speaker" and "calibration" in ckpt.metadata
    a1, b = api.embed(wav_files["a1"]), api.embed(wav_files["b"])
    assert a1.shape == (256,) and np.linalg.norm(a1) == pytest.approx(1.0, abs=1e-4)
    assert api.verify(wav_files["a1"], wav_files["a1"]).same
    assert api.similarity(a1, a1) > api.similarity(a1, b)


def test_centred_model_keeps_the_raw_embedding_for_cloning(tiny_checkpoint: str, wav_files: dict[str, Path],
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A centred model scores in centred space, but voice cloning is conditioned on the raw
    embedding: ``centre=False`` and the CLI's ``cloning_embedding`` give exactly the uncentred one."""
    plain = Checkpoint.load(tiny_checkpoint)
    config = plain.model_config
    from dataclasses import replace
    model = SpeakerEncoder(replace(config, center_embeddings=True), MEL_16K_40)
    state = plain.build().state_dict()
    state["center"] = torch.full((config.emb_dim,), 0.2)
    model.load_state_dict(state)
    centred_path = str(tmp_path / "centred")
    Checkpoint.from_module(model, "speaker", MEL_16K_40, dict(plain.metadata)).save(centred_path)
    raw = api.embed(wav_files["a1"], tiny_checkpoint)
    assert np.allclose(api.embed(wav_files["a1"], centred_path, centre=False), raw, atol=1e-5)
    centred = api.embed(wav_files["a1"], centred_path)
    expected = (raw - 0.2) / np.linalg.norm(raw - 0.2)
    assert np.allclose(centred, expected, atol=1e-5)
    assert np.allclose(api.embed_speaker([wav_files["a1"]], centred_path, centre=False), raw, atol=1e-5)

    assert main(["embed", str(wav_files["a1"]), "--json", "--checkpoint", centred_path]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert np.allclose(line["embedding"], centred, atol=1e-5)
    assert np.allclose(line["cloning_embedding"], raw, atol=1e-5)
    assert main(["embed", str(wav_files["a1"]), "--json", "--checkpoint", tiny_checkpoint]) == 0
    assert "cloning_embedding" not in json.loads(capsys.readouterr().out.splitlines()[0])


def test_a_stereo_calls_legs_are_checked_apart(tiny_checkpoint: str, wav_files: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Each leg of a two-party stereo call is its own speaker: the result is the best leg's,
    every leg's is kept, each leg's is that leg checked alone; mix averages them as before."""
    a1, b = voice(120, seed=1), voice(230, tilt=2.0, seed=3)
    silence = np.zeros_like(a1)
    stereo = np.stack([np.concatenate([b, silence]), np.concatenate([silence, a1])], axis=1)
    write_audio(tmp_path / "call.wav", stereo, SAMPLE_RATE)
    enrolled = api.embed_speaker([wav_files["a2"]], tiny_checkpoint)
    result = api.verify_embedding(enrolled, tmp_path / "call.wav", tiny_checkpoint)
    assert [c.channel for c in result.channels] == [0, 1]
    decoded = api.load_waveform(tmp_path / "call.wav", mono=False)  # the file's 16-bit samples
    for leg in result.channels:
        alone = api.verify_embedding(enrolled, np.ascontiguousarray(decoded[:, leg.channel]), tiny_checkpoint)
        assert leg.cosine == pytest.approx(alone.cosine, abs=1e-5) and not alone.channels
    assert result.score == max(c.score for c in result.channels) and result.channel == 1
    mixed = api.verify_embedding(enrolled, tmp_path / "call.wav", tiny_checkpoint, channels="mix")
    assert mixed.channel is None and not mixed.channels
    assert mixed.cosine == pytest.approx(api.verify_embedding(enrolled, decoded.mean(axis=1), tiny_checkpoint).cosine,
                                         abs=1e-6)
    with pytest.raises(ValueError, match="not one of"):
        api.verify_embedding(enrolled, tmp_path / "call.wav", tiny_checkpoint, channels="right")
    # a party who only says "yes" (0.1 s): that leg is checked whole instead of failing the call
    yes = np.concatenate([np.zeros(a1.size), voice(200, seconds=0.1, seed=4), np.zeros(a1.size)])
    short = np.stack([np.concatenate([a1, np.zeros(yes.size - a1.size)]), yes], axis=1).astype(np.float32)
    assert [c.channel for c in api.verify_embedding(enrolled, short, tiny_checkpoint).channels] == [0, 1]
    assert main(["verify", str(wav_files["a2"]), str(tmp_path / "call.wav"), "--json",
                 "--checkpoint", tiny_checkpoint]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["channel"] == 1 and [c["channel"] for c in line["channels"]] == [0, 1]
    assert line["cosine"] == round(result.cosine, 4)


@pytest.mark.data
def test_bundled_model_finds_the_enrolled_speaker_on_one_leg(data_root: Path) -> None:
    """LibriSpeech 1688 enrolled; a stereo call with speaker 1998 on the left and another
    recording of 1688 on the right: the right leg matches, the left does not."""
    test_other = data_root / "librispeech_resemblyzer/test-other"
    enrolled = api.embed_speaker([test_other / "1688/1688-142285-0000.flac"])
    left = api.load_waveform(test_other / "1998/1998-15444-0001.flac")
    right = api.load_waveform(test_other / "1688/1688-142285-0002.flac")
    stereo = np.stack([np.concatenate([left, np.zeros_like(right)]), np.concatenate([np.zeros_like(left), right])],
                      axis=1)
    result = api.verify_embedding(enrolled, stereo)
    assert [(c.channel, c.same) for c in result.channels] == [(0, False), (1, True)]
    assert result.channel == 1 and result.same


def test_speaker_timeline_places_the_voice_in_a_mono_call(tiny_checkpoint: str, wav_files: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """timeline=True checks 3 s windows every 1.5 s (windows with under half speech skipped);
    the windows over the enrolled voice's half score above those over the other voice, and the
    decision stays the whole recording's."""
    a, b = voice(120, seconds=5.0, seed=1), voice(230, seconds=5.0, tilt=2.0, seed=3)
    call = np.concatenate([b, np.zeros(3 * SAMPLE_RATE, np.float32), a])  # other voice 0-5 s, enrolled 8-13 s
    enrolled = api.embed_speaker([wav_files["a2"]], tiny_checkpoint)
    plain = api.verify_embedding(enrolled, call, tiny_checkpoint)
    result = api.verify_embedding(enrolled, call, tiny_checkpoint, timeline=True)
    assert not plain.segments and result.cosine == plain.cosine
    starts = [seg["start"] for seg in result.segments]
    assert starts == [0.0, 1.5, 3.0, 7.5, 9.0]  # 4.5-7.5 s and 6.0-9.0 s: under half speech
    bundled = api.verify_embedding(api.embed_speaker([wav_files["a2"]]), call, timeline=True)  # tells voices apart
    scores = {seg["start"]: seg["score"] for seg in bundled.segments}
    assert min(scores[s] for s in (7.5, 9.0)) > max(scores[s] for s in (0.0, 1.5, 3.0))
    path = wav_files["a1"].parent / "mono_call.wav"
    write_audio(path, call, SAMPLE_RATE)
    assert main(["verify", str(wav_files["a2"]), str(path), "--json", "--timeline", "--checkpoint", tiny_checkpoint]) == 0
    line = json.loads(capsys.readouterr().out)
    assert [seg["start"] for seg in line["segments"]] == starts
