"""Cross conversions in decoder training: the speaker-consistency and cycle terms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conversion.test_recipe import _train
from tests.conversion.test_reference import BASE
from voicefake.audio.features import MEL_16K_40, MEL_16K_80, MelReanalysis
from voicefake.checkpoint import Checkpoint
from voicefake.conversion.decoder_training import (
    TrainConfig,
    band_l1,
    blend_voices,
    build_task,
    cross_losses,
    decoder_inputs,
    relative_pitch,
    train_step,
)
from voicefake.conversion.model import ConversionDecoder
from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig


def _batch(speakers: list[int], frames: int = 60, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    table = torch.nn.functional.normalize(torch.randn(4, 16, generator=gen), dim=-1)
    mel = torch.randn(len(speakers), MEL_16K_80.n_mels, frames, generator=gen) - 4
    return {"mel": mel, "source": mel, "log_f0": torch.full((len(speakers), frames), 5.0),
            "speaker": table[speakers]}


def _inputs(decoder: ConversionDecoder, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return decoder_inputs(None, decoder, batch["source"], batch["log_f0"])


def _judge() -> tuple[SpeakerEncoder, MelReanalysis]:
    torch.manual_seed(1)
    return SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).eval(), MelReanalysis(MEL_16K_80, MEL_16K_40)


def test_config_refuses_negative_weights_and_says_when_it_converts() -> None:
    with pytest.raises(ValueError, match="speaker_loss"):
        TrainConfig(speaker_loss=-1.0)
    with pytest.raises(ValueError, match="cycle_loss"):
        TrainConfig(cycle_loss=-0.5)
    with pytest.raises(ValueError, match="cross_mix"):
        TrainConfig(cross_mix=1.5)
    assert not TrainConfig().converts
    assert TrainConfig(speaker_loss=0.1).converts and TrainConfig(cycle_loss=0.1).converts


def test_speaker_term_skips_pairs_of_one_speaker() -> None:
    torch.manual_seed(0)
    decoder, (judge, to_40) = ConversionDecoder(BASE, MEL_16K_80), _judge()
    cfg = TrainConfig(speaker_loss=1.0)
    same = _batch([2, 2, 2])
    assert float(cross_losses(decoder, None, judge, to_40, _inputs(decoder, same), same, cfg)["speaker"].detach()) == 0.0
    mixed = _batch([0, 1, 1])  # crop 2 takes crop 1's voice, its own: that pair is left out, the other two count
    terms = cross_losses(decoder, None, judge, to_40, _inputs(decoder, mixed), mixed, cfg)
    assert float(terms["speaker"].detach()) > 0 and float(terms["cycle"]) == 0.0  # no cycle asked for


def test_cycle_term_decodes_the_crossed_crop_back_with_its_own_voice() -> None:
    torch.manual_seed(0)
    decoder, (judge, to_40) = ConversionDecoder(BASE, MEL_16K_80).eval(), _judge()
    batch = _batch([0, 1, 3])
    terms = cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, TrainConfig(cycle_loss=1.0))
    rel, voiced = relative_pitch(batch["log_f0"])
    crossed = decoder(decoder.encode(batch["mel"], None), rel, voiced, batch["speaker"][[2, 0, 1]])
    back = decoder(decoder.encode(crossed, None), rel, voiced, batch["speaker"])
    assert torch.allclose(terms["cycle"], band_l1(back, batch["mel"]))
    straight = decoder(decoder.encode(batch["mel"], None), rel, voiced, batch["speaker"])
    assert not torch.allclose(terms["cycle"], band_l1(straight, batch["mel"]))


def test_steps_with_the_speaker_term_move_the_crossed_voice_towards_its_target() -> None:
    torch.manual_seed(0)
    decoder, (judge, to_40) = ConversionDecoder(BASE, MEL_16K_80), _judge()
    batch = _batch([0, 1, 2, 3])
    # no augmentation (one fixed input), and a weight that outweighs the untrained decoder's mel L1
    cfg = TrainConfig(speaker_loss=50.0, grad_clip=0.0, warp=1.0, gain_db=0.0)
    before = float(cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, cfg)["speaker"].detach())
    optimizer = torch.optim.Adam(decoder.parameters(), 3e-3)
    judge_weights = [p.detach().clone() for p in judge.parameters()]
    for _ in range(15):
        logged = train_step({"decoder": decoder}, {"decoder": optimizer}, batch, cfg, MEL_16K_80, None, judge, to_40)
    after = float(cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, cfg)["speaker"].detach())
    assert after < before - 0.05, (before, after)
    assert {"loss/mel_l1", "loss/cross_speaker", "loss/cross_cycle"} <= set(logged)
    assert all(torch.equal(a, b) for a, b in zip(judge_weights, judge.parameters(), strict=True))  # frozen judge


def test_blended_voices_are_unit_embeddings_between_the_two() -> None:
    torch.manual_seed(0)
    first = torch.nn.functional.normalize(torch.rand(200, 16), dim=-1)
    second = torch.nn.functional.normalize(torch.rand(200, 16), dim=-1)
    assert torch.equal(blend_voices(first, second, 0.0), first)
    mixed = blend_voices(first, second, 1.0)
    assert torch.allclose(mixed.norm(dim=-1), torch.ones(200))
    to_first, to_second = (mixed * first).sum(-1), (mixed * second).sum(-1)
    between = (first * second).sum(-1)
    assert bool((to_first >= between - 1e-5).all() and (to_second >= between - 1e-5).all())  # on the arc
    assert not torch.allclose(mixed, first) and not torch.allclose(mixed, second)
    half = blend_voices(first, second, 0.5)
    kept = (half - first).abs().sum(-1) < 1e-6
    assert 0.3 < float(kept.float().mean()) < 0.7  # about half the rows keep the first voice


def test_cross_mix_asks_for_blends_and_refuses_reference_decoders() -> None:
    torch.manual_seed(0)
    decoder, (judge, to_40) = ConversionDecoder(BASE, MEL_16K_80).eval(), _judge()
    batch = _batch([0, 1, 2, 3])
    plain = cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, TrainConfig(speaker_loss=1.0))
    blended = cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch,
                           TrainConfig(speaker_loss=1.0, cross_mix=1.0))
    assert not torch.allclose(plain["speaker"], blended["speaker"])
    batch["reference"] = batch["mel"]
    with pytest.raises(ValueError, match="reference attention"):
        cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, TrainConfig(speaker_loss=1.0, cross_mix=0.5))


def test_the_terms_need_a_matching_speaker_encoder() -> None:
    decoder = ConversionDecoder(BASE, MEL_16K_80)
    batch = _batch([0, 1])
    with pytest.raises(ValueError, match="speaker encoder"):
        train_step({"decoder": decoder}, {"decoder": torch.optim.SGD(decoder.parameters(), 0.0)}, batch,
                   TrainConfig(speaker_loss=1.0), MEL_16K_80, None)
    with pytest.raises(ValueError, match="speaker encoder"):
        build_task(BASE, MEL_16K_80, TrainConfig(cycle_loss=1.0), None)
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40).train()
    build_task(BASE, MEL_16K_80, TrainConfig(speaker_loss=1.0), None, judge=judge, judge_mel=MEL_16K_40)
    assert not judge.training and not any(p.requires_grad for p in judge.parameters())  # the task freezes it
    wide = SpeakerEncoder(SpeakerEncoderConfig(**{**SpeakerEncoderConfig.tiny().__dict__, "emb_dim": 32}), MEL_16K_40)
    with pytest.raises(ValueError, match="32-d embeddings"):
        build_task(BASE, MEL_16K_80, TrainConfig(speaker_loss=1.0), None, judge=wide, judge_mel=MEL_16K_40)


def test_decoder_recipe_trains_with_cross_conversions(tmp_path: Path) -> None:
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)
    Checkpoint.from_module(judge, "speaker", MEL_16K_40, {"name": "tiny-judge"}).save(tmp_path / "judge")
    log = _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "run", "model.content_input=cepstrum",
                 "train.speaker_loss=1", "train.cycle_loss=0.5", f"data.speaker={tmp_path / 'judge'}")
    assert "loss/cross_speaker" in log
    saved = Checkpoint.load(tmp_path / "run" / "best" / "decoder")
    assert saved.metadata["speaker"].startswith("tiny-judge")
