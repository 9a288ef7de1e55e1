"""Tests for voicefake.checkpoint: the one checkpoint format, strict loading, unwrap, bundles."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from voicefake.audio.features import MEL_16K_40, MEL_16K_80
from voicefake.checkpoint import (
    BUNDLED,
    BUNDLED_DIR,
    FORMAT_VERSION,
    KINDS,
    Checkpoint,
    CheckpointError,
    average_checkpoints,
    check_same_mel,
    model_classes,
    resolve,
    unwrap,
)
from voicefake.vocoder.model import Vocoder, VocoderConfig


@pytest.fixture
def vocoder() -> Vocoder:
    torch.manual_seed(0)
    return Vocoder(VocoderConfig.tiny(), MEL_16K_80).eval()


@pytest.fixture
def mel_input() -> torch.Tensor:
    return torch.randn(2, 80, 23, generator=torch.Generator().manual_seed(1)) - 3.0


@pytest.fixture
def saved(tmp_path: Path, vocoder: Vocoder) -> Path:
    return Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80, metadata={"step": 3}).save(
        tmp_path / "ckpt"
    )


def _edit_config(path: Path, **changes: object) -> None:
    header = json.loads((path / "config.json").read_text())
    header.update(changes)
    (path / "config.json").write_text(json.dumps(header))


# ----------------------------------------------------------------------------- round trips


def test_save_load_build_identical_outputs(saved: Path, vocoder: Vocoder, mel_input: torch.Tensor) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    ckpt = Checkpoint.load(saved)
    assert ckpt.kind == "vocoder" and ckpt.format_version == FORMAT_VERSION
    assert ckpt.metadata == {"step": 3} and ckpt.mel_config == MEL_16K_80
    assert ckpt.model_config == VocoderConfig.tiny()
    rebuilt = ckpt.build().eval()
    assert isinstance(rebuilt, Vocoder)
    with torch.no_grad():
        assert torch.equal(rebuilt(mel_input), vocoder(mel_input))


def test_resave_is_byte_identical(saved: Path, tmp_path: Path) -> None:
    again = Checkpoint.load(saved).save(tmp_path / "again")
    for name in ("model.safetensors", "config.json"):
        assert (again / name).read_bytes() == (saved / name).read_bytes(), name
    # and through build -> from_module as well
    module = Checkpoint.load(saved).build()
    third = Checkpoint.from_module(module, "vocoder", mel=MEL_16K_80, metadata={"step": 3}).save(
        tmp_path / "third"
    )
    assert (third / "model.safetensors").read_bytes() == (saved / "model.safetensors").read_bytes()


def test_half_loads_as_float32(tmp_path: Path, vocoder: Vocoder, mel_input: torch.Tensor) -> None:
    path = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80).save(tmp_path / "half", half=True)
    full = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80).save(tmp_path / "full")
    size_half = (path / "model.safetensors").stat().st_size
    assert size_half < 0.6 * (full / "model.safetensors").stat().st_size
    ckpt = Checkpoint.load(path)
    assert all(t.dtype == torch.float16 for t in ckpt.state_dict.values() if t.is_floating_point())
    module = ckpt.build()
    assert all(p.dtype == torch.float32 for p in module.parameters())
    for key, value in module.state_dict().items():
        reference = vocoder.state_dict()[key]
        # float16 keeps 11 significant bits: relative error <= 2**-11 (+ subnormals near 0)
        assert (value - reference).abs().max() <= reference.abs().max() * 2**-10 + 1e-6, key
    with torch.no_grad():
        out, ref = module.eval()(mel_input), vocoder(mel_input)
    assert (out - ref).abs().max() < 1e-2 * max(ref.abs().max().item(), 1e-3)


def test_save_replaces_existing_and_leaves_no_temporaries(saved: Path, vocoder: Vocoder) -> None:
    Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80, metadata={"step": 9}).save(saved)
    assert Checkpoint.load(saved).metadata == {"step": 9}
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ckpt"]


def test_saved_files_are_readable(saved: Path) -> None:
    assert stat.S_IMODE(saved.stat().st_mode) == 0o755
    for child in saved.iterdir():
        assert stat.S_IMODE(child.stat().st_mode) == 0o644, child.name


def test_name_from_metadata(tmp_path: Path, vocoder: Vocoder) -> None:
    ckpt = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80, metadata={"name": "v", "version": "2"})
    assert ckpt.name == "v@2"
    assert Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80).name.startswith("vocoder@")


# ----------------------------------------------------------------------------- strict loading


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        Checkpoint.load(tmp_path / "nope")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_missing_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(CheckpointError, match=f"missing {name}"):
        Checkpoint.load(saved)


def test_invalid_json(saved: Path) -> None:
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: invalid JSON"):
        Checkpoint.load(saved)


def test_not_an_object(saved: Path) -> None:
    (saved / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        Checkpoint.load(saved)


def test_unknown_top_level_key(saved: Path) -> None:
    _edit_config(saved, optimizer={})
    with pytest.raises(CheckpointError, match=r"config\.json: unknown key\(s\) \['optimizer'\]"):
        Checkpoint.load(saved)


@pytest.mark.parametrize("key", ["format_version", "kind", "model"])
def test_missing_required_key(saved: Path, key: str) -> None:
    header = json.loads((saved / "config.json").read_text())
    del header[key]
    (saved / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match=f"missing key '{key}'"):
        Checkpoint.load(saved)


def test_unknown_model_config_key(saved: Path) -> None:
    header = json.loads((saved / "config.json").read_text())
    header["model"]["depth"] = 3
    (saved / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match=r"config\.json: model: unknown key\(s\) \['depth'\]"):
        Checkpoint.load(saved)


def test_invalid_model_and_mel_values(saved: Path) -> None:
    header = json.loads((saved / "config.json").read_text())
    header["model"]["architecture"] = "wavenet"
    (saved / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="wavenet"):
        Checkpoint.load(saved)
    header["model"]["architecture"] = "vocos"
    header["mel"]["n_mels"] = "eighty"
    (saved / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match=r"mel\.n_mels: expected int"):
        Checkpoint.load(saved)


@pytest.mark.parametrize("version", [0, 2, "1"])
def test_wrong_format_version(saved: Path, version: object) -> None:
    _edit_config(saved, format_version=version)
    with pytest.raises(CheckpointError, match="format_version .* is not supported"):
        Checkpoint.load(saved)


def test_unknown_kind(saved: Path) -> None:
    _edit_config(saved, kind="tts")
    with pytest.raises(CheckpointError, match="unknown kind 'tts'"):
        Checkpoint.load(saved)
    with pytest.raises(CheckpointError, match="unknown checkpoint kind"):
        model_classes("tts")


def test_missing_and_unexpected_weight_keys(tmp_path: Path, vocoder: Vocoder) -> None:
    ckpt = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80)
    key = sorted(ckpt.state_dict)[0]
    missing = Checkpoint(**{**_fields(ckpt), "state_dict": {k: v for k, v in ckpt.state_dict.items() if k != key}})
    path = missing.save(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: .*missing \['{key}'\]"):
        Checkpoint.load(path).build()
    extra = Checkpoint(**{**_fields(ckpt), "state_dict": {**ckpt.state_dict, "extra.weight": torch.zeros(2)}})
    path = extra.save(tmp_path / "extra")
    with pytest.raises(CheckpointError, match=r"unexpected \['extra.weight'\]"):
        Checkpoint.load(path).build()


def test_wrong_weight_shape(tmp_path: Path, vocoder: Vocoder) -> None:
    ckpt = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80)
    key = "generator.head.weight"
    state = {**ckpt.state_dict, key: torch.zeros(3, 3)}
    path = Checkpoint(**{**_fields(ckpt), "state_dict": state}).save(tmp_path / "shape")
    with pytest.raises(CheckpointError, match=rf"'{key}' has shape \(3, 3\), model expects"):
        Checkpoint.load(path).build()


def test_mismatched_config_for_weights(saved: Path) -> None:
    header = json.loads((saved / "config.json").read_text())
    header["model"]["dim"] = 24
    (saved / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="has shape"):
        Checkpoint.load(saved).build()


@pytest.mark.parametrize("content", [b"", b"garbage bytes that are not safetensors", b"\xff" * 64])
def test_corrupt_safetensors(saved: Path, content: bytes) -> None:
    (saved / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        Checkpoint.load(saved)


def test_truncated_safetensors(saved: Path) -> None:
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        Checkpoint.load(saved)


def test_from_module_checks_kind(vocoder: Vocoder) -> None:
    with pytest.raises(CheckpointError, match="unknown checkpoint kind"):
        Checkpoint.from_module(vocoder, "nonsense")
    with pytest.raises(CheckpointError, match="expects"):
        Checkpoint.from_module(nn.Linear(2, 2), "vocoder")


def _fields(ckpt: Checkpoint) -> dict:
    return {"kind": ckpt.kind, "model": ckpt.model, "mel": ckpt.mel, "metadata": ckpt.metadata}


# ----------------------------------------------------------------------------- unwrap


class _CompiledStandIn(nn.Module):
    """Holds the original as ``_orig_mod``, as torch.compile's OptimizedModule does.

    (A real torch.compile costs seconds of imports; the slow test below uses it.)
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module


