"""Inference precision: float32, or bfloat16 matrix products where the processor has them.

Recent x86 processors (AVX512-BF16: AMD Zen 4 and later, Intel Cooper Lake and Sapphire
Rapids and later; AMX-BF16) multiply bfloat16 matrices at about twice their float32 rate. A
convolutional network's products can run there under :func:`torch.autocast` while every sum
is still accumulated in float32. On processors without these instructions bfloat16 is
emulated and slower than float32, so ``"auto"`` picks it only where the flags say it is
native.

``"auto"`` therefore gives different (equally good, measured) numbers on different
processors; ``"float32"`` gives the reference computation everywhere.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch

PRECISIONS = ("auto", "float32", "bfloat16")
_NATIVE_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def native_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux ``/proc/cpuinfo`` flags; False elsewhere)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_NATIVE_FLAGS & set(line.partition(":")[2].split()))
    return False


def compute_dtype(precision: str, device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype a network's products run in for ``precision`` on ``device``.

    ``"auto"``: bfloat16 on a CPU that has it natively (:func:`native_bfloat16`), float32
    otherwise (other CPUs, and GPUs, where float32 is fast enough for these small models).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    kind = torch.device(device).type
    if precision == "auto":
        return torch.bfloat16 if kind == "cpu" and native_bfloat16() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


@contextlib.contextmanager
def autocast(dtype: torch.dtype, device: torch.device | str = "cpu") -> Iterator[None]:
    """Runs the block's matrix products in ``dtype`` (a no-op for float32)."""
    kind = torch.device(device).type
    with torch.autocast(kind, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        yield


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (for reports)."""
    return str(dtype).removeprefix("torch.")
