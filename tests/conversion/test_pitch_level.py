"""A decoder that is told the pitch to speak at (``model.pitch_level``), not only the embedding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conversion.test_adversarial import _textured
from tests.conversion.test_model import TINY_CONTENT
from tests.conversion.test_recipe import _train
from tests.conversion.test_reference import BASE, _inputs
from voicefake.audio.features import MEL_16K_40, MEL_16K_80, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.conversion.decoder_training import (
    TrainConfig,
    build_task,
    convert_batch,
    pitch_levels,
    pitch_terms,
    widen_for_pitch_level,
)
from voicefake.conversion.inference import build_profile, convert_mel, profile_level
from voicefake.conversion.model import (
    PITCH_CENTRE,
    ContentEncoder,
    ConversionDecoder,
    DecoderConfig,
    PitchJudge,
    absolute_pitch,
)
from voicefake.conversion.voice import VoiceConfig, VoiceProfile
from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig
from voicefake.train.state import load_trainer_state

LEVELLED = DecoderConfig(**{**BASE.__dict__, "pitch_level": True})


def _voice(hz: float, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6))).astype(np.float32)


def test_absolute_pitch_is_the_contour_at_the_level_where_voiced_and_zero_where_unknown() -> None:
    rel = torch.tensor([[0.1, -0.1, 0.3], [0.2, 0.0, -0.2]])
    voiced = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    level = torch.tensor([math.log(200.0), 0.0])  # the second row's level is unknown
    out = absolute_pitch(rel, voiced, level)
    shift = math.log(200.0) - PITCH_CENTRE
    assert torch.allclose(out[0], torch.tensor([0.1 + shift, -0.1 + shift, 0.0]))
    assert torch.equal(out[1], torch.zeros(3))
    assert torch.equal(absolute_pitch(rel, voiced, None), torch.zeros_like(rel))


def test_pitch_levels_are_each_rows_voiced_median() -> None:
    log_f0 = torch.tensor([[0.0, 5.0, 5.2, 5.4, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(pitch_levels(log_f0), torch.tensor([5.2, 0.0]))


def test_a_widened_decoder_starts_as_the_one_without_a_level_and_then_reads_it() -> None:
    torch.manual_seed(0)
    old = ConversionDecoder(BASE, MEL_16K_80).eval()
    new = ConversionDecoder(LEVELLED, MEL_16K_80).eval()
    with pytest.raises(RuntimeError, match="size mismatch"):
        new.load_state_dict(old.state_dict())
    new.load_state_dict(widen_for_pitch_level(new, old.state_dict()))
    mel, rel, voiced, speaker = _inputs()
    content = new.encode(mel, None)
    low, high = torch.tensor([math.log(100.0)]), torch.tensor([math.log(250.0)])
    with torch.no_grad():
        before = old(content, rel, voiced, speaker)
        assert torch.allclose(new(content, rel, voiced, speaker, level=high), before, atol=1e-6)
        new.content_in.weight[:, -1].normal_()  # once the new input has weights, the level matters
        assert not torch.allclose(new(content, rel, voiced, speaker, level=high),
                                  new(content, rel, voiced, speaker, level=low))
        # no level and an unknown (0) level are the same input
        assert torch.equal(new(content, rel, voiced, speaker), new(content, rel, voiced, speaker, level=torch.zeros(1)))
    # a state that already fits (or is not a decoder's) is left as it is
    assert widen_for_pitch_level(new, new.state_dict())["content_in.weight"].shape == new.content_in.weight.shape
    assert widen_for_pitch_level(old, old.state_dict()) is not None


def test_config_refuses_a_bad_level_dropout_and_blended_voices_without_a_level() -> None:
    with pytest.raises(ValueError, match="level_dropout"):
        TrainConfig(level_dropout=1.0)
    with pytest.raises(ValueError, match="level_dropout"):
        TrainConfig(level_dropout=-0.1)
    with pytest.raises(ValueError, match="cross_mix needs a decoder without model.pitch_level"):
        _one_cross_step(LEVELLED, TrainConfig(speaker_loss=0.3, cross_mix=0.5, warp=1.0, gain_db=0.0))


def _one_cross_step(model: DecoderConfig, cfg: TrainConfig) -> dict[str, float]:
    """One training step with cross conversions (a tiny speaker judge) on four textured crops."""
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)
    task = build_task(model, MEL_16K_80, cfg, None, judge=judge, judge_mel=MEL_16K_40)
    mel = _textured(4, 0)
    batch = {"mel": mel, "source": mel, "log_f0": torch.full((4, 60), 5.0),
             "speaker": torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)}
    return task.train_step(task.modules, task.optimizers, batch)


def test_training_teaches_the_decoder_to_follow_the_level() -> None:
    """Crops whose only difference is their pitch level (and the ripple that goes with it): after
    training, the level alone moves the output the way the crops differ."""
    torch.manual_seed(0)
    task = build_task(LEVELLED, MEL_16K_80, TrainConfig(lr=3e-3, warmup_steps=1, warp=1.0, gain_db=0.0,
                                                        level_dropout=0.2), None)
    decoder = task.modules["decoder"]
    assert isinstance(decoder, ConversionDecoder)
    speaker = torch.nn.functional.normalize(torch.randn(1, 16), dim=-1).expand(8, -1)
    source = torch.randn(8, 80, 60) * 0.5
    levels = torch.tensor([4.6, 5.5] * 4)  # ~100 Hz and ~245 Hz
    mel = source + 2.0 * (levels[:, None, None] - 5.05)  # a higher voice is louder everywhere here
    log_f0 = levels[:, None].expand(-1, 60).contiguous()
    batch = {"mel": mel, "source": source, "log_f0": log_f0, "speaker": speaker}
    for _ in range(150):
        task.train_step(task.modules, task.optimizers, batch)
    with torch.no_grad():
        out = convert_batch(None, decoder.eval(), source, log_f0, speaker)
    gap = (out[1::2] - out[::2]).mean()
    assert float(gap) > 1.0, float(gap)  # the target gap is 1.8


def test_inference_reads_the_level_of_the_profiles_reference() -> None:
    torch.manual_seed(0)
    features = MelSpectrogram(MEL_16K_80)
    decoder = ConversionDecoder(LEVELLED, MEL_16K_80).eval()
    with torch.no_grad():
        decoder.content_in.weight[:, -1].normal_()
    embedding = torch.nn.functional.normalize(torch.randn(16), dim=0).numpy()
    content = ContentEncoder(TINY_CONTENT, MEL_16K_80).eval()  # a cepstrum decoder ignores it; the profile keeps its frames
    profile_low = build_profile([_voice(110.0)], features, content, embedding)
    profile_high = build_profile([_voice(230.0)], features, content, embedding)
    assert float(profile_level(decoder, profile_low)[0]) == pytest.approx(math.log(110.0), abs=0.05)
    assert float(profile_level(decoder, profile_high)[0]) == pytest.approx(math.log(230.0), abs=0.05)
    assert profile_level(ConversionDecoder(BASE, MEL_16K_80), profile_low) is None
    only_embedding = VoiceProfile(VoiceConfig(embedding_dim=16), MEL_16K_80)  # `voicefake embed` output
    assert float(profile_level(decoder, only_embedding)[0]) == 0.0  # unknown: the embedding sets the pitch
    source = _voice(160.0, 1.0)
    a = convert_mel(source, profile_low, features, content, decoder, blend=0.0)
    b = convert_mel(source, profile_high, features, content, decoder, blend=0.0)
    assert not torch.allclose(a, b)  # same embedding, different references: the level differs


def test_pitch_level_recipe_starts_from_a_decoder_without_and_exports(tmp_path: Path) -> None:
    base = tmp_path / "base"
    _train("train_decoder.py", "decoder_tiny.yaml", base, f"data.content={tmp_path / 'none'}",
           "model.content_input=cepstrum", "model.content_dim=12")
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)
    Checkpoint.from_module(judge, "speaker", MEL_16K_40, {"name": "tiny-judge"}).save(tmp_path / "judge")
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "run", f"data.content={tmp_path / 'none'}",
           "model.content_input=cepstrum", "model.content_dim=12", "model.pitch_level=true",
           "train.level_dropout=0.1", "train.speaker_loss=0.3", "train.cycle_loss=1.0",
           f"data.speaker={tmp_path / 'judge'}", "--init", str(base / "best" / "decoder"))
    exported = Checkpoint.load(tmp_path / "run" / "best" / "decoder")
    assert exported.model["pitch_level"] is True
    assert exported.build().content_in.weight.shape[1] == exported.model["bottleneck"] + 3


def _harmonic_mels(log_f0: torch.Tensor) -> torch.Tensor:
    """(B, F) log-F0 -> (B, 80, F) log-mel-like crops whose ripple across bands follows the pitch."""
    bands = torch.arange(80.0)[None, :, None]
    spacing = torch.exp(log_f0 - 5.0)[:, None, :]
    return 2 * torch.cos(bands / spacing) - 4


def test_pitch_config_errors() -> None:
    with pytest.raises(ValueError, match="pitch_loss"):
        TrainConfig(pitch_loss=-1.0)
    with pytest.raises(ValueError, match="level_shift needs"):
        TrainConfig(level_shift=2.0, speaker_loss=0.3)  # no judge
    with pytest.raises(ValueError, match="level_shift needs"):
        TrainConfig(level_shift=2.0, pitch_loss=1.0)  # no cross conversions to shift
    with pytest.raises(ValueError, match="at least one"):
        PitchJudge(layers=0)
    with pytest.raises(ValueError, match="level_shift needs a decoder with model.pitch_level"):
        _one_cross_step(BASE, TrainConfig(speaker_loss=0.3, pitch_loss=1.0, level_shift=2.0, warp=1.0, gain_db=0.0))
    logged = _one_cross_step(LEVELLED, TrainConfig(speaker_loss=0.3, pitch_loss=1.0, level_shift=2.0, pitch_warmup=0,
                                                   warp=1.0, gain_db=0.0))
    assert {"loss/pitch_judge", "loss/pitch", "loss/pitch_cross"} <= set(logged)


def test_pitch_judge_learns_then_the_term_starts_and_reaches_the_conversions() -> None:
    torch.manual_seed(0)
    judge = PitchJudge(80, channels=16, layers=2)
    optimizer = torch.optim.Adam(judge.parameters(), 3e-3)
    cfg = TrainConfig(pitch_loss=0.5, pitch_warmup=150, speaker_loss=0.3, level_shift=2.0)
    log_f0 = 4.6 + 0.8 * torch.rand(8, 1) + 0.05 * torch.randn(8, 60)
    real = _harmonic_mels(log_f0)
    rel, voiced = torch.zeros(8, 60), torch.ones(8, 60)
    pred = real.clone().requires_grad_(True)
    converted = real.flip(0).clone().requires_grad_(True)
    level = torch.cat([log_f0.flip(0)[:4, 0], torch.zeros(4)])  # the last four rows were decoded without a level
    first: dict[str, float] = {}
    assert float(pitch_terms(judge, optimizer, real, log_f0, cfg, first, pred, rel, voiced, converted, level)) == 0.0
    assert "loss/pitch" not in first  # the judge is still warming up
    for _ in range(cfg.pitch_warmup):
        last: dict[str, float] = {}
        term = pitch_terms(judge, optimizer, real, log_f0, cfg, last, pred, rel, voiced, converted, level)
    assert last["loss/pitch_judge"] < 0.5 * first["loss/pitch_judge"], (first, last)
    assert int(judge.updates) == cfg.pitch_warmup + 1 and "loss/pitch_cross" in last and float(term.detach()) > 0
    grad_pred, grad_conv = torch.autograd.grad(term, [pred, converted])
    assert grad_pred.abs().sum() > 0 and grad_conv[:4].abs().sum() > 0
    assert grad_conv[4:].abs().sum() == 0  # rows without a level ask for no pitch


def test_pitch_recipe_trains_the_judge_alongside_and_exports_the_decoder_alone(tmp_path: Path) -> None:
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)
    Checkpoint.from_module(judge, "speaker", MEL_16K_40, {"name": "tiny-judge"}).save(tmp_path / "judge")
    args = (f"data.content={tmp_path / 'none'}", "model.content_input=cepstrum", "model.content_dim=12",
            "model.pitch_level=true", "train.speaker_loss=0.3", "train.pitch_loss=1.0", "train.pitch_warmup=1",
            "train.level_shift=3.0", f"data.speaker={tmp_path / 'judge'}")
    _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "run", *args)
    logged = (tmp_path / "run" / "logs" / "scalars.jsonl").read_text()
    assert all(k in logged for k in ("loss/pitch_judge", "loss/pitch", "loss/pitch_cross"))
    assert Checkpoint.load(tmp_path / "run" / "best" / "decoder").kind == "conversion"
    assert not (tmp_path / "run" / "best" / "pitch_judge").exists()
    state = load_trainer_state(tmp_path / "run" / "step_00000004" / "trainer_state.pt")
    assert int(state["modules"]["pitch_judge"]["updates"]) == 4  # a resumed run knows the judge's warm-up
    # a decoder without the pitch level cannot start from one with it: one clear error
    error = _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "plain", f"data.content={tmp_path / 'none'}",
                   "model.content_input=cepstrum", "model.content_dim=12", "--init",
                   str(tmp_path / "run" / "best" / "decoder"), ok=False)
    assert "does not fit this decoder" in error and "Traceback" not in error
