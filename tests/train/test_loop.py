"""Tests for voicefake.train (fit, resume, export) through the tiny vocoder recipe."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from voicefake.audio.features import MelConfig
from voicefake.checkpoint import Checkpoint, CheckpointError
from voicefake.config import from_dict, load_yaml
from voicefake.data.datasets import FixedCropDataset, RandomCropDataset
from voicefake.train.loop import LoopConfig, fit
from voicefake.train.state import (
    STATE_FILE,
    export,
    last_step_checkpoint,
    list_steps,
    load_trainer_state,
    save_step,
    step_dir,
)
from voicefake.vocoder.model import Vocoder, VocoderConfig
from voicefake.vocoder.training import TrainConfig, build_task, train_step

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes/vocoder/train.py"
TINY = REPO / "recipes/vocoder/configs/tiny.yaml"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _recipe_module() -> Any:
    name = "_recipe_vocoder_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, RECIPE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _tiny() -> tuple[VocoderConfig, MelConfig, TrainConfig, LoopConfig, Any]:
    raw = load_yaml(TINY)
    data_cls = _recipe_module().DataConfig
    return (
        from_dict(VocoderConfig, raw["model"], "model"),
        from_dict(MelConfig, raw["mel"] or {}, "mel"),
        from_dict(TrainConfig, raw["train"], "train"),
        from_dict(LoopConfig, raw["loop"], "loop"),
        from_dict(data_cls, raw["data"], "data"),
    )


def _fit_tiny(run_dir: Path, **loop_changes: Any) -> tuple[Any, LoopConfig]:
    """Runs fit() in-process on the tiny config; returns the task (its modules after training)."""
    model, mel, train_cfg, loop, _ = _tiny()
    loop = replace(loop, threads=1, **loop_changes)
    waves = _recipe_module().synthetic_waves(4, 0.5, mel.sample_rate, seed=0)
    torch.manual_seed(0)
    task = build_task(model, mel, train_cfg, metadata={"name": "tiny"})
    fit(task, loop, RandomCropDataset(waves, train_cfg.segment_samples, 2), run_dir,
        eval_data=FixedCropDataset(waves[:1], 1600), resolved_config={"loop": {"max_steps": loop.max_steps}})
    return task, loop


def _logged_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "logs/scalars.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if "loss/total" in json.loads(line)]


@pytest.fixture(scope="module", autouse=True)
def _warm_optimizers() -> None:
    """The first optimizer a process builds imports torch._dynamo (seconds); pay it once here."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step tiny run (shared, read-only for the tests that use it)."""
    run_dir = tmp_path_factory.mktemp("loop") / "run"
    _fit_tiny(run_dir)
    return run_dir


# ----------------------------------------------------------------------------- train_step


def test_two_train_steps_change_parameters() -> None:
    model, mel, train_cfg, _, _ = _tiny()
    torch.manual_seed(0)
    task = build_task(model, mel, train_cfg)
    waves = _recipe_module().synthetic_waves(2, 0.25, mel.sample_rate, seed=1)
    batch = torch.stack([torch.from_numpy(w[: train_cfg.segment_samples]) for w in waves])
    before = {name: [p.detach().clone() for p in task.modules[name].parameters()]
              for name in ("generator", "discriminator")}
    for _ in range(2):
        scalars = train_step(task.modules, task.optimizers, batch, train_cfg)
        assert {"loss/total", "loss/mel", "loss/adv", "loss/fm", "loss/disc",
                "grad_norm/generator", "grad_norm/discriminator", "lr"} <= set(scalars)
        assert all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in scalars.values()), scalars
    for name, params in before.items():
        after = list(task.modules[name].parameters())
        changed = sum(not torch.equal(a, b) for a, b in zip(after, params, strict=True))
        assert changed == len(params), f"{name}: only {changed}/{len(params)} parameters changed"


