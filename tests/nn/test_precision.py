"""Tests for ``voicefake.nn.precision`` (which arithmetic a network's products run in)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voicefake.nn import precision
from voicefake.nn.precision import autocast, compute_dtype, dtype_name, native_bfloat16


def _cpuinfo(tmp_path: Path, flags: str) -> str:
    path = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


def test_native_bfloat16_reads_the_cpu_flags(tmp_path: Path) -> None:
    assert native_bfloat16(_cpuinfo(tmp_path, "fpu sse avx2 avx512f avx512_bf16 avx512_vnni"))
    assert native_bfloat16(_cpuinfo(tmp_path, "fpu sse avx2 amx_tile amx_bf16"))
    # AVX-512 without the BF16 extension emulates it: not native
    assert not native_bfloat16(_cpuinfo(tmp_path, "fpu sse avx2 avx512f avx512bw avx512_vnni"))
    assert not native_bfloat16(str(tmp_path / "missing"))  # not Linux, or unreadable


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bfloat16_only_where_native(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision, "native_bfloat16", lambda: native)
    assert compute_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert compute_dtype("auto", "cuda") == torch.float32  # no CUDA needed to answer
    assert compute_dtype("float32", "cpu") == torch.float32
    assert compute_dtype("bfloat16", "cpu") == torch.bfloat16


def test_unknown_precision_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16; got 'fp8'"):
        compute_dtype("fp8")


def test_autocast_runs_products_in_bfloat16_and_float32_is_a_no_op() -> None:
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast(torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(torch.float32):
        assert torch.equal(a @ b, torch.matmul(a, b))
    assert dtype_name(torch.bfloat16) == "bfloat16" and dtype_name(torch.float32) == "float32"