def _ddp_stand_in(module: nn.Module) -> nn.parallel.DistributedDataParallel:
    """A DistributedDataParallel instance holding ``module`` as ``.module``, without __init__.

    Building a real DDP imports torch._dynamo (seconds); the training-loop DDP test and the
    slow test below cover real wrappers.
    """
    ddp = nn.parallel.DistributedDataParallel.__new__(nn.parallel.DistributedDataParallel)
    nn.Module.__init__(ddp)
    ddp.module = module
    return ddp


def test_unwrap_strips_wrappers(vocoder: Vocoder) -> None:
    assert unwrap(vocoder) is vocoder
    assert unwrap(nn.DataParallel(vocoder)) is vocoder
    assert unwrap(_CompiledStandIn(nn.DataParallel(vocoder))) is vocoder
    ddp = _ddp_stand_in(vocoder)
    assert unwrap(ddp) is vocoder
    assert unwrap(_CompiledStandIn(ddp)) is vocoder
    assert unwrap(_ddp_stand_in(_CompiledStandIn(vocoder))) is vocoder
    keys = set(Checkpoint.from_module(_CompiledStandIn(ddp), "vocoder", mel=MEL_16K_80).state_dict)
    assert keys == set(vocoder.state_dict())
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in keys)


@pytest.mark.slow
def test_unwrap_real_wrappers(tmp_path: Path, vocoder: Vocoder) -> None:
    import torch.distributed as dist

    compiled = torch.compile(vocoder)
    assert unwrap(compiled) is vocoder
    assert set(Checkpoint.from_module(compiled, "vocoder", mel=MEL_16K_80).state_dict) == set(vocoder.state_dict())
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path / 'pg'}")
    try:
        assert unwrap(torch.compile(nn.parallel.DistributedDataParallel(vocoder))) is vocoder
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- mel checks, bundles


