"""recipes/detection/prepare_asterisk.py: which prompts become manifest rows, with what labels."""

from __future__ import annotations

import gzip
import runpy
from pathlib import Path

import numpy as np
import soundfile as sf

from voicefake.data.manifests import read_manifest, write_manifest

RECIPE = Path(__file__).parents[2] / "recipes" / "detection" / "prepare_asterisk.py"


def tone(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 8000)) / 8000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 8000)


def test_collect_labels_prompts(tmp_path: Path) -> None:
    mod = runpy.run_path(str(RECIPE))
    core, new = tmp_path / "core", tmp_path / "new"
    sounds = core / "usr/share/asterisk/sounds/en_US_f_Allison"
    tone(sounds / "hello.wav", 1.0)
    tone(sounds / "digits/1.wav", 0.8)
    tone(sounds / "beep.wav", 0.2)                 # shorter than MIN_SECONDS: dropped
    tone(sounds / "silence/1.wav", 1.0)            # silence folder: dropped
    (sounds / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")  # reported, not fatal
    doc = core / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    with gzip.open(doc / "core-sounds-en.txt.gz", "wt") as f:
        f.write("; header\nhello: Hello there.\ndigits/1: one\nbeep: [a beep]\n")
    tone(new / "usr/share/asterisk/sounds/fr/bonjour.wav", 1.2)
    voices = {"asterisk-core-sounds-en-wav": ("en_US_f_Allison", "allison", "en", "en", "CC-BY-SA-3.0", False),
              "asterisk-prompt-fr-armelle": ("fr", "armelle", "fr", "", "GPL-2+", True)}
    roots = {"asterisk-core-sounds-en-wav": core, "asterisk-core-sounds-en": core, "asterisk-prompt-fr-armelle": new}
    rows, unreadable = mod["collect"](roots, tmp_path / "out", {("en", "hello")}, voices)
    by_name = {Path(r.path).stem: r for r in rows}
    assert sorted(by_name) == ["1", "bonjour", "hello"]
    assert by_name["hello"].transcript == "Hello there." and by_name["1"].transcript == "one"
    assert "in_shared=1" in by_name["hello"].notes and "in_shared=0" in by_name["1"].notes
    assert "new_voice=1" in by_name["bonjour"].notes and by_name["bonjour"].transcript == ""
    assert all(r.label == "real" and (tmp_path / "out" / r.path).exists() for r in rows)
    assert len(unreadable) == 1 and "broken.wav" in unreadable[0]
    write_manifest(rows, tmp_path / "out" / "manifest.csv")  # the manifest format round-trips
    assert read_manifest(tmp_path / "out" / "manifest.csv") == rows