def test_mel_only_loss_skips_discriminator() -> None:
    model, mel, train_cfg, _, _ = _tiny()
    cfg = replace(train_cfg, loss_weights={"mel": 1.0})
    task = build_task(model, mel, cfg)
    batch = torch.randn(2, cfg.segment_samples) * 0.1
    before = [p.detach().clone() for p in task.modules["discriminator"].parameters()]
    scalars = train_step(task.modules, task.optimizers, batch, cfg)
    assert "loss/disc" not in scalars and "loss/adv" not in scalars
    assert scalars["loss/total"] == pytest.approx(scalars["loss/mel"])
    assert all(torch.equal(a, b) for a, b in zip(task.modules["discriminator"].parameters(), before, strict=True))


# ----------------------------------------------------------------------------- the recipe


def test_tiny_recipe_trains_in_a_subprocess(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--config", str(TINY), "--run", str(run_dir)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"done: {run_dir}" in result.stdout
    resolved = load_yaml(run_dir / "config.yaml")
    assert set(resolved) == {"model", "mel", "train", "loop", "data"}
    assert resolved["loop"]["max_steps"] == 4 and resolved["model"]["dim"] == 16
    assert _logged_steps(run_dir) == [2, 4]
    records = [json.loads(line) for line in (run_dir / "logs/scalars.jsonl").read_text().splitlines()]
    assert any("eval/mel_l1" in r for r in records)
    assert list_steps(run_dir) == [2, 4]
    for step in (2, 4):
        folder = step_dir(run_dir, step)
        assert (folder / STATE_FILE).is_file()
        assert Checkpoint.load(folder / "generator").metadata["step"] == step
    best = Checkpoint.load(run_dir / "best/generator")
    assert best.metadata["best"]["metric"] == "eval/mel_l1" and best.metadata["step"] in (2, 4)
    assert best.build() is not None
    assert not list(run_dir.glob(".step_*")), "temporary step folders left behind"


def test_recipe_rejects_unknown_section_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _recipe_module()
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(TINY), "--run", str(tmp_path / "r"),
                                      "optim.lr=1"])
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['optim'\]"):
        module.main()
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(TINY), "--run", str(tmp_path / "r"),
                                      "train.lrr=1"])
    with pytest.raises(ValueError, match="lrr"):
        module.main()
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- resume


def test_resume_continues_from_last_complete_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _fit_tiny(run_dir, max_steps=4, checkpoint_every=2, keep_last=10)
    assert list_steps(run_dir) == [2, 4]
    first_config = (run_dir / "config.yaml").read_text()
    # what a kill in the middle of saving step 6 leaves: a temporary folder, and (had the save
    # not been atomic) a step folder without trainer state. Neither is a completed step.
    (run_dir / ".step_00000006.abcd1234/generator").mkdir(parents=True)
    (run_dir / "step_00000006/generator").mkdir(parents=True)
    assert list_steps(run_dir) == [2, 4]
    _fit_tiny(run_dir, max_steps=8, checkpoint_every=2, keep_last=10)
    assert _logged_steps(run_dir) == [2, 4, 6, 8]  # continued, not restarted from 0
    assert list_steps(run_dir) == [2, 4, 6, 8]
    assert load_trainer_state(step_dir(run_dir, 8) / STATE_FILE)["step"] == 8
    assert (run_dir / "config.yaml").read_text() == first_config  # written before step 1 only
    assert not list(run_dir.glob(".step_*")), "stale temporary folder not cleaned up"


