"""recipes/vocoder/build_decoder_speech.py: decoder-shaped speech for vocoder training."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import soundfile as sf

from voicefake.data.manifests import ManifestRow, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "vocoder"
sys.path.insert(0, str(RECIPE))

from build_decoder_speech import plan  # type: ignore[import-not-found]  # noqa: E402


def test_plan_voices_every_item_by_another_speaker_in_the_shares() -> None:
    rows = [ManifestRow(path=f"{i}.wav", speaker=f"s{i % 4}", transcript="hello there" if i % 2 else "")
            for i in range(12)]
    plans = plan(rows, ["s0", "s1", "s2", "s3"], 400, (0.5, 0.3, 0.2), seed=0)
    assert all(p.target != p.source.speaker for p in plans)
    kinds = Counter(p.kind for p in plans)
    assert abs(kinds["speech"] / 400 - 0.5) < 0.08 and abs(kinds["espeak"] / 400 - 0.2) < 0.08
    # text-to-speech items speak a transcript
    assert all(p.source.transcript for p in plans if p.kind != "speech")
    # no transcripts at all: every item converts a recording
    untranscribed = [ManifestRow(path=r.path, speaker=r.speaker) for r in rows]
    assert {p.kind for p in plan(untranscribed, ["s0", "s1"], 20, (0.2, 0.4, 0.4), seed=1)} == {"speech"}


def test_build_decoder_speech_end_to_end(tmp_path: Path) -> None:
    from voicefake.synthesis import espeak

    texts = ["Please call me back this afternoon.", "The meeting moved to Thursday morning.",
             "Send the signed contract to the bank today.", "Nobody answered the phone at the office."]
    rows = []
    for i in range(10):  # espeak-ng voices stand in for real speakers (two files each, 5 s or more)
        wav, rate = espeak.speak(" ".join(texts[i % 4:] + texts[: i % 4]), "en-gb-x-rp", 140, pitch=20 + 20 * (i // 2))
        split = "dev/test-other/" if i >= 6 else "train/"
        path = f"{split}{i}.wav"
        (tmp_path / split).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / path, wav, rate)
        rows.append(ManifestRow(path=path, speaker=f"s{i // 2}", label="real", transcript=texts[i % 4],
                                sample_rate=rate, duration_s=len(wav) / rate))
    data, out = tmp_path / "data", tmp_path / "out"
    write_manifest(rows[:6], data / "train.csv")
    write_manifest(rows[6:], data / "dev.csv")
    done = subprocess.run(
        [sys.executable, str(RECIPE / "build_decoder_speech.py"), "--data", str(data), "--out", str(out),
         "--train-items", "4", "--dev-items", "1", "--shares", "0.34", "0.33", "0.33", "--max-seconds", "3",
         "--phase-iterations", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "VOICEFAKE_DATA": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    made = read_manifest(out / "decoder_train.csv")
    assert len(made) == 4 and len(read_manifest(out / "decoder_dev.csv")) == 1
    speaker_of = {r.path: r.speaker for r in rows}
    for row in made:
        audio, rate = sf.read(row.path)
        assert rate == 16000 and 0.5 < len(audio) / rate <= 3.0 + 1e-3 and abs(audio).max() > 0.01
        source = row.notes.split(" from ")[1].split(" in the voice")[0]
        assert row.speaker in {"s0", "s1", "s2"} and row.speaker != speaker_of[source]
    # the training manifest: the real rows first, then these items, every path absolute
    combined = read_manifest(out / "train.csv")
    assert len(combined) == 6 + 4 and all(Path(r.path).is_absolute() and Path(r.path).exists() for r in combined)
    # dev items use dev (test-other) speakers only
    assert read_manifest(out / "decoder_dev.csv")[0].speaker in {"s3", "s4"}
