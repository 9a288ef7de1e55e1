"""Tests for voicefake.data: manifests, splits and crop datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake.data.datasets import FixedCropDataset, RandomCropDataset, crop, load_waveforms
from voicefake.data.manifests import (
    COLUMNS,
    DATA_ENV,
    ManifestRow,
    data_root,
    read_manifest,
    select,
    speaker_disjoint_split,
    write_manifest,
)

# ----------------------------------------------------------------------------- manifests


@pytest.mark.data
def test_shared_manifest(data_root: Path) -> None:
    rows = read_manifest(data_root / "manifest.csv")
    assert len(rows) > 100
    assert {r.label for r in rows} <= {"real", "fake"} and any(r.is_fake for r in rows)
    assert all(r.path and not Path(r.path).is_absolute() for r in rows)
    assert all(r.sample_rate > 0 and r.duration_s > 0 for r in rows if r.media == "audio")
    first = rows[0]
    assert (data_root / first.path).is_file(), f"{first.path} listed but missing"
    train, dev = speaker_disjoint_split(rows, 0.2, seed=0)
    assert not {r.speaker for r in train} & {r.speaker for r in dev}
    assert len(train) + len(dev) == len(rows)


def test_read_small_generated_csv(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "path,speaker,label,duration_s,transcript\n"
        'a.wav,s1,real,1.5,"hello, world"\n'
        "b/c.flac,s2,fake,,\n"
    )
    rows = read_manifest(path)
    assert rows == [
        ManifestRow(path="a.wav", speaker="s1", label="real", duration_s=1.5, transcript="hello, world"),
        ManifestRow(path="b/c.flac", speaker="s2", label="fake"),
    ]
    assert rows[1].is_fake and not rows[0].is_fake
    assert rows[0].media == "audio" and rows[0].sample_rate == 0


def test_unknown_column(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("path,speaker,gender\na.wav,s1,f\n")
    with pytest.raises(ValueError, match=r"unknown manifest column\(s\) \['gender'\]; allowed"):
        read_manifest(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("speaker\ns1\n", "needs a 'path' column"),
        ("path,sample_rate\na.wav,fast\n", r"m\.csv:2: bad number"),
        ("path,speaker\na.wav,s1\nb.wav,s2,extra\n", r"m\.csv:3: .*one field per column"),
        ("path,speaker,label\na.wav,s1\n", r"m\.csv:2: .*one field per column"),
        ("path,speaker\n,s1\n", r"m\.csv:2: empty 'path'"),
    ],
)
def test_malformed_manifests(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_manifest(path)


def test_write_read_round_trip(tmp_path: Path) -> None:
    rows = [
        ManifestRow(path="x/1.wav", speaker="a", label="real", system="human",
                    transcript='quote " comma, newline\nend', sample_rate=16000, channels=1,
                    duration_s=2.25, folder="x", license="CC0", notes="n"),
        ManifestRow(path="x/2.mp4", media="video+audio", duration_s=0.1),
    ]
    path = write_manifest(rows, tmp_path / "sub" / "m.csv")
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_manifest(path) == rows
    assert not list(path.parent.glob(".*")), "temporary file left behind"
    write_manifest(rows[:1], path)  # replaces
    assert read_manifest(path) == rows[:1]


def test_speaker_disjoint_split() -> None:
    rows = [ManifestRow(path=f"{s}/{i}.wav", speaker=f"spk{s}") for s in range(10) for i in range(3)]
    train, dev = speaker_disjoint_split(rows, 0.3, seed=1)
    train_speakers, dev_speakers = {r.speaker for r in train}, {r.speaker for r in dev}
    assert not train_speakers & dev_speakers
    assert len(dev_speakers) == 3 and len(train_speakers) == 7
    assert sorted(train + dev, key=lambda r: r.path) == sorted(rows, key=lambda r: r.path)
    assert speaker_disjoint_split(rows, 0.3, seed=1) == (train, dev)  # deterministic
    assert speaker_disjoint_split(rows, 0.3, seed=2)[1] != dev
    assert speaker_disjoint_split(rows, 0.0) == (rows, [])
    assert len({r.speaker for r in speaker_disjoint_split(rows, 0.01)[1]}) == 1  # at least one
    assert speaker_disjoint_split([], 0.5) == ([], [])


def test_select() -> None:
    rows = [ManifestRow(path="a", label="fake"), ManifestRow(path="b", label="real")]
    assert select(rows, lambda r: r.is_fake) == rows[:1]


def test_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"\$VOICEFAKE_DATA is unset; point it at"):
        data_root()
    assert data_root(required=False) is None
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        data_root()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root() == tmp_path


def test_load_waveforms(tmp_path: Path) -> None:
    from voicefake.audio.io import write_audio

    t = np.arange(8000) / 8000
    write_audio(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 200 * t), 8000)
    write_audio(tmp_path / "sub" / "b.flac", 0.5 * np.sin(2 * np.pi * 300 * t[:4000]), 8000)
    rows = [ManifestRow(path="a.wav"), ManifestRow(path="sub/b.flac")]
    waves = load_waveforms(rows, tmp_path, 16000)
    assert [w.shape for w in waves] == [(16000,), (8000,)]
    assert all(w.dtype == np.float32 for w in waves)


# ----------------------------------------------------------------------------- datasets


def _waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) for n in (5000, 1000, 3200)]


def test_random_crop_shapes_and_padding() -> None:
    waves = _waves()
    data = RandomCropDataset(waves, 3200, crops_per_item=4)
    assert len(data) == 12
    for index in range(len(data)):
        item = data[index]
        assert item.shape == (3200,) and item.dtype == torch.float32
    short = data[1]  # the 1000-sample wave: itself, then zeros
    assert torch.equal(short[:1000], torch.from_numpy(waves[1]))
    assert torch.count_nonzero(short[1000:]) == 0
    exact = data[2]
    assert torch.equal(exact, torch.from_numpy(waves[2]))
    long = data[0].numpy()
    starts = [i for i in range(5000 - 3200 + 1) if np.array_equal(waves[0][i : i + 3200], long)]
    assert len(starts) == 1, "a random crop must be a contiguous piece of the wave"


def test_random_crop_determinism() -> None:
    data = RandomCropDataset(_waves(), 800, crops_per_item=3)
    torch.manual_seed(123)
    first = [data[i] for i in range(len(data))]
    torch.manual_seed(123)
    second = [data[i] for i in range(len(data))]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[3]), "repeated crops of one wave should differ"
    # through a DataLoader with a seeded generator, as fit() does
    from torch.utils.data import DataLoader, RandomSampler

    def epoch(seed: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        loader = DataLoader(data, batch_size=2, sampler=RandomSampler(data, generator=generator))
        return list(loader)

    assert all(torch.equal(a, b) for a, b in zip(epoch(5), epoch(5), strict=True))


def test_random_crop_needs_waves() -> None:
    with pytest.raises(ValueError, match="at least one waveform"):
        RandomCropDataset([], 100)


def test_fixed_crop_dataset() -> None:
    waves = _waves()
    data = FixedCropDataset(waves, 2000)
    assert len(data) == 3
    assert torch.equal(data[0], torch.from_numpy(waves[0][:2000]))
    assert data[1].shape == (2000,) and torch.count_nonzero(data[1][1000:]) == 0
    assert torch.equal(data[2], data[2])


def test_crop_function() -> None:
    wav = torch.arange(10, dtype=torch.float32)
    assert torch.equal(crop(wav, 4, random=False), wav[:4])
    assert torch.equal(crop(wav, 10, random=True), wav)
    assert crop(wav, 12, random=True).shape == (12,)
    torch.manual_seed(0)
    starts = {int(crop(wav, 4, random=True)[0]) for _ in range(200)}
    assert starts == set(range(7))  # every start 0..T-length is reachable


def test_corpus_is_the_first_part_of_the_speaker_name() -> None:
    assert ManifestRow(path="a", speaker="librispeech-1188").corpus == "librispeech"
    assert ManifestRow(path="b", speaker="asterisk-es-co-july_jimenez", label="fake").corpus == "asterisk"
    assert ManifestRow(path="c", speaker="ljspeech").corpus == "ljspeech"


def test_tags_are_the_key_value_items_of_the_notes() -> None:
    row = ManifestRow(path="a", notes="split=dev;channel=phone;hand-checked;url=http://x?a=b")
    assert row.tags == {"split": "dev", "channel": "phone", "url": "http://x?a=b"}
    assert ManifestRow(path="b").tags == {}
