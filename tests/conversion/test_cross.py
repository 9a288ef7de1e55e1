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
    content_term,
    cross_losses,
    decoder_inputs,
    relative_pitch,
    train_step,
)
from voicefake.conversion.model import ContentEncoder, ContentEncoderConfig, ConversionDecoder
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


def _content_judge() -> ContentEncoder:
    torch.manual_seed(2)
    return ContentEncoder(ContentEncoderConfig(channels=16, dilations=(1, 2), content_dim=8), MEL_16K_80).eval()


def test_content_term_config_errors() -> None:
    with pytest.raises(ValueError, match="content_loss must be >= 0"):
        TrainConfig(speaker_loss=1.0, content_loss=-1.0)
    with pytest.raises(ValueError, match="cross conversions"):
        TrainConfig(content_loss=1.0)  # nothing is converted, so there is nothing to listen to
    with pytest.raises(ValueError, match="content encoder"):
        build_task(BASE, MEL_16K_80, TrainConfig(speaker_loss=1.0, content_loss=1.0), None,
                   judge=_judge()[0], judge_mel=MEL_16K_40)
    other = ContentEncoder(ContentEncoderConfig(channels=16, dilations=(1,), content_dim=8), MEL_16K_40)
    with pytest.raises(ValueError, match="another mel"):
        build_task(BASE, MEL_16K_80, TrainConfig(speaker_loss=1.0, content_loss=1.0), None,
                   judge=_judge()[0], judge_mel=MEL_16K_40, content_judge=other)
    with pytest.raises(ValueError, match="content encoder"):
        content_term(None, torch.zeros(1, 80, 10), torch.zeros(1, 80, 10))


def test_content_term_compares_what_the_judge_hears_and_ignores_empty_bands() -> None:
    judge = _content_judge()
    batch = _batch([0, 1, 2])
    mel = batch["mel"]
    assert float(content_term(judge, mel, mel).detach()) == pytest.approx(0.0, abs=1e-5)  # the same words: nothing to pay
    other = _batch([0, 1, 2], seed=5)["mel"]
    wanted = (1 - (judge(other) * judge(mel)).sum(-1)).mean()
    assert torch.allclose(content_term(judge, other, mel), wanted)
    assert float(wanted.detach()) > 0.05
    # a narrowband crop: what the conversion puts above the recording's band costs nothing
    bins = torch.tensor([40, 40, 40])
    top_changed = mel.clone()
    # a pattern that moves over time: a constant offset per band is what the encoder's per-band
    # normalisation removes, so it read as zero to within float noise (-3e-10 on one install)
    top_changed[:, 40:] += 3.0 * torch.randn(top_changed[:, 40:].shape, generator=torch.Generator().manual_seed(7))
    assert float(content_term(judge, top_changed, mel, bins).detach()) == pytest.approx(0.0, abs=1e-5)
    assert float(content_term(judge, top_changed, mel).detach()) > 1e-3


def test_steps_with_the_content_term_keep_the_words_of_the_conversion_and_leave_the_judge_alone() -> None:
    torch.manual_seed(0)
    decoder, (judge, to_40) = ConversionDecoder(BASE, MEL_16K_80), _judge()
    listener = _content_judge()
    batch = _batch([0, 1, 2, 3])
    cfg = TrainConfig(speaker_loss=0.01, content_loss=50.0, grad_clip=0.0, warp=1.0, gain_db=0.0)
    terms = cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, cfg, content_judge=listener)
    before = float(terms["content"].detach())
    assert before > 0
    # without the weight the term is neither computed nor logged
    plain = TrainConfig(speaker_loss=0.01)
    assert "content" not in cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, plain)
    optimizer = torch.optim.Adam(decoder.parameters(), 3e-3)
    weights = [p.detach().clone() for p in listener.parameters()]
    for _ in range(15):
        logged = train_step({"decoder": decoder}, {"decoder": optimizer}, batch, cfg, MEL_16K_80, None, judge, to_40,
                            content_judge=listener)
    after = float(cross_losses(decoder, None, judge, to_40, _inputs(decoder, batch), batch, cfg,
                               content_judge=listener)["content"].detach())
    assert after < before * 0.8, (before, after)
    assert "loss/cross_content" in logged
    assert all(torch.equal(a, b) for a, b in zip(weights, listener.parameters(), strict=True))  # frozen judge
    logged = train_step({"decoder": decoder}, {"decoder": optimizer}, batch, plain, MEL_16K_80, None, judge, to_40)
    assert "loss/cross_content" not in logged


def test_decoder_recipe_trains_with_the_content_term(tmp_path: Path) -> None:
    # a cepstrum decoder loads the content encoder only to listen with it
    _train("train.py", "tiny.yaml", tmp_path / "content")
    judge = SpeakerEncoder(SpeakerEncoderConfig.tiny(), MEL_16K_40)
    Checkpoint.from_module(judge, "speaker", MEL_16K_40, {"name": "tiny-judge"}).save(tmp_path / "judge")
    log = _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "run", "model.content_input=cepstrum",
                 "train.speaker_loss=1", "train.content_loss=1", f"data.speaker={tmp_path / 'judge'}",
                 f"data.content={tmp_path / 'content' / 'best' / 'encoder'}")
    assert "loss/cross_content" in log
    saved = Checkpoint.load(tmp_path / "run" / "best" / "decoder")
    assert saved.metadata["content"] == "cepstrum" and saved.metadata["content_judge"].startswith("content")
    assert set(saved.state_dict) == set(ConversionDecoder(saved.model_config, saved.mel_config).state_dict())
    log = _train("train_decoder.py", "decoder_tiny.yaml", tmp_path / "none", "model.content_input=cepstrum",
           "train.speaker_loss=1", "train.content_loss=1", f"data.speaker={tmp_path / 'judge'}",
           f"data.content={tmp_path / 'missing'}", ok=False)
    assert "missing: not a checkpoint directory" in log  # one clear error, before any training
