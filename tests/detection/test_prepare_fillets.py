"""recipes/detection/prepare_fillets.py: which dialog lines become manifest rows, for which voice."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import soundfile as sf

RECIPE = Path(__file__).parents[2] / "recipes" / "detection" / "prepare_fillets.py"


def tone(path: Path, seconds: float, rate: int = 22050, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wav = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(path, np.stack([wav] * channels, 1) if channels > 1 else wav, rate, format="OGG")


def test_character_code_of_a_dialog_file_name() -> None:
    character = runpy.run_path(str(RECIPE))["character"]
    assert character("vit-m-hlava") == "m"
    assert character("m-obdivovat") == "m"
    assert character("vit-hs-klid1") == "hs"
    assert character("zd1-v-cesta") == "v"
    assert character("sp-shout_small_00") == "sp"
    assert character("intro") == ""


def test_collect_keeps_the_two_fish_in_czech_and_dutch(tmp_path: Path) -> None:
    mod = runpy.run_path(str(RECIPE))
    cs = tmp_path / "cs/usr/share/games/fillets-ng/sound"
    nl = tmp_path / "nl/usr/share/games/fillets-ng/sound"
    tone(cs / "city/cs/vit-m-hlava.ogg", 1.2)
    tone(cs / "city/cs/vit-hs-klid1.ogg", 1.2)          # another character: left out
    tone(cs / "share/borejokes/cs/m-vtip.ogg", 1.0)
    tone(cs / "city/cs/vit-v-kratke.ogg", 0.2)           # shorter than MIN_SECONDS: dropped
    tone(cs / "city/en/vit-m-head.ogg", 1.0)             # English: not a kept language
    tone(nl / "city/nl/vit-v-hoofd.ogg", 1.5, channels=2)
    (nl / "gems/nl").mkdir(parents=True)
    (nl / "gems/nl/zav-v-sto.ogg").write_bytes(b"OggS-not-really")  # reported, not fatal
    rows, unreadable = mod["collect"]({"a": tmp_path / "cs", "b": tmp_path / "nl"}, tmp_path / "out")
    by_path = {r.path: r for r in rows}
    assert sorted(by_path) == ["audio/fillets-cs-m/city__vit-m-hlava.flac",
                               "audio/fillets-cs-m/share__borejokes__m-vtip.flac",
                               "audio/fillets-nl-v/city__vit-v-hoofd.flac"]
    nl_row = by_path["audio/fillets-nl-v/city__vit-v-hoofd.flac"]
    assert nl_row.speaker == "fillets-nl-v" and "language=nl;character=v;level=city" in nl_row.notes
    assert all("new_voice=1" in r.notes and r.label == "real" and r.sample_rate == 16000 for r in rows)
    info = sf.info(str(tmp_path / "out" / nl_row.path))
    assert (info.samplerate, info.channels) == (16000, 1) and abs(nl_row.duration_s - 1.5) < 0.01
    assert len(unreadable) == 1 and "zav-v-sto.ogg" in unreadable[0]
