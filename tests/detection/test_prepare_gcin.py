"""recipes/detection/prepare_gcin.py: each voice's syllables joined into recordings, the voice kept apart."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import soundfile as sf

from voicefake.audio.io import load_audio

RECIPE = Path(__file__).parents[2] / "recipes" / "detection" / "prepare_gcin.py"


def syllable(path: Path, freq: float, seconds: float = 0.3, rate: int = 44100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="OGG")


def test_collect_joins_each_voices_syllables_and_drops_the_leftover(tmp_path: Path) -> None:
    recipe = runpy.run_path(str(RECIPE))
    base = tmp_path / "usr/share/gcin-voice/ogg"
    for i in range(19):  # 19 syllables: two recordings of 8 for each voice, 3 left over
        syllable(base / f"s{i:02d}" / "3.ogg", 200.0)
        syllable(base / f"s{i:02d}" / "5.ogg", 400.0)
    syllable(base / "s99" / "4.ogg", 300.0)  # not one of the two voices
    (base / "s00" / "5.ogg").write_bytes(b"OggS-not-really")  # reported, not fatal
    rows, unreadable = recipe["collect"](tmp_path, tmp_path / "out")
    assert sorted(r.path for r in rows) == ["audio/gcin-liu/0000.flac", "audio/gcin-liu/0001.flac",
                                            "audio/gcin-lo/0000.flac", "audio/gcin-lo/0001.flac"]
    assert len(unreadable) == 1 and "5.ogg" in unreadable[0]
    for row in rows:
        assert row.label == "real" and "new_voice=1" in row.notes and row.sample_rate == 16000
        n = int(row.notes.split("syllables=")[1].split(";")[0])
        assert n in (7, 8) and len(row.transcript.split()) == n
        wav = load_audio(tmp_path / "out" / row.path, 16000, allow_silence=True)
        assert abs(wav.size / 16000 - (0.3 * n + 0.25 * (n - 1))) < 0.01
        assert abs(row.duration_s - wav.size / 16000) < 0.01
        # one voice per speaker: the liu recordings are the 200 Hz syllables, the lo ones the 400 Hz
        peak = np.fft.rfftfreq(wav.size, 1 / 16000)[np.argmax(np.abs(np.fft.rfft(wav)))]
        assert abs(peak - (200.0 if row.speaker == "gcin-liu" else 400.0)) < 5
    assert {r.license for r in rows} == {"GPL-3 or LGPL-3", "CC-BY-3.0"}