def test_check_same_mel(vocoder: Vocoder) -> None:
    a = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80)
    b = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80)
    check_same_mel(a, b)
    c = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80.replace(hop_length=200, f_max=7600.0))
    with pytest.raises(CheckpointError, match=r"mel configs differ .* \['f_max', 'hop_length'\]"):
        check_same_mel(a, c)
    d = Checkpoint.from_module(vocoder, "vocoder", mel=None)
    with pytest.raises(CheckpointError, match="mel configs differ"):
        check_same_mel(a, d)
    e = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_40)
    with pytest.raises(CheckpointError, match="n_mels"):
        check_same_mel(e, a)


def test_bundled_vocoder_loads_by_name(mel_input: torch.Tensor) -> None:
    assert resolve("vocoder") == BUNDLED_DIR / BUNDLED["vocoder"]
    ckpt = Checkpoint.load("vocoder")
    assert ckpt.kind == "vocoder" and ckpt.mel_config == MEL_16K_80
    assert ckpt.source == BUNDLED_DIR / BUNDLED["vocoder"]
    module = ckpt.build().eval()
    with torch.no_grad():
        wav = module(mel_input)
    assert wav.shape == (2, 22 * 160) and torch.isfinite(wav).all()


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_model_is_small_readable_and_has_its_card(name: str) -> None:
    """Each bundled folder ships readable files, weights of a few MB and a model card named
    after the folder; its config is of a registered kind."""
    folder = BUNDLED_DIR / BUNDLED[name]
    for child in folder.iterdir():
        assert child.stat().st_mode & 0o044 == 0o044, f"{child} is not group/other readable"
    assert (folder / "model.safetensors").stat().st_size < 10 * 2**20
    assert (folder / "MODEL_CARD.md").read_text().startswith(f"# {BUNDLED[name]} ")
    assert json.loads((folder / "config.json").read_text())["kind"] in KINDS