def test_max_minutes_stops_saves_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wall-clock budget ends the run at a complete, evaluated step; re-running resumes it."""
    import voicefake.train.loop as loop_module

    clock = {"now": 0.0}

    def fake_monotonic() -> float:  # each call is one minute later: the budget runs out fast
        clock["now"] += 60.0
        return clock["now"]

    monkeypatch.setattr(loop_module.time, "monotonic", fake_monotonic)
    run_dir = tmp_path / "run"
    _fit_tiny(run_dir, max_steps=50, checkpoint_every=100, eval_every=100, log_every=100,
              max_minutes=2.5, best_metric="eval/mel_l1", keep_last=10)
    steps = list_steps(run_dir)
    assert len(steps) == 1 and 1 <= steps[0] <= 3  # stopped at the budget, not at step 50, and saved
    assert (run_dir / "best" / "generator").is_dir()  # evaluated before stopping
    assert _logged_steps(run_dir) == steps
    _fit_tiny(run_dir, max_steps=50, checkpoint_every=100, eval_every=100, log_every=100,
              max_minutes=2.5, best_metric="eval/mel_l1", keep_last=10)
    again = list_steps(run_dir)  # resumed with a fresh budget, from the saved step
    assert again[0] == steps[0] and len(again) == 2 and steps[0] < again[1] <= 2 * steps[0]
    with pytest.raises(ValueError, match="max_minutes"):
        LoopConfig(max_minutes=-1)


def test_resumed_state_equals_saved_state(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    saved = load_trainer_state(step_dir(run_dir, 4) / STATE_FILE)
    # max_steps already reached: fit only resumes
    task, _ = _fit_tiny(run_dir, max_steps=4)
    assert _logged_steps(run_dir) == [2, 4]
    for name, optimizer in task.optimizers.items():
        _assert_same_state(optimizer.state_dict(), saved["optimizers"][name], name)
    for name, scheduler in task.schedulers.items():
        assert scheduler.state_dict()["last_epoch"] == saved["schedulers"][name]["last_epoch"] == 4
    _assert_same_state(task.modules["discriminator"].state_dict(), saved["modules"]["discriminator"], "disc")
    generator = Checkpoint.load(step_dir(run_dir, 4) / "generator").state_dict
    _assert_same_state(task.modules["generator"].state_dict(), generator, "generator")
    assert saved["optimizers"]["generator"]["state"], "optimizer state is empty"


def _assert_same_state(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_keep_last_prunes_old_steps(tmp_path: Path) -> None:
    ckpt = Checkpoint.load(REPO / "voicefake/models/vocoder-16k")
    small = {"generator": Checkpoint(ckpt.kind, ckpt.model, {}, ckpt.mel)}
    for step in (1, 2, 3, 4):
        save_step(tmp_path, step, small, {"step": step}, keep_last=2)
    assert list_steps(tmp_path) == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000003", "step_00000004"]


def test_last_step_checkpoint_reads_the_newest_complete_step(tmp_path: Path) -> None:
    ckpt = Checkpoint.load(REPO / "voicefake/models/vocoder-16k")
    with pytest.raises(CheckpointError, match="no completed training step"):
        last_step_checkpoint(tmp_path, "generator")
    for step in (1, 2):
        small = {"generator": Checkpoint(ckpt.kind, ckpt.model, {}, ckpt.mel, metadata={"step": step})}
        save_step(tmp_path, step, small, {"step": step}, keep_last=5)
    step_dir(tmp_path, 3).mkdir()  # a step folder without trainer state is not complete
    assert last_step_checkpoint(tmp_path, "generator").metadata["step"] == 2


@pytest.mark.slow  # two interpreter start-ups and a training run: ~20 s on a busy 2-core box
def test_sigkill_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(RECIPE), "--config", str(TINY), "--run", str(run_dir),
         "loop.max_steps=100000", "loop.checkpoint_every=2", "loop.keep_last=1000", "loop.eval_every=1000"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (step_dir(run_dir, 4) / STATE_FILE).exists():
            assert proc.poll() is None, "training exited early"
            assert time.monotonic() < deadline, "no step_00000004 within 240 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = list_steps(run_dir)[-1]
    assert last >= 4
    module = _recipe_module()
    monkeypatch.setattr(sys, "argv", ["train.py", "--config", str(TINY), "--run", str(run_dir),
                                      f"loop.max_steps={last + 4}", "loop.checkpoint_every=2",
                                      "loop.keep_last=1000"])
    module.main()
    steps = _logged_steps(run_dir)
    assert steps[-2:] == [last + 2, last + 4]
    assert steps.count(last + 2) == 1 and sorted(set(steps)) == steps
    assert list_steps(run_dir)[-1] == last + 4
    assert not list(run_dir.glob(".step_*"))


# ----------------------------------------------------------------------------- DDP


def _torchrun() -> Path:
    path = Path(sys.executable).with_name("torchrun")
    if not path.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    return path


DDP_WRAPPER = '''
import os, sys, runpy, torch
import voicefake.train.loop as loop
real_fit = loop.fit
def fit(task, *args, **kwargs):
    out = real_fit(task, *args, **kwargs)
    state = {f"{n}.{k}": v for n in ("generator", "discriminator")
             for k, v in task.modules[n].state_dict().items()}
    torch.save(state, os.path.join(os.environ["DUMP_DIR"], f"rank{os.environ['RANK']}.pt"))
    return out
loop.fit = fit
sys.argv = [sys.argv[0]] + sys.argv[1:]
runpy.run_path(os.environ["RECIPE"], run_name="__main__")
'''


# torchrun + two interpreters importing torch: about 16 s of CPU (30 s wall on a busy 2-core
# machine). It stays in the default run: issue 2 asks for the DDP path to run in CI.
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo): ranks end with identical parameters."""
    wrapper = tmp_path / "ddp_wrapper.py"
    wrapper.write_text(DDP_WRAPPER)
    run_dir = tmp_path / "run"
    env = {**_env(), "DUMP_DIR": str(tmp_path), "RECIPE": str(RECIPE)}
    result = subprocess.run(
        [str(_torchrun()), "--standalone", "--nproc_per_node=2", str(wrapper), "--config", str(TINY),
         "--run-dir", str(run_dir), "loop.max_steps=2", "loop.eval_every=1000"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert list_steps(run_dir) == [2]
    assert _logged_steps(run_dir) == [2]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert set(rank0) == set(rank1)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks differ in {key}"
    # rank 0 saved exactly those weights, with no DDP prefixes in the keys
    saved = Checkpoint.load(step_dir(run_dir, 2) / "generator")
    saved.build()
    for key, value in saved.state_dict.items():
        assert torch.equal(value, rank0[f"generator.{key}"]), key
    exported = export(run_dir, tmp_path / "export")
    assert Checkpoint.load(exported).build() is not None


# ----------------------------------------------------------------------------- export


def test_export_writes_release_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    out = export(trained_run, tmp_path / "release")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    ckpt = Checkpoint.load(out)
    assert "best" in ckpt.metadata  # default source: best/
    assert all(t.dtype == torch.float16 for t in ckpt.state_dict.values() if t.is_floating_point())
    header = json.loads((out / "config.json").read_text())
    assert set(header) == {"format_version", "kind", "voicefake_version", "model", "mel", "metadata"}
    assert "optimizer" not in json.dumps(header) and "train" not in header
    step = export(trained_run, tmp_path / "step2", step=2, half=False)
    assert Checkpoint.load(step).metadata["step"] == 2
    assert all(t.dtype == torch.float32 for t in Checkpoint.load(step).state_dict.values())


def test_export_refuses_existing_target_and_bad_steps(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        export(trained_run, tmp_path / "taken")
    with pytest.raises(CheckpointError, match="no such step folder"):
        export(trained_run, tmp_path / "x", step=3)
    with pytest.raises(CheckpointError, match="no module 'critic'"):
        export(trained_run, tmp_path / "x", step=4, module="critic")
    with pytest.raises(CheckpointError, match="no completed step folders"):
        export(tmp_path / "empty_run", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_export(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voicefake.cli import main

    out = tmp_path / "release"
    assert main(["export", str(trained_run), str(out), "--json", "--step", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record == {"file": str(trained_run), "output": str(out)}
    assert Checkpoint.load(out).metadata["step"] == 4
    assert main(["export", str(trained_run), str(out), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "already exists" in captured.err and "--force" in captured.err
    (out / "MODEL_CARD.md").write_text("card")
    assert main(["export", str(trained_run), str(out), "--force", "--json"]) == 0
    assert "best" in Checkpoint.load(out).metadata
    assert (out / "MODEL_CARD.md").read_text() == "card"  # --force replaces the weights, not the card


def test_warmup_cosine_schedule() -> None:
    from voicefake.train.loop import warmup_cosine

    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.2) == pytest.approx(0.6)  # half way down the cosine
    assert warmup_cosine(110, 10, 110, 0.2) == pytest.approx(0.2)
    assert warmup_cosine(10_000, 10, 110, 0.2) == pytest.approx(0.2)


def test_init_from_a_frame_head_checkpoint_adds_only_the_advance_layer(tmp_path: Path) -> None:
    """``--init`` may start an accumulating phase head from a "frame" head's checkpoint (the
    advance layer is new and starts at zero); any other mismatch is a clear error."""
    from voicefake.audio.features import MEL_16K_80

    init_generator = _recipe_module().init_generator
    torch.manual_seed(0)
    frame = Vocoder(VocoderConfig.tiny(), MEL_16K_80)
    Checkpoint.from_module(frame, "vocoder", MEL_16K_80).save(tmp_path / "frame")
    accumulate = Vocoder(VocoderConfig.tiny().replace(phase_head="accumulate"), MEL_16K_80)
    init_generator(accumulate, str(tmp_path / "frame"))
    assert torch.equal(accumulate.generator.head.weight, frame.generator.head.weight)
    assert not accumulate.generator.advance.weight.any()
    wider = Vocoder(VocoderConfig.tiny().replace(phase_head="accumulate", num_layers=2), MEL_16K_80)
    with pytest.raises(SystemExit, match="do not fit this model config"):
        init_generator(wider, str(tmp_path / "frame"))


def test_pruning_keeps_the_strongest_blocks_and_channels(tmp_path: Path) -> None:
    """``recipes/vocoder/prune.py``: pruning to the full size changes nothing; a smaller model
    keeps the most important blocks in order, loads as a checkpoint and trains from --init."""
    from voicefake.audio.features import MEL_16K_80

    spec = importlib.util.spec_from_file_location("_recipe_vocoder_prune", REPO / "recipes/vocoder/prune.py")
    assert spec is not None and spec.loader is not None
    prune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prune)
    torch.manual_seed(0)
    big = Vocoder(VocoderConfig.tiny().replace(num_layers=3), MEL_16K_80).eval()
    with torch.no_grad():
        big.generator.blocks[1].gamma.mul_(0.01)  # block 1 contributes least
    mel = torch.randn(1, 80, 30)
    with torch.no_grad():
        same = prune.prune(big, 3, 32)
        assert torch.allclose(same(mel, phase_iterations=0), big(mel, phase_iterations=0), atol=1e-6)
        small = prune.prune(big, 2, 20)
    assert small.config.num_layers == 2 and small.config.intermediate_dim == 20
    assert torch.equal(small.generator.blocks[1].gamma, big.generator.blocks[2].gamma)  # blocks 0 and 2 kept
    assert torch.equal(small.generator.head.weight, big.generator.head.weight)
    with pytest.raises(ValueError, match="at most 3 layers"):
        prune.prune(big, 4, 20)
    Checkpoint.from_module(small, "vocoder", MEL_16K_80).save(tmp_path / "small")
    student = Vocoder(VocoderConfig.tiny().replace(num_layers=2, intermediate_dim=20), MEL_16K_80)
    _recipe_module().init_generator(student, str(tmp_path / "small"))
    assert torch.equal(student.generator.blocks[0].pwconv1.weight, small.generator.blocks[0].pwconv1.weight)
