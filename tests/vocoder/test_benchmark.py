"""benchmarks/vocoder.py's paired DNSMOS comparison, on two generated clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicefake.audio.io import write_audio

bench = pytest.importorskip("benchmarks.vocoder")


def test_dnsmos_is_paired_against_griffin_lim_from_several_starts(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("speechmos")
    t = np.arange(16000) / 16000
    files = []
    for i, f0 in enumerate((120.0, 190.0)):
        wav = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        files.append(write_audio(tmp_path / f"{i}.wav", (0.1 * wav).astype(np.float32), 16000))
    monkeypatch.setattr(bench, "dev_files", lambda per_speaker: files)
    out = bench.dnsmos_paired(1, 1.0, iterations=(0, 2), seeds=2)
    starts = [out[f"griffin-lim-64 (seed {s})"]["dnsmos_ovr"] for s in range(2)]
    assert starts[0] != starts[1]  # the random start moves Griffin-Lim's score
    for n in (0, 2):
        row = out[bench.vocoder_name(n)]
        assert row["n"] == 2 and 0 <= row["share_higher"] <= 1 and row["standard_error"] >= 0
        assert row["minus_griffin_lim"] == pytest.approx(row["dnsmos_ovr"] - np.mean(starts), abs=1e-9)
    printed = bench.table(out).splitlines()  # rows with and without the paired columns
    assert len(printed) == 2 + len(out) and "minus_griffin_lim" in printed[0] and "–" in printed[-1]


def test_griffin_lim_starts_from_its_seed() -> None:
    import torch

    from voicefake.audio.features import MEL_16K_80, MelSpectrogram

    t = np.arange(8000) / 16000
    mel = MelSpectrogram(MEL_16K_80)(torch.from_numpy((0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)))
    first, again, other = bench.griffin_lim(mel, 0), bench.griffin_lim(mel, 0), bench.griffin_lim(mel, 1)
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_reference_refinement_equals_the_shipped_one_and_raar_runs() -> None:
    """The benchmark's torch-built-in refinement gives the shipped refinement's waveform (the
    'refine' and 'variants' modes compare against it); RAAR gives a waveform of the same length."""
    import torch

    from voicefake.audio.features import MEL_16K_80, MelSpectrogram
    from voicefake.vocoder.phase import refine

    t = np.arange(16000) / 16000
    wav = torch.from_numpy((0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32))
    mel = MelSpectrogram(MEL_16K_80)(wav)[None]
    generator = torch.Generator().manual_seed(0)
    log_mag = torch.randn(1, 321, mel.shape[-1], generator=generator) - 3
    phase = (torch.rand(1, 321, mel.shape[-1], generator=generator) - 0.5) * 6
    shipped = refine(log_mag, phase, mel, MEL_16K_80, 640, 6)
    torch.testing.assert_close(bench.refine_reference(log_mag, phase, mel, 6), shipped, atol=1e-4, rtol=1e-4)
    held = bench.refine_reference(log_mag, phase, mel, 6, rematch_from=10**6)
    assert (held - shipped).abs().max() > 1e-3  # the re-matching setting is used
    # RAAR from the signal's own magnitude and a scrambled phase: the output's STFT magnitude moves
    # towards that magnitude, as the update is meant to do
    from voicefake.audio.features import stft

    real_mag = stft(wav, 640, 160, 640).abs()[None]
    scrambled = (torch.rand(real_mag.shape, generator=generator) - 0.5) * 6

    def inconsistency(out: torch.Tensor) -> float:
        got = stft(out[0], 640, 160, 640).abs()[..., : real_mag.shape[-1]]
        return float((got - real_mag[0]).norm() / real_mag.norm())

    log_real = torch.log(real_mag.clamp_min(1e-7))
    raar = bench.raar_reference(log_real, scrambled, mel, 6, beta=0.8)
    assert raar.shape == shipped.shape and torch.isfinite(raar).all()
    start = inconsistency(bench.refine_reference(log_real, scrambled, mel, 0))
    assert inconsistency(raar) < 0.8 * start, (inconsistency(raar), start)
