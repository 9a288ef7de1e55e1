"""Speech shaped by the cloning decoder, for training a vocoder on the mels it will really get.

The bundled vocoder learnt from the mels of real recordings. In use, most of its input comes
from the conversion decoder (``voicefake convert`` / ``clone``), whose mels are smoother and
differently distributed; a distilled student trained on real mels alone matched its teacher on
copy-synthesis but lost words on the decoder's mels (docs/benchmarks/vocoder.md, session 12).

This script makes decoder mels the way users do and turns them into audio the vocoder recipe
can crop: real training speech converted to another training speaker, and transcripts of
training utterances spoken by flite or espeak-ng and converted likewise, through the decoder and at
the blend the API picks for each voice (``api.convert_decoder`` / ``api.tts_decoder``,
``api.blend_for``; until session 40 recorded speech went through ``conversion`` at blend 0) and the
default eq. Each mel is
vocoded by the bundled vocoder with ``--phase-iterations`` (16 by default: on six conversions
between unseen speakers, the re-analysed mel of the result was 0.052 log-mel L1 from the
decoder's, 0.098 at 1 iteration; session 17), so the vocoder recipe's
``mel(crop)`` is close to what the decoder produced. Sources and references come from the
vocoder's own train split; the dev items use dev speakers only (LibriSpeech test-other), so a
held-out figure stays held out.

Usage:
    python recipes/vocoder/prepare_shared.py --out runs/data/vocoder
    python recipes/vocoder/build_decoder_speech.py --data runs/data/vocoder --out runs/data/vocoder-decoder

Writes OUT/audio/{train,dev}/*.wav, OUT/decoder_{train,dev}.csv (these items alone) and
OUT/train.csv / OUT/dev.csv: DATA's rows followed by these items, every path absolute
(``data.train_manifest`` / ``data.dev_manifest`` of a vocoder config).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from voicefake import api
from voicefake.audio.features import MelSpectrogram
from voicefake.audio.io import load_audio, write_audio
from voicefake.audio.ops import resample
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest

log = logging.getLogger("build_decoder_speech")
SAMPLE_RATE = 16000
KINDS = ("speech", "flite", "espeak")
MIN_REFERENCE_FILE_S = 5.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """One item to make: a source (a recording, or a transcript to speak) in a target voice."""

    kind: str  # one of KINDS
    source: ManifestRow
    target: str  # speaker id


def references(rows: list[ManifestRow], seconds: float) -> dict[str, list[ManifestRow]]:
    """Each speaker's reference: its first recordings, up to ``seconds`` long in all."""
    by_speaker: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if sum(r.duration_s for r in by_speaker[row.speaker]) < seconds:
            by_speaker[row.speaker].append(row)
    return dict(by_speaker)


def plan(rows: list[ManifestRow], targets: list[str], count: int, shares: tuple[float, float, float],
         seed: int) -> list[Plan]:
    """``count`` items of the three kinds in ``shares``, each voiced by another speaker of ``targets``."""
    rng = random.Random(seed)
    speakers = sorted(targets)
    if len(speakers) < 2:
        raise ValueError("decoder speech needs at least two speakers (a source and another target)")
    transcribed = [r for r in rows if r.transcript.strip()]
    plans = []
    for _ in range(count):
        kind = rng.choices(KINDS, weights=shares)[0]
        if kind != "speech" and not transcribed:
            kind = "speech"
        source = rng.choice(rows if kind == "speech" else transcribed)
        target = rng.choice([s for s in speakers if s != source.speaker])
        plans.append(Plan(kind, source, target))
    return plans


def source_audio(item: Plan, root: Path, max_seconds: float, rate: int) -> np.ndarray:
    """The waveform the decoder converts: the recording itself, or its transcript spoken."""
    from voicefake.synthesis import espeak, flite

    if item.kind == "speech":
        wav = load_audio(root / item.source.path, SAMPLE_RATE)
    elif item.kind == "flite":
        spoken, spoken_rate = flite.speak(item.source.transcript, voice=flite.DEFAULT_VOICE, rate=rate)
        wav = resample(spoken, spoken_rate, SAMPLE_RATE)
    else:
        spoken, spoken_rate = espeak.speak(item.source.transcript, voice="en-us", rate=rate)
        wav = resample(spoken, spoken_rate, SAMPLE_RATE)
    return wav[: int(max_seconds * SAMPLE_RATE)].astype(np.float32)


