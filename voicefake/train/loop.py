"""One generic training loop, :func:`fit`, used by every recipe.

A capability supplies a :class:`TrainTask` (its modules, optimizers, ``train_step`` and
``eval_step``); ``fit`` does the rest: device and precision, the seeded data order, the step
loop, evaluation and checkpoint cadence, resume from the last complete step, scalar logging,
and DistributedDataParallel when launched with ``torchrun`` (any number of processes or
nodes; ``gloo`` on CPU, ``nccl`` on GPU).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from voicefake.audio.features import MelConfig
from voicefake.checkpoint import Checkpoint
from voicefake.config import dump_yaml
from voicefake.train import state as run_state
from voicefake.train.logging import ScalarLogger

log = logging.getLogger(__name__)

Batch = Any
Scalars = dict[str, float]


@dataclass(frozen=True)
class LoopConfig:
    """Cadence, seed, device and data-loading settings shared by all recipes.

    Attributes:
        max_steps: total optimisation steps.
        batch_size: per process.
        num_workers: DataLoader worker processes (0 = in-process).
        seed: seeds Python, torch and the data order.
        log_every / eval_every / checkpoint_every: cadences in steps.
        keep_last: completed step folders to keep.
        best_metric: eval scalar that selects ``best/`` (e.g. ``eval/mel_l1``); "" disables.
        best_mode: "min" or "max".
        device: "auto" (cuda if available), "cpu" or "cuda".
        precision: "fp32" or "bf16" (autocast on CUDA only).
        threads: torch intra-op threads on CPU (0 = leave as is).
        max_minutes: wall-clock budget of one invocation, in minutes (0 = none). When it runs
            out, the loop evaluates, saves the step it reached and returns, as at
            ``max_steps``; re-running the command resumes from there with a fresh budget. For
            leased machines: a run that must end before its lease does still leaves a complete
            step folder and ``best/`` behind. The learning-rate schedule still follows
            ``max_steps``/``total_steps``.
    """

    max_steps: int = 1000
    batch_size: int = 16
    num_workers: int = 0
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    keep_last: int = 3
    best_metric: str = ""
    best_mode: Literal["min", "max"] = "min"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    threads: int = 0
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.max_minutes < 0:
            raise ValueError(f"loop.max_minutes must be >= 0 (0 = no limit), got {self.max_minutes}")


@dataclass
class TrainTask:
    """What a capability hands to :func:`fit`.

    Attributes:
        modules: every trainable module by name (generator, discriminators, ...).
        optimizers / schedulers: by name; schedulers step once per training step.
        train_step: ``(modules, optimizers, batch) -> scalars``.
        eval_step: ``(modules, batch) -> scalars`` or None.
        exports: module name -> (checkpoint kind, mel) saved as Checkpoint directories.
        collate: DataLoader collate function, or None for the default.
        metadata: merged into every exported checkpoint's metadata.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    train_step: Callable[[dict[str, nn.Module], dict[str, torch.optim.Optimizer], Batch], Scalars]
    exports: dict[str, tuple[str, MelConfig | None]]
    schedulers: dict[str, Any] = field(default_factory=dict)
    eval_step: Callable[[dict[str, nn.Module], Batch], Scalars] | None = None
    collate: Callable[[list[Any]], Batch] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total_steps``.

    The one schedule every capability uses (``LambdaLR(optimizer, partial(warmup_cosine, ...))``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def fit(
    task: TrainTask,
    loop: LoopConfig,
    train_data: Dataset,
    run_dir: str | os.PathLike[str],
    eval_data: Dataset | None = None,
    resolved_config: dict[str, Any] | None = None,
) -> Scalars:
    """Trains ``task`` until ``loop.max_steps``, resuming from ``run_dir`` if it holds steps.

    Returns:
        The last evaluation scalars (empty if no evaluation ran).
    """
    run_dir = Path(run_dir)
    rank, world = _init_distributed(loop)
    device = _pick_device(loop, rank)
    _seed_everything(loop.seed + rank)
    for module in task.modules.values():
        module.to(device)
    start_step, best = _maybe_resume(task, run_dir, device)
    wrapped = _wrap_ddp(task.modules, device, world)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resolved_config is not None and start_step == 0:
            dump_yaml(resolved_config, run_dir / "config.yaml")
    logger = ScalarLogger(run_dir / "logs", enabled=rank == 0, total_steps=loop.max_steps, start_step=start_step)
    batches = _batches(train_data, loop, task, rank, world, start_step)
    last_eval: Scalars = {}
    step = start_step
    started = time.monotonic()
    while step < loop.max_steps:
        batch = _to_device(next(batches), device)
        with _autocast(loop, device):
            scalars = task.train_step(wrapped, task.optimizers, batch)
        for scheduler in task.schedulers.values():
            scheduler.step()
        step += 1
        last = step == loop.max_steps or _out_of_time(started, loop, world, device)
        if step % loop.log_every == 0 or last:
            logger.log(step, scalars)
        if eval_data is not None and task.eval_step and (step % loop.eval_every == 0 or last):
            last_eval = _evaluate(task, eval_data, device, loop)
            logger.log(step, last_eval)
            best = _update_best(task, run_dir, loop, last_eval, best, step, rank)
        if step % loop.checkpoint_every == 0 or last:
            if rank == 0:
                _save(task, run_dir, loop, step, best)
            if world > 1:
                dist.barrier()
        if last and step < loop.max_steps:
            log.info("loop.max_minutes (%g) reached at step %d of %d; re-run to resume",
                     loop.max_minutes, step, loop.max_steps)
            break
    logger.close()
    if world > 1:
        dist.destroy_process_group()
    return last_eval


def _out_of_time(started: float, loop: LoopConfig, world: int, device: torch.device) -> bool:
    """Whether ``loop.max_minutes`` has run out (every process agrees under torchrun)."""
    if loop.max_minutes <= 0:
        return False
    over = time.monotonic() - started >= loop.max_minutes * 60
    if world > 1:
        flag = torch.tensor([float(over)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        over = bool(flag.item() > 0)
    return over


def _init_distributed(loop: LoopConfig) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if loop.device != "cpu" and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _pick_device(loop: LoopConfig, rank: int) -> torch.device:
    if loop.threads > 0:
        torch.set_num_threads(loop.threads)
    use_cuda = loop.device == "cuda" or (loop.device == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    return torch.device("cuda", local)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _wrap_ddp(modules: dict[str, nn.Module], device: torch.device, world: int) -> dict[str, nn.Module]:
    if world <= 1:
        return modules
    ids = [device.index] if device.type == "cuda" else None
    return {
        name: nn.parallel.DistributedDataParallel(m, device_ids=ids)
        if any(p.requires_grad for p in m.parameters()) else m
        for name, m in modules.items()
    }


def _batches(
    data: Dataset, loop: LoopConfig, task: TrainTask, rank: int, world: int, start_step: int
) -> Iterator[Batch]:
    """Endless, seeded, epoch-wise batches; a resumed run continues at a fresh epoch."""
    epoch = start_step  # distinct data order after a resume, still deterministic
    while True:
        generator = torch.Generator().manual_seed(loop.seed * 1_000_003 + epoch)
        if world > 1:
            sampler: Any = DistributedSampler(data, world, rank, shuffle=True, seed=loop.seed + epoch)
        else:
            sampler = RandomSampler(data, generator=generator)  # type: ignore[arg-type]  # map-style, sized
        loader = DataLoader(
            data, batch_size=loop.batch_size, sampler=sampler, num_workers=loop.num_workers,
            collate_fn=task.collate, drop_last=len(data) >= loop.batch_size * world,  # type: ignore[arg-type]
            worker_init_fn=_worker_init, generator=generator,
            persistent_workers=False,
        )
        yield from loader
        epoch += 1


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed + worker_id)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _autocast(loop: LoopConfig, device: torch.device) -> Any:
    enabled = loop.precision == "bf16" and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _evaluate(task: TrainTask, data: Dataset, device: torch.device, loop: LoopConfig) -> Scalars:
    assert task.eval_step is not None
    for module in task.modules.values():
        module.eval()
    totals: dict[str, float] = {}
    count = 0
    loader = DataLoader(data, batch_size=1, shuffle=False, collate_fn=task.collate)
    with torch.no_grad():
        for batch in loader:
            for key, value in task.eval_step(task.modules, _to_device(batch, device)).items():
                totals[key] = totals.get(key, 0.0) + value
            count += 1
    for module in task.modules.values():
        module.train()
    return {k: v / max(count, 1) for k, v in totals.items()}


def _checkpoints(task: TrainTask, step: int, extra: dict[str, Any] | None = None) -> dict[str, Checkpoint]:
    meta = {**task.metadata, "step": step, **(extra or {})}
    return {
        name: Checkpoint.from_module(task.modules[name], kind, mel=mel, metadata=meta)
        for name, (kind, mel) in task.exports.items()
    }


def _save(task: TrainTask, run_dir: Path, loop: LoopConfig, step: int, best: dict[str, Any]) -> None:
    state = {
        "step": step,
        "best": best,
        "rng": run_state.rng_state(),
        "optimizers": {k: o.state_dict() for k, o in task.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in task.schedulers.items()},
        "modules": {
            k: m.state_dict() for k, m in task.modules.items() if k not in task.exports
        },
    }
    run_state.save_step(run_dir, step, _checkpoints(task, step), state, loop.keep_last)
    log.info("saved %s", run_state.step_dir(run_dir, step))


def _update_best(
    task: TrainTask, run_dir: Path, loop: LoopConfig, scalars: Scalars, best: dict[str, Any],
    step: int, rank: int,
) -> dict[str, Any]:
    if not loop.best_metric or loop.best_metric not in scalars:
        return best
    value = scalars[loop.best_metric]
    previous = best.get("value")
    better = previous is None or (value < previous if loop.best_mode == "min" else value > previous)
    if not better or not math.isfinite(value):
        return best
    best = {"metric": loop.best_metric, "value": value, "step": step}
    if rank == 0:
        for name, ckpt in _checkpoints(task, step, {"best": best}).items():
            ckpt.save(run_dir / "best" / name)
    return best


def _maybe_resume(task: TrainTask, run_dir: Path, device: torch.device) -> tuple[int, dict[str, Any]]:
    steps = run_state.list_steps(run_dir)
    if not steps:
        return 0, {}
    folder = run_state.step_dir(run_dir, steps[-1])
    state = run_state.load_trainer_state(folder / run_state.STATE_FILE)
    for name in task.exports:
        weights = Checkpoint.load(folder / name).state_dict
        task.modules[name].load_state_dict(weights, strict=True)
    for name, sd in state["modules"].items():
        task.modules[name].load_state_dict(sd, strict=True)
    for name, sd in state["optimizers"].items():
        task.optimizers[name].load_state_dict(sd)
    for name, sd in state["schedulers"].items():
        task.schedulers[name].load_state_dict(sd)
    run_state.set_rng_state(state["rng"])
    log.info("resumed from %s", folder)
    return int(state["step"]), dict(state.get("best") or {})
