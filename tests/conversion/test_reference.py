"""Reference attention: the decoder reads the target's own reference frames (session 33)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake.audio.features import MEL_16K_80, MelSpectrogram
from voicefake.checkpoint import Checkpoint
from voicefake.conversion.decoder_training import (
    MIN_REST,
    REFERENCE_MARGIN,
    DecoderCrops,
    TrainConfig,
    reference_crop,
    train_step,
)
from voicefake.conversion.finetune import finetune_decoder, reference_mask
from voicefake.conversion.inference import convert_mel
from voicefake.conversion.model import ConversionDecoder, DecoderConfig
from voicefake.conversion.voice import VoiceConfig, VoiceProfile

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "conversion"
sys.path.insert(0, str(RECIPE))
from train_decoder import dev_references  # type: ignore[import-not-found]  # noqa: E402

BASE = DecoderConfig(content_input="cepstrum", content_dim=12, speaker_dim=16, channels=16, dilations=(1, 2),
                     bottleneck=4)
WITH_REF = DecoderConfig(**{**BASE.__dict__, "reference_heads": 2, "reference_dim": 8})


def _inputs(frames: int = 60, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(1, MEL_16K_80.n_mels, frames, generator=gen)
    rel = torch.randn(1, frames, generator=gen) * 0.1
    voiced = (torch.rand(1, frames, generator=gen) > 0.3).float()
    speaker = torch.nn.functional.normalize(torch.randn(1, 16, generator=gen), dim=-1)
    return mel, rel, voiced, speaker


def test_config_refuses_reference_attention_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="cepstrum"):
        DecoderConfig(reference_heads=2)
    with pytest.raises(ValueError, match="multiple"):
        DecoderConfig(content_input="cepstrum", reference_heads=3, reference_dim=8)
    with pytest.raises(ValueError, match=">= 0"):
        DecoderConfig(content_input="cepstrum", reference_heads=-1)


def test_closed_attention_starts_as_the_decoder_without_it() -> None:
    torch.manual_seed(0)
    base = ConversionDecoder(BASE, MEL_16K_80).eval()
    ref = ConversionDecoder(WITH_REF, MEL_16K_80).eval()
    missing, unexpected = ref.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("reference.") for k in missing)
    mel, rel, voiced, speaker = _inputs()
    content = base.encode(mel, None)
    reference = torch.randn(1, MEL_16K_80.n_mels, 90)
    with torch.no_grad():
        assert torch.allclose(ref(content, rel, voiced, speaker, reference), base(content, rel, voiced, speaker))
        # opened, the reference changes the output, and a different reference changes it differently
        torch.nn.init.normal_(ref.reference.out.weight)
        one = ref(content, rel, voiced, speaker, reference)
        two = ref(content, rel, voiced, speaker, reference.flip(-1) * 0.5)
    assert not torch.allclose(one, base(content, rel, voiced, speaker), atol=1e-4)
    assert not torch.allclose(one, two, atol=1e-4)
    with pytest.raises(ValueError, match="reference frames"):
        ref(content, rel, voiced, speaker)
    # what the attention reads, computed once, decodes exactly as the reference itself does
    with torch.no_grad():
        memory = ref.reference_memory(reference)
        assert torch.equal(ref(content, rel, voiced, speaker, memory), one)
    with pytest.raises(ValueError, match="no reference attention"):
        base.reference_memory(reference)


def test_masked_reference_frames_are_not_read() -> None:
    torch.manual_seed(1)
    ref = ConversionDecoder(WITH_REF, MEL_16K_80).eval()
    attention = ref.reference
    assert attention is not None
    torch.nn.init.normal_(attention.out.weight)
    content = torch.randn(1, 60, 12)
    reference, ref_content = torch.randn(1, MEL_16K_80.n_mels, 80), torch.randn(1, 80, 12)
    mask = torch.zeros(1, 80, dtype=torch.bool)
    mask[:, :50] = True
    changed, changed_content = reference.clone(), ref_content.clone()
    # frames 52 on: beyond the key convolution's 2-frame context of the readable ones
    changed[..., 52:], changed_content[:, 52:] = 3.0, -1.0
    with torch.no_grad():
        a = attention(content, attention.memory(reference, ref_content), mask)
        b = attention(content, attention.memory(changed, changed_content), mask)
        c = attention(content, attention.memory(changed, changed_content))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-3)


def test_crops_read_only_the_speakers_other_utterances() -> None:
    # utterance i is filled with the value i: a reference shows which utterances it came from
    mels = [torch.full((2, 4, 30 + 5 * i), float(i)) for i in range(5)]
    f0 = [torch.zeros(m.shape[-1]) for m in mels]
    speaker = torch.tensor([0, 0, 1, 1, 2])  # speaker 2 has one utterance: never drawn
    table = torch.eye(3, 4)
    crops = DecoderCrops(mels, f0, speaker, table, frames=20, items=200, reference_frames=70)
    torch.manual_seed(0)
    seen = set()
    for i in range(200):
        item = crops[i]
        own = float(item["mel"][0, 0])
        assert own != 4.0
        assert item["reference"].shape == (4, 70)
        values = set(item["reference"].unique().tolist())
        partner = {0.0: {1.0}, 1.0: {0.0}, 2.0: {3.0}, 3.0: {2.0}}[own]
        assert values == partner
        seen.add(own)
    assert seen == {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(ValueError, match="two or more"):
        DecoderCrops(mels[:2], f0[:2], torch.tensor([0, 1]), table, frames=20, items=4, reference_frames=10)


def test_a_share_of_the_references_is_the_phone_line_copy() -> None:
    # version 0 (clean) of utterance i holds i, version 1 (its phone-line copy) holds 10 + i
    mels = [torch.stack([torch.full((4, 40), float(i)), torch.full((4, 40), 10.0 + i)]) for i in range(4)]
    f0 = [torch.zeros(40) for _ in mels]
    speaker, table = torch.tensor([0, 0, 1, 1]), torch.eye(2, 4)
    crops = DecoderCrops(mels, f0, speaker, table, frames=20, items=400, reference_frames=30, reference_phone=0.5)
    torch.manual_seed(0)
    phone = 0
    for i in range(400):
        item = crops[i]
        assert float(item["mel"].max()) < 10  # the target stays clean
        values = set(item["reference"].unique().tolist())
        assert values <= {0.0, 1.0, 2.0, 3.0} or values <= {10.0, 11.0, 12.0, 13.0}  # one channel per reference
        phone += min(values) >= 10
    assert 150 < phone < 250
    never = DecoderCrops(mels, f0, speaker, table, frames=20, items=50, reference_frames=30)
    assert all(float(never[i]["reference"].max()) < 10 for i in range(50))
    with pytest.raises(ValueError, match="reference_phone must be"):
        DecoderCrops(mels, f0, speaker, table, frames=20, items=4, reference_frames=30, reference_phone=1.5)
    with pytest.raises(ValueError, match="second"):
        DecoderCrops([m[:1] for m in mels], f0, speaker, table, frames=20, items=4, reference_frames=30,
                     reference_phone=0.5)


def test_a_lone_utterance_reads_its_own_rest_away_from_the_crop() -> None:
    # one speaker, one long utterance whose frame i holds the value i
    frames, margin = 20, REFERENCE_MARGIN
    length = frames + 2 * margin + MIN_REST
    mel = torch.arange(float(length)).expand(2, 3, length).clone()
    crops = DecoderCrops([mel, torch.zeros(2, 3, length - 1)], [torch.zeros(length), torch.zeros(length - 1)],
                         torch.tensor([0, 1]), torch.eye(2, 4), frames=frames, items=100, reference_frames=150)
    assert crops.weights.tolist() == [1.0, 0.0]  # the second is one frame too short to leave a rest
    torch.manual_seed(0)
    for i in range(100):
        item = crops[i]
        first = int(item["mel"][0, 0])
        read = item["reference"][0]
        assert read.shape == (150,)
        assert ((read < first - margin) | (read >= first + frames + margin)).all()


def test_reference_crop_repeats_short_material() -> None:
    out = reference_crop([torch.arange(5.0)[None]], 12)
    assert out.shape == (1, 12)
    assert set(out[0].tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_dev_references_pair_crops_of_one_speaker_and_drop_the_rest() -> None:
    table = torch.eye(3, 4)
    dev = {"mel": torch.stack([torch.full((2, 10), float(i)) for i in range(4)]),
           "log_f0": torch.zeros(4, 10), "speaker": table[[0, 1, 0, 2]]}
    out = dev_references(dev, 25)
    assert out["mel"][:, 0, 0].tolist() == [0.0, 2.0]  # speakers 1 and 2 have one crop each
    assert out["reference"].shape == (2, 2, 25)
    assert set(out["reference"][0].unique().tolist()) == {2.0}
    assert set(out["reference"][1].unique().tolist()) == {0.0}
    with pytest.raises(ValueError, match="no dev crop"):
        dev_references({k: v[1:2] for k, v in dev.items()}, 25)


def test_fine_tuning_mask_hides_the_crop_and_never_everything() -> None:
    mask = reference_mask(1000, 400, 200, margin=100)
    assert not mask[300:700].any() and mask[:300].all() and mask[700:].all()
    tiny = reference_mask(300, 50, 200, margin=100)
    assert tiny.sum() == 1


def test_train_and_fine_tune_steps_run_with_a_reference() -> None:
    torch.manual_seed(2)
    decoder = ConversionDecoder(WITH_REF, MEL_16K_80)
    mel = torch.randn(2, MEL_16K_80.n_mels, 40)
    batch = {"mel": mel, "source": mel, "log_f0": torch.full((2, 40), 5.0), "speaker": torch.randn(2, 16),
             "reference": torch.randn(2, MEL_16K_80.n_mels, 50)}
    optimizer = torch.optim.AdamW(decoder.parameters(), 1e-2)
    before = decoder.reference.out.weight.detach().clone()
    train_step({"decoder": decoder}, {"decoder": optimizer}, batch, TrainConfig(), MEL_16K_80, None)
    assert not torch.equal(decoder.reference.out.weight, before)  # the closed projection learns to open
    features = MelSpectrogram(MEL_16K_80)
    wav = np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32) * 0.05
    tuned, losses = finetune_decoder(decoder.eval(), None, [wav], torch.randn(16), features, steps=2,
                                     batch_size=2, crop_frames=100)
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_an_embedding_only_profile_is_refused_clearly() -> None:
    features = MelSpectrogram(MEL_16K_80)
    decoder = ConversionDecoder(WITH_REF, MEL_16K_80).eval()
    profile = VoiceProfile(VoiceConfig(frames=0, content_dim=8, embedding_dim=16), MEL_16K_80).eval()
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.05
    with pytest.raises(ValueError, match="embedding-only profile"):
        convert_mel(wav, profile, features, None, decoder, blend=0.0)  # type: ignore[arg-type]


def test_decoder_recipe_trains_with_a_reference_and_starts_from_a_plain_decoder(tmp_path: Path) -> None:
    env = {"PYTHONPATH": f"{ROOT}:{RECIPE}", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}

    def train(run: Path, *overrides: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(RECIPE / "train_decoder.py"), "--config",
               str(RECIPE / "configs" / "decoder_tiny.yaml"), "--run", str(run), "model.content_input=cepstrum",
               *overrides]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)

    assert train(tmp_path / "plain").returncode == 0
    ref = ["model.reference_heads=2", "model.reference_dim=8", "data.reference_frames=30"]
    done = train(tmp_path / "ref", *ref, "--init", str(tmp_path / "plain" / "best" / "decoder"))
    assert done.returncode == 0, done.stderr[-2000:]
    saved = Checkpoint.load(tmp_path / "ref" / "best" / "decoder")
    assert saved.model["reference_heads"] == 2
    assert any(k.startswith("reference.") for k in saved.state_dict)
    # one without the other is a clear error
    bad = train(tmp_path / "bad", "model.reference_heads=2", "model.reference_dim=8")
    assert bad.returncode != 0 and "go together" in bad.stderr


def test_speaker_dropout_needs_the_reference_and_hides_the_voice() -> None:
    with pytest.raises(ValueError, match="speaker_dropout"):
        TrainConfig(speaker_dropout=1.0)
    mel = torch.randn(4, MEL_16K_80.n_mels, 40)
    batch = {"mel": mel, "source": mel, "log_f0": torch.full((4, 40), 5.0), "speaker": torch.randn(4, 16) * 100,
             "reference": torch.randn(4, MEL_16K_80.n_mels, 50)}
    plain = ConversionDecoder(BASE, MEL_16K_80)
    with pytest.raises(ValueError, match="reference attention"):
        train_step({"decoder": plain}, {"decoder": torch.optim.SGD(plain.parameters(), 0.0)}, batch,
                   TrainConfig(speaker_dropout=0.5), MEL_16K_80, None)

    class Spy(ConversionDecoder):
        seen: list[torch.Tensor] = []

        def forward(self, *args: torch.Tensor | None, **kwargs: torch.Tensor | None) -> torch.Tensor:
            assert args[3] is not None
            self.seen.append(args[3].detach().clone())
            return super().forward(*args, **kwargs)  # type: ignore[arg-type]

    spy = Spy(WITH_REF, MEL_16K_80)
    torch.manual_seed(0)
    for _ in range(10):
        train_step({"decoder": spy}, {"decoder": torch.optim.SGD(spy.parameters(), 0.0)}, batch,
                   TrainConfig(speaker_dropout=0.5), MEL_16K_80, None)
    rows = torch.cat(Spy.seen)
    zeroed = (rows == 0).all(dim=1)
    assert 0.2 < float(zeroed.float().mean()) < 0.8  # about half the crops lose their embedding...
    kept = rows[~zeroed]
    assert torch.equal(kept, batch["speaker"].repeat(10, 1)[~zeroed])  # ...the others keep it whole