def build(plans: list[Plan], refs: dict[str, list[ManifestRow]], root: Path, out: Path, split: str,
          args: argparse.Namespace) -> list[ManifestRow]:
    """Makes every planned item; returns its manifest rows (absolute paths)."""
    from voicefake.conversion.inference import convert_mel

    encoder = api.load("content", kind="content")
    mel_cfg = api.load(args.vocoder, kind="vocoder").checkpoint.mel_config
    assert mel_cfg is not None
    features = MelSpectrogram(mel_cfg)
    engines = {"flite": "flite", "espeak": "espeak"}  # item kind -> text-to-speech engine ("speech": a recording)
    profiles = {}
    rows = []
    start = time.time()
    for index, item in enumerate(plans):
        if item.target not in profiles:
            profiles[item.target] = api.voice_profile([root / r.path for r in refs[item.target]])
        engine = engines.get(item.kind)
        voice = profiles[item.target] if engine is None else api.tts_profile(profiles[item.target], engine)
        # the decoder and blend the API picks for this voice (api.convert / api.clone)
        name = api.convert_decoder(voice) if engine is None else api.tts_decoder(engine, voice)
        decoder = api.load(name, kind="conversion")
        wav = source_audio(item, root, args.max_seconds, args.rate)
        with torch.inference_mode():
            mel = convert_mel(wav, voice, features, encoder.module, decoder.module,
                              api.blend_for(voice, text=engine is not None), api.DEFAULT_EQ)
        audio = api.vocode(mel, args.vocoder, phase_iterations=args.phase_iterations).numpy()
        path = out / "audio" / split / f"{index:04d}_{item.kind}.wav"
        write_audio(path, audio, SAMPLE_RATE)
        rows.append(ManifestRow(
            path=str(path.resolve()), speaker=item.target, label="fake", system=f"decoder-{item.kind}",
            transcript=item.source.transcript, sample_rate=SAMPLE_RATE, channels=1,
            duration_s=round(len(audio) / SAMPLE_RATE, 3), folder="decoder_speech", license="derived",
            notes=f"{item.kind} from {item.source.path} in the voice of {item.target} ({name})",
        ))
        if (index + 1) % 10 == 0 or index + 1 == len(plans):
            log.info("%s: %d/%d items, %.1f min of audio, %.0f s", split, index + 1, len(plans),
                     sum(r.duration_s for r in rows) / 60, time.time() - start)
    return rows


def absolute(rows: list[ManifestRow], root: Path) -> list[ManifestRow]:
    return [dataclasses.replace(r, path=str((root / r.path).resolve())) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="prepare_shared.py's folder (train.csv, dev.csv)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-items", type=int, default=150)
    parser.add_argument("--dev-items", type=int, default=24)
    parser.add_argument("--shares", type=float, nargs=3, default=(0.4, 0.35, 0.25),
                        metavar=("SPEECH", "FLITE", "ESPEAK"), help="share of each source kind")
    parser.add_argument("--max-seconds", type=float, default=8.0, help="sources are cut to this length")
    parser.add_argument("--rate", type=int, default=api.DEFAULT_RATE, help="text-to-speech words per minute")
    parser.add_argument("--reference-seconds", type=float, default=10.0)
    parser.add_argument("--vocoder", default="vocoder", help="the vocoder that turns the mels into audio")
    parser.add_argument("--phase-iterations", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = data_root()
    assert root is not None
    train = read_manifest(args.data / "train.csv")
    dev = read_manifest(args.data / "dev.csv")
    # dev items: LibriSpeech test-other speakers only (unseen by every bundled model)
    dev_pool = [r for r in dev if "/test-other/" in r.path]
    made = {}
    for split, pool, count, seed in (("train", train, args.train_items, args.seed),
                                     ("dev", dev_pool, args.dev_items, args.seed + 1)):
        refs = references(pool, args.reference_seconds)
        # a target needs a reference long enough for a voice profile (3 s of speech after trimming)
        targets = [s for s, r in refs.items() if sum(x.duration_s for x in r) >= MIN_REFERENCE_FILE_S]
        made[split] = build(plan(pool, targets, count, tuple(args.shares), seed),  # type: ignore[arg-type]
                            refs, root, args.out, split, args)
        write_manifest(made[split], args.out / f"decoder_{split}.csv")
    write_manifest(absolute(train, root) + made["train"], args.out / "train.csv")
    write_manifest(absolute(dev, root) + made["dev"], args.out / "dev.csv")
    minutes = {k: sum(r.duration_s for r in v) / 60 for k, v in made.items()}
    print(f"decoder speech: train {len(made['train'])} items, {minutes['train']:.1f} min; "
          f"dev {len(made['dev'])} items, {minutes['dev']:.1f} min -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
