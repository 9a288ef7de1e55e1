"""Paired text-to-speech data for the conversion decoder: alignment, packing, training shares, evaluation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.nn import functional as F

from voicefake.audio.features import MEL_16K_80
from voicefake.conversion.decoder_training import convert_batch, eval_step
from voicefake.conversion.model import ConversionDecoder, DecoderConfig
from voicefake.data.manifests import ManifestRow, write_manifest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "conversion"
sys.path.insert(0, str(RECIPE))

from build_paired import align  # type: ignore[import-not-found]  # noqa: E402
from train_decoder import DataConfig, real_data, select_engines  # type: ignore[import-not-found]  # noqa: E402


def test_alignment_recovers_a_known_time_warp() -> None:
    gen = torch.Generator().manual_seed(0)
    rendered = F.normalize(torch.randn(40, 16, generator=gen), dim=-1)
    # the real utterance says the same sounds, each held for 1-3 frames
    truth = np.repeat(np.arange(40), np.random.default_rng(0).integers(1, 4, 40))
    real = F.normalize(rendered[truth] + 0.1 * torch.randn(len(truth), 16, generator=gen), dim=-1)
    index, cost = align(real, rendered)
    assert index.shape == truth.shape and np.all(np.diff(index) >= 0)
    assert np.mean(index == truth) > 0.95
    # other words align worse
    _, other = align(real, F.normalize(torch.randn(40, 16, generator=gen), dim=-1))
    assert cost < 0.1 < other


def _paired(items: int, frames: int, versions: int = 3, dim: int = 4) -> dict:
    part = {"mels": [torch.full((versions, 80, frames), float(i)).half() for i in range(items)],
            "log_f0": [torch.zeros(frames).half() for _ in range(items)],
            "speaker": torch.arange(items) % 2, "embeddings": F.normalize(torch.randn(2, dim), dim=-1),
            "bins": torch.full((items,), 61), "engines": [["espeak", "flite-rms"]] * items}
    return {"train": part, "dev": part, "meta": {"train_utterances": items}}


def _caches(utterances: int, frames: int, dim: int = 4) -> tuple[dict, dict]:
    cache = {"train": {"mels": [torch.full((2, 80, frames), -1.0).half() for _ in range(utterances)]}}
    extra = {"train": {"log_f0": [torch.zeros(frames).half() for _ in range(utterances)],
                       "speaker": torch.zeros(utterances, dtype=torch.long),
                       "embeddings": F.normalize(torch.randn(3, dim), dim=-1), "bins": torch.full((utterances,), 80)},
             "dev": {"mel": torch.zeros(2, 80, 20), "log_f0": torch.zeros(2, 20), "speaker": torch.zeros(2, dim)}}
    return cache, extra


def test_paired_items_get_their_share_their_speakers_and_dev_crops() -> None:
    cache, extra = _caches(utterances=30, frames=40)
    paired = _paired(items=3, frames=40)
    train, dev = real_data(cache, extra, paired, DataConfig(cache="x", paired="p.pt", paired_share=0.4, crop_frames=20))
    draws = [train[i] for i in range(600)]
    share = np.mean([float(d["mel"].mean()) >= 0 for d in draws])
    assert 0.3 < share < 0.5  # 3 paired items against 30 others, drawn 40 % of the time
    # paired speakers follow the cache's three in the joint table; their bins are their own
    assert len(train.embeddings) == 5 and train.speaker[-3:].tolist() == [3, 4, 3]
    assert train.bins[-1] == 61 and train.bins[0] == 80
    # the dev batch gains one crop per rendering (two per item), target = the real version
    assert dev["paired_source"].shape == (6, 80, 20) and dev["paired_speaker"].shape == (6, 4)
    assert torch.equal(dev["paired_mel"][1], torch.zeros(80, 20)) and dev["mel"].shape == (2, 80, 20)
    # without pairs: the old draws, no paired dev crops
    train, dev = real_data(cache, extra, {}, DataConfig(cache="x", crop_frames=20))
    assert len(train.mels) == 30 and "paired_source" not in dev


def test_paired_engines_keep_only_their_renderings() -> None:
    paired = _paired(items=3, frames=40)
    paired["train"]["engines"] = [["espeak", "flite-rms"], ["espeak"], ["espeak", "flite-slt"]]
    paired["train"]["mels"][1] = paired["train"]["mels"][1][:2]  # espeak-ng's rendering only
    for i in (0, 2):
        paired["train"]["mels"][i][2] = -5.0  # the flite renderings
    only = select_engines(paired["train"], ("espeak",))
    assert [m.shape[0] for m in only["mels"]] == [2, 2, 2] and all(float(m[1].min()) >= 0 for m in only["mels"])
    only = select_engines(paired["train"], ("flite",))
    assert [m.shape[0] for m in only["mels"]] == [2, 2] and only["speaker"].tolist() == [0, 0]
    assert only["engines"] == [["flite-rms"], ["flite-slt"]] and float(only["mels"][0][1].max()) == -5.0
    assert select_engines(paired["train"], ()) is paired["train"]  # no engines named: all renderings
    cache, extra = _caches(utterances=4, frames=40)
    flite_only = {**paired, "train": only, "dev": select_engines(paired["dev"], ("flite",))}
    _, dev = real_data(cache, extra, flite_only, DataConfig(cache="x", paired="p.pt", crop_frames=20))
    assert dev["paired_source"].shape[0] == 2  # the dev items' flite renderings only
    nothing = {**paired, "train": select_engines(paired["train"], ("festival",))}
    assert nothing["train"]["mels"] == []
    with pytest.raises(ValueError, match="p.pt: no paired training item with a rendering by festival"):
        real_data(cache, extra, nothing, DataConfig(cache="x", paired="p.pt", paired_engines=("festival",)))


def test_paired_data_errors() -> None:
    cache, extra = _caches(utterances=4, frames=40)
    with pytest.raises(ValueError, match="rebuild it with the same speaker encoder"):
        real_data(cache, extra, _paired(2, 40, dim=8), DataConfig(cache="x", paired="p.pt", crop_frames=20))
    with pytest.raises(ValueError, match="paired_share must be in"):
        DataConfig(paired="p.pt", paired_share=1.0)
    # the two shares count together only where the decoder cache has extra utterances
    real_data(cache, extra, _paired(2, 40), DataConfig(cache="x", paired="p.pt", paired_share=0.8, crop_frames=20))
    extra["train"]["extra_mels"] = [torch.zeros(2, 80, 40).half()]
    extra["train"]["log_f0"].append(torch.zeros(40).half())
    extra["train"]["speaker"] = torch.zeros(5, dtype=torch.long)
    extra["train"]["bins"] = torch.full((5,), 80)
    with pytest.raises(ValueError, match="must be below 1 with extra utterances"):
        real_data(cache, extra, _paired(2, 40), DataConfig(cache="x", paired="p.pt", paired_share=0.6, crop_frames=20))


def test_eval_reports_the_paired_distance_only_with_paired_crops() -> None:
    torch.manual_seed(0)
    decoder = ConversionDecoder(DecoderConfig(content_input="cepstrum", content_dim=12, speaker_dim=4, channels=16,
                                              dilations=(1,), bottleneck=4), MEL_16K_80).eval()
    batch = {"mel": torch.randn(1, 2, 80, 30), "log_f0": torch.zeros(1, 2, 30), "speaker": torch.randn(1, 2, 4)}
    with torch.no_grad():
        out = eval_step({"decoder": decoder}, batch, None)
        assert set(out) == {"eval/mel_l1"}
        # a paired crop whose rendering is the real crop itself scores exactly the self-reconstruction
        paired = {"paired_source": batch["mel"], "paired_mel": batch["mel"], "paired_log_f0": batch["log_f0"],
                  "paired_speaker": batch["speaker"]}
        out = eval_step({"decoder": decoder}, {**batch, **paired}, None)
        assert out["eval/paired_mel_l1"] == pytest.approx(out["eval/mel_l1"])
        # another rendering of the same crop: the decoder reads the rendering, the target stays the real crop
        rendering = torch.randn(1, 2, 80, 30)
        out = eval_step({"decoder": decoder}, {**batch, **paired, "paired_source": rendering}, None)
        expected = (convert_batch(None, decoder, rendering[0], batch["log_f0"][0], batch["speaker"][0])
                    - batch["mel"][0]).abs().mean()
    assert out["eval/paired_mel_l1"] == pytest.approx(float(expected))
    assert out["eval/paired_mel_l1"] != pytest.approx(out["eval/mel_l1"])


def test_build_paired_end_to_end(tmp_path: Path) -> None:
    from voicefake.synthesis import espeak

    texts = ["Please call me back this afternoon.", "The meeting moved to Thursday morning.",
             "Send the signed contract to the bank.", "Nobody answered the phone at the office."]
    rows = []
    for i, text in enumerate(texts):  # a second espeak-ng voice stands in for the real speakers
        wav, rate = espeak.speak(text, "en-gb-x-rp", 140, pitch=30 + 10 * i)
        path = f"real/{i}.wav"
        (tmp_path / "real").mkdir(exist_ok=True)
        sf.write(tmp_path / path, wav, rate)
        rows.append(ManifestRow(path=path, speaker=f"s{i % 2}", label="real", transcript=text, sample_rate=rate,
                                notes="Asterisk core sounds (en)" if i else ""))
    data = tmp_path / "data"
    write_manifest(rows[:3], data / "train.csv")
    write_manifest(rows[3:], data / "dev.csv")
    done = subprocess.run([sys.executable, str(RECIPE / "build_paired.py"), "--data", str(data), "--drop", "0",
                           "--min-seconds", "1.0"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": f"{ROOT}:{RECIPE}", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "VOICEFAKE_DATA": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    out = torch.load(data / "paired.pt", weights_only=True)
    train = out["train"]
    assert len(train["mels"]) == 3 and len(out["dev"]["mels"]) == 1
    for mels, f0 in zip(train["mels"], train["log_f0"], strict=True):
        assert mels.shape[0] >= 2 and mels.shape[1] == 80 and len(f0) == mels.shape[-1]
        assert not torch.equal(mels[0], mels[1])  # the rendering, warped onto the real frames
    assert train["embeddings"].shape == (2, 256) and sorted(train["speaker"].tolist()) == [0, 0, 1]
    assert out["meta"]["train_languages"] == ["en"] and train["engines"][0][0] == "espeak"
