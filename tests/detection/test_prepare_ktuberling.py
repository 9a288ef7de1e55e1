"""recipes/detection/prepare_ktuberling.py: which word recordings become manifest rows, for which voice."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import soundfile as sf

RECIPE = Path(__file__).parents[2] / "recipes" / "detection" / "prepare_ktuberling.py"


def tone(path: Path, seconds: float, rate: int = 44100, channels: int = 1, fmt: str = "OGG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wav = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(path, np.stack([wav] * channels, 1) if channels > 1 else wav, rate, format=fmt)


def test_collect_keeps_one_voice_per_language_and_skips_script_variants(tmp_path: Path) -> None:
    collect = runpy.run_path(str(RECIPE))["collect"]
    sounds = tmp_path / "usr/share/ktuberling/sounds"
    tone(sounds / "en/egypt_camel.ogg", 1.2, channels=2)
    tone(sounds / "fr/chapeau.wav", 0.9, rate=8000, fmt="WAV")
    tone(sounds / "sr/uvo.ogg", 0.8, rate=22050)
    tone(sounds / "sr@latin/uvo.ogg", 0.8, rate=22050)     # the same recording in another script: skipped
    tone(sounds / "de/ohr.ogg", 0.3)                       # shorter than MIN_SECONDS: dropped
    (sounds / "en.soundtheme").write_text("<language code='en'/>")  # not a recording
    (sounds / "ru").mkdir(parents=True)
    (sounds / "ru/glaz.ogg").write_bytes(b"OggS-not-really")  # reported, not fatal
    rows, unreadable = collect(tmp_path, tmp_path / "out")
    by_path = {r.path: r for r in rows}
    assert sorted(by_path) == ["audio/ktuberling-en/egypt_camel.flac", "audio/ktuberling-fr/chapeau.flac",
                               "audio/ktuberling-sr/uvo.flac"]
    en = by_path["audio/ktuberling-en/egypt_camel.flac"]
    assert en.speaker == "ktuberling-en" and en.transcript == "egypt camel" and "language=en" in en.notes
    assert all("new_voice=1" in r.notes and r.label == "real" and r.sample_rate == 16000 for r in rows)
    info = sf.info(str(tmp_path / "out" / en.path))
    assert (info.samplerate, info.channels) == (16000, 1) and abs(en.duration_s - 1.2) < 0.01
    assert abs(by_path["audio/ktuberling-fr/chapeau.flac"].duration_s - 0.9) < 0.01
    assert len(unreadable) == 1 and "glaz.ogg" in unreadable[0]
