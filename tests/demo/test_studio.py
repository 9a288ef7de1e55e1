"""The Clone tab's handler says which decoder spoke and when the reference came from a call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.demo.test_operating_point import demo_module
from voicefake.audio.io import load_audio, write_audio

SR = 16000


def _voice(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A harmonic voice with breath noise (generated audio), sampled at ``rate``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 30) if 120 * k < rate / 2)
    gate = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.05 * harmonics * gate + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def test_a_call_reference_is_named_and_spoken_by_the_call_decoder(tmp_path: Path) -> None:
    studio = demo_module("studio")
    wide, call, source = tmp_path / "wide.wav", tmp_path / "call.wav", tmp_path / "source.wav"
    write_audio(wide, _voice(4.0, SR, 1), SR)
    write_audio(call, _voice(4.0, 8000, 1), 8000)
    write_audio(source, _voice(1.5, SR, 2), SR)
    load = lambda path: load_audio(path, SR)  # noqa: E731
    outputs = {}
    for name, reference in (("wide", wide), ("call", call)):
        (rate, wav), info, _ = studio.clone_voice([str(reference)], None, None, studio.MODES[1], "", str(source), True,
                                                  0.15, "", load, identity_steps=0)
        assert rate == SR and np.isfinite(wav).all() and "SYNTHETIC SPEECH" in info
        outputs[name] = info
    assert "conversion-call" in outputs["call"] and "reaches only 4.2 kHz (a call" in outputs["call"]
    assert "conversion-ref" in outputs["wide"] and "a call" not in outputs["wide"]


def test_none_leaves_the_choice_to_the_api_and_a_number_runs_exactly(tmp_path: Path, monkeypatch) -> None:
    """None (the tab's "mode defaults" box) lets api.pitch_range_for decide: 0 for Convert. A number
    reaches api.convert as it is, the old slider default 0.5 included (it used to be read as "decide");
    the info line says what ran."""
    studio = demo_module("studio")
    reference, source = tmp_path / "ref.wav", tmp_path / "source.wav"
    write_audio(reference, _voice(4.0, SR, 1), SR)
    write_audio(source, _voice(1.5, SR, 2), SR)
    load = lambda path: load_audio(path, SR)  # noqa: E731
    seen: list = []
    convert = studio.api.convert

    def spy(*args, **kwargs):
        seen.append(kwargs["pitch_range"])
        return convert(*args, **kwargs)

    monkeypatch.setattr(studio.api, "convert", spy)
    infos = [studio.clone_voice([str(reference)], None, None, studio.MODES[1], "", str(source), True, blend, "", load,
                                identity_steps=0, pitch_range=value)[1]
             for blend, value in ((None, None), (0.15, studio.PITCH_SLIDER_DEFAULT))]
    assert seen == [None, studio.PITCH_SLIDER_DEFAULT]
    assert "blend 0, contrast 0, pitch range 0 (mode defaults)" in infos[0]  # 4 s of reference: no blend, no contrast
    assert f"blend 0.15, contrast 0, pitch range {studio.PITCH_SLIDER_DEFAULT:g}." in infos[1]
