"""recipes/detection/prepare_klettres.py: which recordings become manifest rows, with what labels."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import soundfile as sf

from voicefake.data.manifests import read_manifest, write_manifest

RECIPE = Path(__file__).parents[2] / "recipes" / "detection" / "prepare_klettres.py"


def tone(path: Path, seconds: float, rate: int = 44100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)


def test_collect_labels_recordings(tmp_path: Path) -> None:
    mod = runpy.run_path(str(RECIPE))
    base = tmp_path / "root/usr/share/klettres"
    tone(base / "it/alpha/a.wav", 1.0)
    tone(base / "it/syllab/ba.wav", 0.8)
    tone(base / "da/alpha/b.wav", 1.5)
    tone(base / "da/alpha/c.wav", 0.2)              # shorter than MIN_SECONDS: dropped
    tone(base / "pics/x.wav", 1.0)                   # not a language/kind folder: ignored
    (base / "da/syllab").mkdir(parents=True)
    (base / "da/syllab/broken.wav").write_bytes(b"RIFF0000WAVEjunk")  # reported, not fatal
    rows, unreadable = mod["collect"](tmp_path / "root", tmp_path / "out")
    by_name = {Path(r.path).stem: r for r in rows}
    assert sorted(by_name) == ["a", "b", "ba"]
    assert by_name["a"].speaker == "klettres-it" and by_name["b"].speaker == "klettres-da"
    assert by_name["ba"].transcript == "ba" and "kind=syllab" in by_name["ba"].notes
    assert all("new_voice=1" in r.notes and r.label == "real" and r.sample_rate == 16000 for r in rows)
    assert sf.info(str(tmp_path / "out" / by_name["a"].path)).samplerate == 16000
    assert len(unreadable) == 1 and "broken.wav" in unreadable[0]
    write_manifest(rows, tmp_path / "out" / "manifest.csv")
    assert read_manifest(tmp_path / "out" / "manifest.csv") == rows