def test_bundled_name_is_not_shadowed_by_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output folder called "detection" must not replace the bundled detector; a path
    spelled as a path (./vocoder, a Path object) is a path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vocoder").mkdir()
    assert resolve("vocoder") == BUNDLED_DIR / BUNDLED["vocoder"]
    assert resolve("./vocoder") == Path("vocoder")
    assert resolve(Path("vocoder")) == Path("vocoder")
    assert resolve(tmp_path / "x") == tmp_path / "x"


def test_resaving_keeps_the_model_card(tmp_path) -> None:
    import torch

    from voicefake.audio.features import MEL_16K_80
    from voicefake.checkpoint import Checkpoint
    from voicefake.conversion.model import ContentEncoder, ContentEncoderConfig

    model = ContentEncoder(ContentEncoderConfig(channels=8, dilations=(1,), content_dim=4, teacher_dim=6), MEL_16K_80)
    ckpt = Checkpoint.from_module(model, "content", MEL_16K_80, {"name": "c"})
    path = ckpt.save(tmp_path / "c")
    (path / "MODEL_CARD.md").write_text("# card\n")
    ckpt.metadata["note"] = "re-calibrated"
    ckpt.save(path, half=True)
    assert (path / "MODEL_CARD.md").read_text() == "# card\n"
    assert Checkpoint.load(path).metadata["note"] == "re-calibrated"
    assert torch.allclose(Checkpoint.load(path).build().stem.weight, model.stem.weight, atol=1e-2)


# ----------------------------------------------------------------------------- averaging


def test_average_of_two_runs_is_their_mean_and_builds(tmp_path: Path) -> None:
    """Weights (batch-norm statistics included) are averaged; counters must agree; the mean loads."""
    from voicefake.detection.model import Detector, DetectorConfig

    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = Detector(DetectorConfig())
        model.train()(torch.randn(2, 16000))  # moves the batch-norm running statistics
        runs.append(Checkpoint.from_module(model, "detection", metadata={"name": "d", "seed": seed}))
    mean = average_checkpoints(runs)
    for key, tensor in mean.state_dict.items():
        a, b = runs[0].state_dict[key], runs[1].state_dict[key]
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (a + b) / 2)
        else:
            assert torch.equal(tensor, a)
    assert any(not torch.equal(runs[0].state_dict[k], runs[1].state_dict[k]) for k in mean.state_dict)
    assert mean.metadata["seed"] == 0 and len(mean.metadata["averaged_from"]) == 2
    loaded = Checkpoint.load(mean.save(tmp_path / "soup"))
    loaded.build()(torch.randn(1, 16000))
    # a checkpoint written before the config gained an option (left at its default) still averages
    torch.manual_seed(2)
    model = Detector(DetectorConfig())
    model.train()(torch.randn(2, 16000))  # the same batch-norm counters as the runs'
    older = Checkpoint.from_module(model, "detection", metadata={"name": "d"})
    older.model = {k: v for k, v in older.model.items() if k != "freq_mask"}
    assert older.model != runs[0].model
    average_checkpoints([older, runs[0]]).build()


def test_average_refuses_what_cannot_be_averaged(vocoder: Vocoder) -> None:
    one = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80)
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([one])
    other_size = Checkpoint.from_module(Vocoder(VocoderConfig.tiny(), MEL_16K_40), "vocoder", mel=MEL_16K_40)
    with pytest.raises(CheckpointError, match="config differs"):
        average_checkpoints([one, other_size])
    counters = Checkpoint.from_module(vocoder, "vocoder", mel=MEL_16K_80)
    counters.state_dict = dict(counters.state_dict, extra=torch.tensor(1))
    with pytest.raises(CheckpointError, match="tensor names differ"):
        average_checkpoints([one, counters])
    one.state_dict = dict(one.state_dict, extra=torch.tensor(2))
    with pytest.raises(CheckpointError, match="integer tensor 'extra' differs"):
        average_checkpoints([one, counters])
