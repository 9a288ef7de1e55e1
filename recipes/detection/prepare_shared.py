"""Builds the detector's training and dev data from the shared data, plus fakes made here.

    VOICEFAKE_DATA=../shared/data nice -n 5 python recipes/detection/prepare_shared.py \
        --out runs/detection/data

Writes 16 kHz FLAC under ``OUT/audio/`` and ``OUT/manifest.csv`` (our manifest format). Every
clip is written twice: ``clean`` and through a random channel (a phone call from
:func:`voicefake.channel.phone_call`, or a wideband MP3/Opus + noise/reverb chain), drawn
with the same probabilities for real and fake, so the channel never decides the label.
Columns used: ``label`` real/fake, ``system`` (the generator), ``folder`` (the generator
family used for leave-one-generator-out folds), ``notes`` = ``split=train|dev;channel=...``.

Real speech: every human recording in the shared data. Dev speakers (never trained on):
LibriSpeech test-other, VCTK p228, FSDD theo/yweweler, Asterisk it/ru voices.
Fakes: the shared fakes, plus copy-synthesis through voicefake's bundled vocoder,
Griffin-Lim, WORLD (pyworld), espeak-ng voices, flite and festival voices, and (stage
``clones``, family ``voicefake-clone``) voicefake's own conversion and text-to-speech output,
and (stage ``copy2``) more copy-synthesis from other clips: the current vocoder (its phase
refinement drawn per clip, 0-16 iterations), and Griffin-Lim and WORLD with drawn settings,
and (stage ``asterisk``, from ``prepare_asterisk.py``) more real telephone prompts of the
shared Asterisk voices with as many narrowband copy-synthesis fakes of other prompts of the
same voices, and (stage ``aux``, merged only with ``--merge-aux``) copy-synthesis through six
classic signal models (vocoders and voice changers), each its own family outside the leave-one-generator-out folds
(``signal_vocoders.py``), and (stage ``fillets``, merged only with ``--merge-fillets``) lines of
two more real voices from Debian's Fish Fillets NG (``prepare_fillets.py``), with
``--fillets-fakes`` also copy-synthesis of other lines of the same voices; stage
``fillets-probe`` (never merged) holds the unseen Dutch pair's lines and fakes made from them; stage ``pairs``
(never merged; train.py's ``data.pairs``) sends each clean training fake and its own source recording
through one shared channel; stage ``rechain`` (never merged; ``--rechain-manifest``) re-records every clean
training clip of a manifest through a drawn recording chain (and a phone line with p = 0.6); also spliced calls
(``OUT/spliced/*.flac`` + ``*.json`` ground truth) for the segment-timeline benchmark.
Needs ``apt-get install -y espeak-ng festival flite festvox-kallpc16k``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from voicefake import channel
from voicefake.audio.io import load_audio, loudness_normalize, write_audio
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest, write_manifest
from voicefake.detection.training import copy_sources

log = logging.getLogger("prepare")
SAMPLE_RATE = 16000
DEV_SPEAKERS_PREFIX = ("librispeech-1688", "librispeech-1998", "librispeech-2033", "librispeech-2414",
                       "librispeech-2609", "librispeech-3005", "librispeech-3080", "librispeech-3331",
                       "librispeech-367", "librispeech-533")
DEV_SPEAKERS = set(DEV_SPEAKERS_PREFIX) | {"vctk-p228", "fsdd-theo", "fsdd-yweweler",
                                           "asterisk-it-carlo_flora", "asterisk-ru-ivrvoice"}

FAMILIES = {  # shared-data system prefix -> family
    "NSF": "nsf", "PWG": "gan-vocoder", "QPPWG": "gan-vocoder", "QPNet": "gan-vocoder",
    "uSFGAN": "gan-vocoder", "nii-vocoding": "gan-vocoder", "WORLD": "world",
    "espeak": "formant-diphone", "mbrola": "formant-diphone", "festival": "festival-flite-pico",
    "flite": "festival-flite-pico", "pico": "festival-flite-pico",
}

PHONE_LINES = [
    "Hello, this is your bank calling about a suspicious transaction on your account.",
    "Please confirm your date of birth and the last four digits of your card.",
    "I need you to transfer the money today, it is really urgent.",
    "Hi mum, I lost my phone, can you send me some money on this number?",
    "Your parcel could not be delivered, press one to speak to an agent.",
    "This is the fraud department, we have blocked your card for your protection.",
    "Can you read me the code we just sent you by text message?",
    "Good morning, I am calling from technical support about your computer.",
    "The meeting has been moved to three thirty, please call me back.",
    "Thank you for calling, all our operators are busy at the moment.",
    "I am the director, please process this payment before the end of the day.",
    "We are updating our records, could you spell your surname for me?",
]


def family_of(system: str) -> str:
    for prefix, family in FAMILIES.items():
        if system.startswith(prefix):
            return family
    raise ValueError(f"no generator family for system {system!r}")


def hashed_fraction(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def draw_channel(seed: int) -> tuple[str, list[channel.ChannelStep]]:
    """A phone call (p = 0.6) or a wideband lossy chain, identical odds for both labels."""
    rng = np.random.default_rng(seed)
    if rng.random() < 0.6:
        return "phone", channel.draw_phone_steps(rng)
    steps = []
    if rng.random() < 0.5:
        steps.append(channel.ChannelStep("add_noise", {"snr_db": float(rng.uniform(10, 35)),
                                                       "kind": str(rng.choice(channel.NOISE_KINDS))}))
    if rng.random() < 0.3:
        steps.append(channel.ChannelStep("reverb", {"rt60": float(rng.uniform(0.15, 0.5))}))
    codec = str(rng.choice(["mp3", "opus", "aac", "none"]))
    if codec == "mp3":
        steps.append(channel.ChannelStep("mp3", {"bitrate": int(rng.choice([24000, 32000, 64000]))}))
    elif codec == "opus":
        steps.append(channel.ChannelStep("opus", {"bitrate": int(rng.choice([12000, 16000, 24000]))}))
    elif codec == "aac":
        steps.append(channel.ChannelStep("aac", {"bitrate": int(rng.choice([32000, 64000]))}))
    return "wideband", steps


class Writer:
    """Writes each clip clean and through a drawn channel; collects manifest rows."""

    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, []

    def add(self, wav: np.ndarray, row: ManifestRow, split: str) -> None:
        stem = row.path
        wav = np.asarray(wav, dtype=np.float32)
        if wav.size < SAMPLE_RATE // 5 or not np.isfinite(wav).all() or np.abs(wav).max() < 1e-4:
            log.warning("skipping %s (too short or silent)", stem)
            return
        seed = int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16)
        kind, steps = draw_channel(seed)
        for name in ("clean", kind):
            rel = f"audio/{name}/{stem}.flac"
            path = self.out / rel
            if not path.exists():  # re-runs only compute what is missing
                try:
                    audio = wav if name == "clean" else channel.apply_chain(wav, SAMPLE_RATE, steps, seed=seed)
                except (ValueError, RuntimeError) as err:
                    log.warning("channel failed on %s: %s", stem, err)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                write_audio(path, loudness_normalize(audio, SAMPLE_RATE), SAMPLE_RATE, force=True)
            self.rows.append(replace(row, path=rel, sample_rate=SAMPLE_RATE, channels=1,
                                     duration_s=round(wav.size / SAMPLE_RATE, 3),
                                     notes=f"split={split};channel={name}"))


def split_of(speaker: str, key: str, generated: bool) -> str:
    if speaker in DEV_SPEAKERS:
        return "dev"
    return "dev" if not generated and hashed_fraction(key) < 0.3 else "train"


def add_shared(writer: Writer, root: Path, reals_only: bool = False) -> list[tuple[np.ndarray, ManifestRow, str]]:
    """Shared reals and fakes; returns the reals (for copy-synthesis sources)."""
    reals = []
    for row in read_manifest(root / "manifest.csv"):
        if reals_only and (row.label != "real" or row.media != "audio"):
            continue
        try:
            wav = load_audio(root / row.path, SAMPLE_RATE)
        except ValueError as err:
            log.warning("skipping %s: %s", row.path, err)
            continue
        stem = "shared/" + str(Path(row.path).with_suffix(""))
        if row.label == "real":
            split = "dev" if row.speaker in DEV_SPEAKERS else "train"
            new = replace(row, path=stem, folder="human", system="human")
            reals.append((wav, new, split))
            if not reals_only:
                writer.add(wav, new, split)
        else:
            new = replace(row, path=stem, folder=family_of(row.system))
            writer.add(wav, new, split_of(row.speaker, row.path, generated=False))
    return reals


def pick_sources(reals: list, per_split: dict[str, int], seed: int, max_s: float = 8.0) -> list:
    rng = np.random.default_rng(seed)
    chosen = []
    for split, count in per_split.items():
        pool = [r for r in reals if r[2] == split and r[0].size > SAMPLE_RATE]
        for index in rng.permutation(len(pool))[:count]:
            wav, row, _ = pool[index]
            start = 0
            if wav.size > max_s * SAMPLE_RATE:
                start = int(rng.integers(0, wav.size - int(max_s * SAMPLE_RATE)))
            chosen.append((wav[start : start + int(max_s * SAMPLE_RATE)], row, split))
    return chosen


def add_clones(writer: Writer, reals: list, counts: dict[str, int], seed: int = 0) -> None:
    """voicefake's own cloning output: conversion (random blend) and text to speech, each source
    spoken in another speaker of the same split (30 s of that speaker as the reference).

    The front end (espeak-ng) and ``eq=0`` are what the shipped detector's data was made with.
    Its clones came from conversion-16k 0.1.0; this stage now makes them with the bundled
    decoder (0.2.0 since session 14, which reads the cepstrum and keeps more words; since
    session 16 text to speech through espeak-ng uses conversion-espeak-16k, as api.clone does)."""
    from voicefake import api

    rng = np.random.default_rng(seed)
    by_speaker: dict[tuple[str, str], list[np.ndarray]] = {}
    for wav, row, split in reals:
        by_speaker.setdefault((split, row.speaker), []).append(wav)
    for index, (wav, row, split) in enumerate(pick_sources(reals, counts, seed + 7)):
        others = sorted(k for k, v in by_speaker.items() if k[0] == split and k[1] != row.speaker
                        and sum(w.size for w in v) >= 5 * SAMPLE_RATE)
        target = others[int(rng.integers(len(others)))]
        reference = np.concatenate(by_speaker[target])[: 30 * SAMPLE_RATE]
        blend = float(rng.choice([0.0, 0.25, 0.5, 1.0]))
        if index % 4 == 3:
            text = PHONE_LINES[int(rng.integers(len(PHONE_LINES)))]
            fake, _ = api.clone(text, reference, blend=blend, engine="espeak", eq=0.0)  # as the shipped detector saw
            system = "voicefake-tts"
        else:
            text = row.transcript
            fake, _ = api.convert(wav, reference, blend=blend, eq=0.0)  # as the shipped detector saw
            system = "voicefake-convert"
        stem = f"gen/{system}/{split}-{index:04d}"
        writer.add(fake, replace(row, path=stem, label="fake", system=f"{system}-blend{blend}", speaker=target[1],
                                 folder="voicefake-clone", transcript=text), split)


def add_adapted_clones(writer: Writer, reals: list, targets: dict[str, int], per_target: int = 8,
                       seed: int = 0) -> None:
    """Stage ``clones2`` (family ``voicefake-clone``): voices adapted to their 30 s reference
    (``api.finetune_voice``: its defaults, or 100 steps kept whole, drawn per voice), each saying
    ``per_target`` lines at the API's current defaults: conversions of other speakers' clips of
    the same split, and flite text to speech of the phone lines (every fourth line).

    Why (session 25): a scenario call whose cloned CEO was adapted first scored p_fake 0.64
    through the phone line, against 0.95 for the same call cloned zero-shot."""
    import tempfile

    from voicefake import api

    rng = np.random.default_rng(seed)
    by_speaker: dict[tuple[str, str], list[np.ndarray]] = {}
    for wav, row, split in reals:
        by_speaker.setdefault((split, row.speaker), []).append(wav)
    for split, count in targets.items():
        voices = sorted(k for k, v in by_speaker.items() if k[0] == split and sum(w.size for w in v) >= 20 * SAMPLE_RATE)
        sources = pick_sources(reals, {split: count * per_target}, seed + 11)
        for t, index in enumerate(rng.permutation(len(voices))[:count]):
            target = voices[index]
            reference = np.concatenate(by_speaker[target])[: 30 * SAMPLE_RATE]
            steps, keep = ((None, None), (100, 1.0))[int(rng.integers(2))]
            with tempfile.TemporaryDirectory() as folder:
                path, info = api.finetune_voice([reference], Path(folder) / "voice", steps=steps, keep=keep)
                voice = api.voice_profile(str(path))
            tag = f"s{info['steps']}k{info['keep']}"
            mine = [s for s in sources[t * per_target : (t + 1) * per_target] if s[1].speaker != target[1]]
            for n, (wav, row, _) in enumerate(mine):
                if n % 4 == 3:
                    text = PHONE_LINES[int(rng.integers(len(PHONE_LINES)))]
                    fake, _ = api.clone(text, voice, engine="flite")
                    system = "voicefake-adapted-tts"
                else:
                    text = row.transcript
                    fake, _ = api.convert(wav, voice)
                    system = "voicefake-adapted-convert"
                stem = f"gen/{system}/{split}-{t:03d}-{n:02d}"
                writer.add(fake, replace(row, path=stem, label="fake", system=f"{system}-{tag}", speaker=target[1],
                                         folder="voicefake-clone", transcript=text), split)
            log.info("clones2 %s voice %d/%d (%s, %s): %d clips", split, t + 1, count, target[1], tag, len(mine))


def griffin_lim(wav: np.ndarray, seed: int) -> np.ndarray:
    import librosa

    n_fft = int(np.random.default_rng(seed).choice([512, 1024]))
    mag = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=n_fft // 4))
    return librosa.griffinlim(mag, n_iter=32, hop_length=n_fft // 4, n_fft=n_fft, random_state=seed)


def world_copy(wav: np.ndarray, tracker: str = "dio", period: float = 5.0) -> np.ndarray:
    """WORLD analysis-synthesis (pyworld) with F0 tracker ``tracker`` ("dio" or "harvest")."""
    import pyworld

    x = wav.astype(np.float64)
    f0, t = getattr(pyworld, tracker)(x, SAMPLE_RATE, frame_period=period)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    return pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, frame_period=period).astype(np.float32)


def world(wav: np.ndarray, seed: int) -> np.ndarray:
    return world_copy(wav)


def vocoder(wav: np.ndarray, seed: int) -> np.ndarray:
    from voicefake import api

    # the vocoder's default setting: 1 phase iteration up to vocoder-16k 0.4.0 (the data of
    # detector 0.3.1), 12 since 0.4.1; stage copy2 draws the setting
    return api.resynthesize(wav)[0]


COPY_SYNTHESIS = {"voicefake-vocoder": vocoder, "griffin-lim": griffin_lim, "world": world}
# stage copy2's vocoder settings: the default (12 since vocoder-16k 0.4.1; 1 before) twice as
# often, and the convert/clone pipeline's 1 (voicefake.api.cloning.PHASE_ITERATIONS)
PHASE_ITERATIONS = (0, 1, 2, 4, 8, 12, 12, 16)


def griffin_lim_varied(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Griffin-Lim with drawn settings: STFT size, iterations, momentum, and from the linear
    magnitude or from a mel spectrogram (as a mel-vocoder baseline would be), so that the
    family is seen in its variety rather than as one setting."""
    import librosa

    rng = np.random.default_rng(seed)
    n_fft = int(rng.choice([256, 512, 1024, 2048]))
    n_iter = int(rng.choice([8, 16, 32, 64, 100]))
    momentum = float(rng.choice([0.99, 0.5, 0.0]))
    source = str(rng.choice(["stft", "mel"]))
    hop = n_fft // 4
    mag = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=hop))
    if source == "mel":
        n_mels = int(rng.choice([64, 80, 128]))
        mel = librosa.feature.melspectrogram(S=mag**2, sr=SAMPLE_RATE, n_mels=min(n_mels, n_fft // 4))
        mag = librosa.feature.inverse.mel_to_stft(mel, sr=SAMPLE_RATE, n_fft=n_fft)
    out = librosa.griffinlim(mag, n_iter=n_iter, hop_length=hop, n_fft=n_fft, momentum=momentum,
                             random_state=seed, length=wav.size)
    return out.astype(np.float32), f"griffin-lim-{source}-{n_fft}-it{n_iter}-m{momentum:g}"


def world_varied(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """WORLD analysis-synthesis with a drawn F0 tracker and frame period."""
    rng = np.random.default_rng(seed)
    tracker = str(rng.choice(["dio", "harvest"]))
    period = float(rng.choice([5.0, 10.0]))
    return world_copy(wav, tracker, period), f"world-{tracker}-{period:g}ms"


def add_copy_varied(writer: Writer, reals: list, counts: dict[str, int], vocoder_name: str,
                    prefix: str = "gen2") -> None:
    """Stage ``copy2``: more copy-synthesis, from other source clips than stage ``copy``:
    the vocoder ``vocoder_name`` (a bundled name or checkpoint folder; family
    voicefake-vocoder), and Griffin-Lim and WORLD with drawn settings."""
    from voicefake import api
    from voicefake.checkpoint import Checkpoint, resolve

    voc_system = "voicefake-vocoder-" + str(Checkpoint.load(resolve(vocoder_name)).metadata.get("version", "unknown"))

    def vocoder_copy(wav: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
        # the vocoder's phase refinement is a user setting (0 = the network's STFT, 16 = best
        # quality): draw it, so that no single setting decides what the family looks like
        iterations = int(np.random.default_rng(seed).choice(PHASE_ITERATIONS))
        out = api.resynthesize(wav, checkpoint=vocoder_name, phase_iterations=iterations)[0]
        return out, f"{voc_system}-it{iterations}"

    generators = {"voicefake-vocoder": vocoder_copy, "griffin-lim": griffin_lim_varied, "world": world_varied}
    add_drawn_copies(writer, reals, counts, generators, prefix, seed=100)


def add_drawn_copies(writer: Writer, reals: list, counts: dict[str, int], generators: dict, prefix: str,
                     seed: int) -> None:
    """Copy-synthesis of ``counts`` drawn sources per family through ``generators`` (family ->
    ``fn(wav, seed) -> (fake, system)``, the system naming the drawn settings). Family ``i``
    draws its sources with ``seed + i``; its ``n``-th clip is made with ``10 * seed + n``."""
    for index, (family, fn) in enumerate(generators.items()):
        sources = pick_sources(reals, counts, seed=seed + index)
        for number, (wav, row, split) in enumerate(sources):
            fake, system = fn(wav, 10 * seed + number)
            new = replace(row, path=f"{prefix}/{system}/{Path(row.path).name}_{number}", label="fake",
                          system=system, folder=family)
            writer.add(fake, new, split)
        log.info("copy-synthesis %s (%s): %d clips", family, prefix, len(sources))


def add_signal_vocoders(writer: Writer, reals: list, counts: dict[str, int]) -> None:
    """Stage ``aux``: copy-synthesis through classic signal models (LPC, channel vocoder,
    phase-vocoder pitch shift since session 28; harmonic-plus-noise, TD-PSOLA pitch shift,
    formant warp since session 29; ``signal_vocoders.py``), each its own family. None of them is
    one of the eight families that the leave-one-generator-out folds hold out, so every fold
    trains on them: they add ways of rebuilding or reshaping speech from a parametric
    description. Families are appended, so the earlier ones keep their sources and seeds."""
    add_drawn_copies(writer, reals, counts, signal_vocoders(), "aux", seed=200)


def signal_vocoders() -> dict:
    """``signal_vocoders.SIGNAL_VOCODERS`` (family -> ``fn(wav, seed) -> (fake, system)``), imported
    from this recipe's folder."""
    import sys

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from signal_vocoders import SIGNAL_VOCODERS  # type: ignore[import-not-found]

    return SIGNAL_VOCODERS


def asterisk_reals(folder: Path) -> list[tuple[np.ndarray, ManifestRow, str]]:
    """The Asterisk prompts of ``prepare_asterisk.py`` that are neither in the shared data nor
    of a voice kept for the unseen-voice false-alarm check; split by speaker as above."""
    if not (folder / "manifest.csv").is_file():
        raise SystemExit(f"{folder / 'manifest.csv'}: not found; run recipes/detection/prepare_asterisk.py "
                         f"--out {folder} first (or pass --asterisk DIR)")
    reals = []
    for row in read_manifest(folder / "manifest.csv"):
        if "in_shared=0" not in row.notes or "new_voice=0" not in row.notes or row.duration_s < 1.0:
            continue
        wav = load_audio(folder / row.path, SAMPLE_RATE, allow_silence=True)
        new = replace(row, path="asterisk/" + str(Path(row.path).with_suffix("")), folder="human")
        reals.append((wav, new, "dev" if row.speaker in DEV_SPEAKERS else "train"))
    return reals


def add_asterisk(writer: Writer, folder: Path, counts: dict[str, int], vocoder_name: str) -> None:
    """Stage ``asterisk``: more real telephone prompts of the shared data's Asterisk voices
    (``counts`` per split) and as many narrowband fakes, copy-synthesis of other prompts of the
    same voices (vocoder / Griffin-Lim / WORLD with drawn settings, a third each), so that
    narrowband studio audio is seen on both sides of the label."""
    reals = asterisk_reals(folder)
    chosen = pick_sources(reals, counts, seed=300)
    for wav, row, split in chosen:
        writer.add(wav, row, split)
    taken = {row.path for _, row, _ in chosen}
    rest = [r for r in reals if r[1].path not in taken]
    add_copy_varied(writer, rest, {k: v // 3 for k, v in counts.items()}, vocoder_name, prefix="gen3")
    log.info("asterisk: %d real prompts", len(chosen))


KLETTRES_TRAIN = ("klettres-ar", "klettres-cs", "klettres-da", "klettres-de", "klettres-en", "klettres-en_GB",
                  "klettres-es", "klettres-fr", "klettres-he", "klettres-hu")  # the other 10 voices stay unseen


def add_klettres(writer: Writer, folder: Path, vocoder_name: str) -> None:
    """Stage ``klettres`` (from ``prepare_klettres.py``): more real voices for training, the
    recordings (>= 1 s) of the :data:`KLETTRES_TRAIN` voices, half of them as reals and the other
    half as sources of as many copy-synthesis fakes (vocoder / Griffin-Lim / WORLD, a third
    each), so that these recordings are seen on both sides of the label. All go to train; the
    other ten voices stay out for the unseen-voice check."""
    if not (folder / "manifest.csv").is_file():
        raise SystemExit(f"{folder / 'manifest.csv'}: not found; run recipes/detection/prepare_klettres.py "
                         f"--out {folder} first (or pass --klettres DIR)")
    clips = []
    for row in read_manifest(folder / "manifest.csv"):
        if row.speaker in KLETTRES_TRAIN and row.duration_s >= 1.0:
            wav = load_audio(folder / row.path, SAMPLE_RATE, allow_silence=True)
            clips.append((wav, replace(row, path="klettres/" + str(Path(row.path).with_suffix("")), folder="human"), "train"))
    order = np.random.default_rng(400).permutation(len(clips))
    reals, sources = [clips[i] for i in order[::2]], [clips[i] for i in order[1::2]]
    for wav, row, split in reals:
        writer.add(wav, row, split)
    add_copy_varied(writer, sources, {"train": len(sources) // 3}, vocoder_name, prefix="gen4")
    log.info("klettres: %d real recordings of %d voices", len(reals), len({r.speaker for _, r, _ in reals}))


KTUBERLING_DEV = ("ktuberling-el", "ktuberling-ga", "ktuberling-gl", "ktuberling-ru", "ktuberling-sv")
KTUBERLING_UNSEEN = ("ktuberling-lt",)  # in no split: the benchmark's fourth unseen-voice set


def add_ktuberling(writer: Writer, folder: Path, per_voice: int, dev_per_voice: int = 0) -> None:
    """Stage ``ktuberling`` (from ``prepare_ktuberling.py``): real words from many recording
    chains, each clean and through a drawn channel like every other clip. Up to ``per_voice`` words
    (drawn with a fixed seed) of each language's voice outside :data:`KTUBERLING_DEV` and
    :data:`KTUBERLING_UNSEEN` go to train, as reals only: no fakes are made from these recordings
    (session 10: copy-synthesis fakes of a new chain taught the network that the chain can be fake).
    Up to ``dev_per_voice`` words of each :data:`KTUBERLING_DEV` voice go to dev, so that the
    calibration's thresholds also hold on recording chains the network never trained on (session 45)."""
    if not (folder / "manifest.csv").is_file():
        raise SystemExit(f"{folder / 'manifest.csv'}: not found; run recipes/detection/prepare_ktuberling.py "
                         f"--out {folder} first (or pass --ktuberling DIR)")
    by_voice: dict[str, list[ManifestRow]] = {}
    for row in read_manifest(folder / "manifest.csv"):
        if row.speaker not in KTUBERLING_UNSEEN:
            by_voice.setdefault(row.speaker, []).append(row)
    counts = {"train": 0, "dev": 0}
    for split, seed, cap in (("train", 800, per_voice), ("dev", 801, dev_per_voice)):
        rng = np.random.default_rng(seed)
        for speaker in sorted(s for s in by_voice if (s in KTUBERLING_DEV) == (split == "dev")):
            rows = by_voice[speaker]
            for index in sorted(rng.permutation(len(rows))[:cap].tolist()):
                row = rows[index]
                wav = load_audio(folder / row.path, SAMPLE_RATE, allow_silence=True)
                writer.add(wav, replace(row, path="ktuberling/" + str(Path(row.path).with_suffix("")),
                                        folder="human"), split)
                counts[split] += 1
    log.info("ktuberling: %d real words in train, %d in dev, of %d voices", counts["train"], counts["dev"],
             len(by_voice))


FILLETS_TRAIN = ("fillets-cs-m", "fillets-cs-v")  # the Dutch pair stays unseen


def fillets_lines(folder: Path, keep, split: str) -> list[tuple[np.ndarray, ManifestRow, str]]:
    """The lines (>= 1 s) of ``prepare_fillets.py``'s voices for which ``keep(speaker)`` holds, as
    ``(wav, row, split)`` in manifest order."""
    if not (folder / "manifest.csv").is_file():
        raise SystemExit(f"{folder / 'manifest.csv'}: not found; run recipes/detection/prepare_fillets.py "
                         f"--out {folder} first (or pass --fillets DIR)")
    return [(load_audio(folder / row.path, SAMPLE_RATE, allow_silence=True),
             replace(row, path="fillets/" + str(Path(row.path).with_suffix("")), folder="human"), split)
            for row in read_manifest(folder / "manifest.csv") if keep(row.speaker) and row.duration_s >= 1.0]


def add_fillets_fakes(writer: Writer, sources: list, count: int, split: str, vocoder_name: str, prefix: str) -> None:
    """``count`` copy-synthesis fakes per family of ``sources``: stage copy2's generators (the
    vocoder, Griffin-Lim, WORLD) and stage aux's six signal models."""
    add_copy_varied(writer, sources, {split: count}, vocoder_name, prefix=prefix)
    add_drawn_copies(writer, sources, {split: count}, signal_vocoders(), f"{prefix}-aux", seed=700)


def add_fillets(writer: Writer, folder: Path, count: int, fakes: int = 0, vocoder_name: str = "vocoder") -> None:
    """Stage ``fillets`` (from ``prepare_fillets.py``): more real voices for training, ``count``
    lines (drawn with a fixed seed) of the two Czech voices of :data:`FILLETS_TRAIN`, each clean and
    through a drawn channel like every other clip. ``fakes`` > 0 also makes that many
    copy-synthesis fakes per family (:func:`add_fillets_fakes`, nine families) from other lines of
    the same voices, so that their recording chain is seen on both sides of the label (session 30:
    learned as real only, the chain hid the fakes made from it). All go to train; the Dutch pair
    stays out for the unseen-voice check and stage ``fillets-probe``."""
    clips = fillets_lines(folder, lambda speaker: speaker in FILLETS_TRAIN, "train")
    chosen = set(np.random.default_rng(500).permutation(len(clips))[:count].tolist())
    for index in sorted(chosen):
        writer.add(*clips[index])
    if fakes:
        add_fillets_fakes(writer, [c for i, c in enumerate(clips) if i not in chosen], fakes, "train",
                          vocoder_name, "fillets-gen")
    log.info("fillets: %d real lines of %d voices", len(chosen), len({r.speaker for _, r, _ in clips}))


def add_fillets_dev(writer: Writer, folder: Path, count: int) -> None:
    """Stage ``fillets-dev`` (merged only with ``--merge-fillets-dev``): ``count`` lines (drawn with
    a fixed seed) of the Czech pair as dev reals, each clean and through a drawn channel, so that a
    calibration holds on an acted studio chain that no training recording shares (session 45). The
    Dutch pair stays unseen. Not to be merged together with stage ``fillets`` (the same voices)."""
    clips = fillets_lines(folder, lambda speaker: speaker in FILLETS_TRAIN, "dev")
    for index in sorted(np.random.default_rng(501).permutation(len(clips))[:count].tolist()):
        writer.add(*clips[index])
    log.info("fillets-dev: %d real lines of %d voices", min(count, len(clips)), len({r.speaker for _, r, _ in clips}))


def add_fillets_probe(writer: Writer, folder: Path, count: int, vocoder_name: str) -> None:
    """Stage ``fillets-probe`` (never merged into manifest.csv): does a recording chain learned as
    real hide fakes made from it? Lines of the unseen Dutch pair, ``3 * count`` as reals (a
    threshold-free EER needs them) and, from the other lines, ``count`` per family
    (:func:`add_fillets_fakes`); all ``dev``, each clean and through a drawn channel. Scored by
    ``benchmarks/detection_by_system.py --family --manifest OUT/manifest_fillets-probe.csv``."""
    clips = fillets_lines(folder, lambda speaker: speaker.startswith("fillets-nl-"), "dev")
    order = np.random.default_rng(600).permutation(len(clips))
    reals, sources = [clips[i] for i in order[: 3 * count]], [clips[i] for i in order[3 * count :]]
    for clip in reals:
        writer.add(*clip)
    add_fillets_fakes(writer, sources, count, "dev", vocoder_name, "probe")
    log.info("fillets-probe: %d real lines and their fakes", len(reals))


def add_channel_pairs(out: Path, rows: list[ManifestRow]) -> list[ManifestRow]:
    """Stage ``pairs``: every clean training fake whose source recording is in ``rows``
    (:func:`voicefake.detection.training.copy_sources`) and that source, cut to the same length
    and sent through one and the same drawn channel (same steps, same noise seed), so that the
    detector meets a fake beside its own recording over a phone line or a lossy wideband chain.
    Rows are tagged ``pair=<fake>``: train.py's ``data.pairs`` draws them only as pairs."""
    sources = copy_sources(rows)
    pairs = []
    for fake, source in zip(rows, sources, strict=True):
        if source < 0 or fake.tags.get("split") != "train":
            continue
        real = rows[source]
        key = str(Path(fake.path).relative_to("audio/clean").with_suffix(""))
        seed = int(hashlib.sha1(f"pairs/{key}".encode()).hexdigest()[:8], 16)
        kind, steps = draw_channel(seed)
        fake_wav, real_wav = (load_audio(out / row.path, SAMPLE_RATE, allow_silence=True) for row in (fake, real))
        usable = min(fake_wav.size, real_wav.size)
        written = []
        for row, wav, name in ((real, real_wav, "source"), (fake, fake_wav, "fake")):
            rel = f"audio/pairs/{kind}/{key}.{name}.flac"
            if not (out / rel).exists():
                try:
                    audio = channel.apply_chain(wav[:usable], SAMPLE_RATE, steps, seed=seed)
                except (ValueError, RuntimeError) as err:
                    log.warning("channel failed on %s: %s", key, err)
                    break
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                write_audio(out / rel, loudness_normalize(audio, SAMPLE_RATE), SAMPLE_RATE, force=True)
            written.append(replace(row, path=rel, duration_s=round(usable / SAMPLE_RATE, 3),
                                   notes=f"split=train;channel={kind};pair={key}"))
        if len(written) == 2:
            pairs += written
    return pairs


def add_rechained(out: Path, rows: list[ManifestRow]) -> list[ManifestRow]:
    """Stage ``rechain`` (session 46): one more copy of every clean training clip in ``rows``,
    real and fake alike, re-recorded through a drawn recording chain
    (:func:`voicefake.channel.recording_chain`: microphone response, original rate, level, noise
    floor, file format) and then, with p = 0.6, a drawn phone line, so that no recording chain
    decides the label. Seeded by the clip's path; tagged ``channel=rechain`` or
    ``rechain-phone``. Files under ``audio/rechain/``; re-runs reuse them."""
    written = []
    for row in rows:
        if row.tags.get("split") != "train" or row.tags.get("channel") != "clean":
            continue
        stem = row.path.removeprefix("audio/clean/").removesuffix(".flac")
        rng = np.random.default_rng(int(hashlib.sha1(f"rechain:{stem}".encode()).hexdigest()[:8], 16))
        rel = f"audio/rechain/{stem}.flac"
        phone = bool(rng.random() < 0.6)
        if not (out / rel).exists():
            audio = channel.recording_chain(load_audio(out / row.path, SAMPLE_RATE, allow_silence=True), SAMPLE_RATE, rng)[0]
            if phone:
                audio = channel.phone_call(audio, SAMPLE_RATE, rng)[0]
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            write_audio(out / rel, loudness_normalize(audio, SAMPLE_RATE), SAMPLE_RATE, force=True)
        written.append(replace(row, path=rel, notes=f"split=train;channel={'rechain-phone' if phone else 'rechain'}"))
    return written


def add_copy_synthesis(writer: Writer, reals: list, counts: dict[str, int]) -> None:
    for index, (name, fn) in enumerate(COPY_SYNTHESIS.items()):
        sources = pick_sources(reals, {"train": counts["train"], "dev": counts["dev"]}, seed=index)
        for number, (wav, row, split) in enumerate(sources):
            fake = fn(wav, number)
            new = replace(row, path=f"gen/{name}/{Path(row.path).name}_{number}", label="fake",
                          system=name, folder=name)
            writer.add(fake, new, split)
        log.info("copy-synthesis %s: %d clips", name, len(sources))


def tts_texts(root: Path) -> list[str]:
    rows = read_manifest(root / "manifest.csv")
    texts = {r.transcript for r in rows if r.transcript and len(r.transcript) > 12
             and (r.folder in ("vctk_autovc", "ljspeech_coqui") or r.path.startswith("asterisk_prompts/en"))}
    return sorted(texts) + PHONE_LINES


def run_tts(command: list[str], wav_path: Path) -> np.ndarray:
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return load_audio(wav_path, SAMPLE_RATE)


def tts_commands(voice: str, text: str, wav: Path, txt: Path, rng: np.random.Generator) -> list[str]:
    if voice.startswith("espeak-ng"):
        variant = str(rng.choice(["m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "klatt"]))
        lang = voice.split(":")[1]
        return ["espeak-ng", "-v", f"{lang}+{variant}", "-s", str(int(rng.integers(130, 190))),
                "-p", str(int(rng.integers(30, 70))), "-w", str(wav), text]
    if voice.startswith("flite"):
        return ["flite", "-voice", voice.split(":")[1], "-t", text, "-o", str(wav)]
    txt.write_text(text)
    return ["text2wave", str(txt), "-o", str(wav)]


TTS_VOICES = {  # voice -> (system, family, utterances)
    "espeak-ng:en-us": ("espeak-ng_en-us-variants", "formant-diphone", 24),
    "espeak-ng:en-gb": ("espeak-ng_en-gb-variants", "formant-diphone", 16),
    "espeak-ng:en-gb-scotland": ("espeak-ng_en-gb-scotland", "formant-diphone", 12),
    "espeak-ng:en-gb-x-rp": ("espeak-ng_en-gb-x-rp", "formant-diphone", 12),
    "flite:kal16": ("flite_kal16", "festival-flite-pico", 12),
    "flite:kal": ("flite_kal_8k", "festival-flite-pico", 12),
    "flite:awb": ("flite_awb", "festival-flite-pico", 12),
    "flite:rms": ("flite_rms", "festival-flite-pico", 12),
    "flite:slt": ("flite_slt", "festival-flite-pico", 12),
    "festival:kal_diphone": ("festival_kal_diphone", "festival-flite-pico", 16),
}


def add_tts(writer: Writer, texts: list[str], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        wav_path, txt_path = Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        for voice, (system, family, count) in TTS_VOICES.items():
            for number in rng.permutation(len(texts))[:count]:
                text = texts[number]
                command = tts_commands(voice, text, wav_path, txt_path, rng)
                try:
                    wav = run_tts(command, wav_path)
                except (subprocess.SubprocessError, ValueError) as err:
                    log.warning("%s failed: %s", voice, err)
                    continue
                key = f"gen/{system}/{number:03d}"
                row = ManifestRow(path=key, speaker=system, label="fake", system=system,
                                  transcript=text, folder=family)
                writer.add(wav, row, "dev" if hashed_fraction(key) < 0.3 else "train")
            log.info("tts %s done", voice)


def make_spliced(out: Path, reals: list, count: int, seed: int = 0) -> None:
    """Dev calls: real utterances of one speaker with 1-2 vocoded / WORLD spans spliced in."""
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[np.ndarray]] = {}
    for wav, row, split in reals:
        if split == "dev" and row.speaker.startswith("librispeech"):
            by_speaker.setdefault(row.speaker, []).append(wav)
    speakers = sorted(by_speaker)
    (out / "spliced").mkdir(parents=True, exist_ok=True)
    for number in range(count):
        speaker = speakers[number % len(speakers)]
        pool = by_speaker[speaker]
        parts = [pool[i] for i in rng.permutation(len(pool))[:3]]
        call = np.concatenate([np.concatenate([p, np.zeros(int(0.3 * SAMPLE_RATE), np.float32)]) for p in parts])
        labels = np.zeros(call.size, bool)
        for _ in range(int(rng.integers(1, 3))):
            length = int(rng.uniform(1.5, 4.0) * SAMPLE_RATE)
            start = int(rng.integers(0, max(1, call.size - length)))
            fn = COPY_SYNTHESIS[str(rng.choice(["voicefake-vocoder", "world", "griffin-lim"]))]
            span = fn(call[start : start + length], number)[:length]
            call[start : start + span.size] = span
            labels[start : start + span.size] = True
        channel_name = "clean"
        if number % 2 == 1:
            call, _ = channel.phone_call(call, SAMPLE_RATE, seed=number)
            channel_name = "phone"
        name = f"call_{number:03d}_{channel_name}"
        write_audio(out / "spliced" / f"{name}.flac", loudness_normalize(call, SAMPLE_RATE), SAMPLE_RATE, force=True)
        segments = [{"start": round(a / SAMPLE_RATE, 3), "end": round(b / SAMPLE_RATE, 3), "speaker": speaker,
                     "label": "fake" if labels[a] else "real"} for a, b in _runs(labels)]
        (out / "spliced" / f"{name}.json").write_text(json.dumps({"segments": segments}, indent=1))


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(labels.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), labels.size]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/detection/data"))
    parser.add_argument("--stage", choices=["shared", "tts", "copy", "copy2", "spliced", "clones", "clones2", "asterisk",
                                            "klettres", "ktuberling", "aux", "fillets", "fillets-dev", "fillets-probe",
                                            "pairs", "rechain", "all"],
                        default="all",
                        help="one part (stages can run in parallel); 'all' also merges the manifests")
    parser.add_argument("--copy-train", type=int, default=50, help="copy-synthesis sources per family (train)")
    parser.add_argument("--copy-dev", type=int, default=25, help="copy-synthesis sources per family (dev)")
    parser.add_argument("--copy2-train", type=int, default=120, help="stage copy2 sources per family (train)")
    parser.add_argument("--copy2-dev", type=int, default=30, help="stage copy2 sources per family (dev)")
    parser.add_argument("--vocoder", default="vocoder", help="stage copy2's vocoder (bundled name or folder)")
    parser.add_argument("--spliced", type=int, default=20, help="spliced dev calls")
    parser.add_argument("--clones-train", type=int, default=150, help="voicefake clones (train)")
    parser.add_argument("--clones-dev", type=int, default=40, help="voicefake clones (dev)")
    parser.add_argument("--clones2-train", type=int, default=15, help="stage clones2: adapted voices (train)")
    parser.add_argument("--clones2-dev", type=int, default=5, help="stage clones2: adapted voices (dev)")
    parser.add_argument("--merge-clones2", action="store_true",
                        help="put stage clones2 into manifest.csv (off by default: the candidate trained with it "
                             "raised false alarms on unseen voices in session 25, docs/benchmarks/detection.md)")
    parser.add_argument("--clones2-lines", type=int, default=20,
                        help="stage clones2: lines per adapted voice (fewer when a source is the voice's own)")
    parser.add_argument("--aux-train", type=int, default=120, help="stage aux: sources per signal model (train)")
    parser.add_argument("--aux-dev", type=int, default=30, help="stage aux: sources per signal model (dev)")
    parser.add_argument("--merge-aux", action="store_true",
                        help="put stage aux (signal-model vocoders and voice changers) into manifest.csv")
    parser.add_argument("--asterisk", type=Path, default=Path("runs/data/asterisk"),
                        help="stage asterisk: the output folder of prepare_asterisk.py")
    parser.add_argument("--asterisk-train", type=int, default=300, help="stage asterisk: real prompts (train)")
    parser.add_argument("--asterisk-dev", type=int, default=0, help="stage asterisk: real prompts (dev)")
    parser.add_argument("--klettres", type=Path, default=Path("runs/data/klettres"),
                        help="stage klettres: the output folder of prepare_klettres.py")
    parser.add_argument("--merge-klettres", action="store_true",
                        help="put stage klettres into manifest.csv (off by default: it raised false alarms on "
                             "unseen voices in session 10, docs/benchmarks/detection.md)")
    parser.add_argument("--ktuberling", type=Path, default=Path("runs/data/ktuberling"),
                        help="stage ktuberling: the output folder of prepare_ktuberling.py")
    parser.add_argument("--ktuberling-per-voice", type=int, default=60,
                        help="stage ktuberling: real train words per language's voice at most")
    parser.add_argument("--ktuberling-dev-per-voice", type=int, default=40,
                        help="stage ktuberling: real dev (calibration) words per KTUBERLING_DEV voice at most")
    parser.add_argument("--merge-ktuberling", action="store_true",
                        help="put stage ktuberling (real words from many recording chains) into manifest.csv")
    parser.add_argument("--fillets", type=Path, default=Path("runs/data/fillets"),
                        help="stage fillets: the output folder of prepare_fillets.py")
    parser.add_argument("--fillets-train", type=int, default=400, help="stage fillets: real lines (train)")
    parser.add_argument("--fillets-fakes", type=int, default=0,
                        help="stage fillets: copy-synthesis fakes per family (nine) from other lines of the same voices")
    parser.add_argument("--fillets-probe", type=int, default=40,
                        help="stage fillets-probe: fakes per family (and three times as many Dutch real lines)")
    parser.add_argument("--fillets-dev", type=int, default=150, help="stage fillets-dev: Czech real lines (dev)")
    parser.add_argument("--merge-fillets-dev", action="store_true",
                        help="put stage fillets-dev (the Czech pair as calibration reals) into manifest.csv")
    parser.add_argument("--merge-fillets", action="store_true",
                        help="put stage fillets (two more real voices) into manifest.csv")
    parser.add_argument("--rechain-manifest", type=Path, default=None,
                        help="stage rechain: the manifest whose clean training clips are re-recorded (default: "
                             "OUT/manifest.csv); its rows go to manifest_rechain.csv, never merged")
    args = parser.parse_args()
    if args.merge_fillets and args.merge_fillets_dev:
        parser.error("--merge-fillets and --merge-fillets-dev put the same Czech voices in train and in dev; "
                     "give one of them")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = data_root()
    stages = ["shared", "tts", "copy", "spliced"] if args.stage == "all" else [args.stage]
    for stage in stages:
        writer = Writer(args.out)
        if stage == "tts":
            add_tts(writer, tts_texts(root))
        elif stage == "asterisk":
            add_asterisk(writer, args.asterisk, {"train": args.asterisk_train, "dev": args.asterisk_dev}, args.vocoder)
        elif stage == "klettres":
            add_klettres(writer, args.klettres, args.vocoder)
        elif stage == "ktuberling":
            add_ktuberling(writer, args.ktuberling, args.ktuberling_per_voice, args.ktuberling_dev_per_voice)
        elif stage == "fillets":
            add_fillets(writer, args.fillets, args.fillets_train, args.fillets_fakes, args.vocoder)
        elif stage == "fillets-dev":
            add_fillets_dev(writer, args.fillets, args.fillets_dev)
        elif stage == "fillets-probe":
            add_fillets_probe(writer, args.fillets, args.fillets_probe, args.vocoder)
        elif stage == "pairs":
            writer.rows = add_channel_pairs(args.out, read_manifest(args.out / "manifest.csv"))
        elif stage == "rechain":
            writer.rows = add_rechained(args.out, read_manifest(args.rechain_manifest or args.out / "manifest.csv"))
        elif stage in ("copy", "copy2", "spliced", "clones", "clones2", "aux"):
            reals = add_shared(Writer(args.out), root, reals_only=True)
            if stage == "copy":
                add_copy_synthesis(writer, reals, {"train": args.copy_train, "dev": args.copy_dev})
            elif stage == "copy2":
                add_copy_varied(writer, reals, {"train": args.copy2_train, "dev": args.copy2_dev}, args.vocoder)
            elif stage == "aux":
                add_signal_vocoders(writer, reals, {"train": args.aux_train, "dev": args.aux_dev})
            elif stage == "clones":
                add_clones(writer, reals, {"train": args.clones_train, "dev": args.clones_dev})
            elif stage == "clones2":
                add_adapted_clones(writer, reals, {"train": args.clones2_train, "dev": args.clones2_dev},
                                   args.clones2_lines)
            else:
                make_spliced(args.out, reals, args.spliced)
        else:
            add_shared(writer, root)
        if writer.rows:
            write_manifest(writer.rows, args.out / f"manifest_{stage}.csv")
            log.info("stage %s: %d rows", stage, len(writer.rows))
    parts = [args.out / f"manifest_{s}.csv" for s in ("shared", "tts", "copy")]
    if args.stage not in ("pairs", "rechain") and all(p.exists() for p in parts):  # they read manifest.csv as it is
        extra = ("clones", "copy2", "asterisk") + (("clones2",) if args.merge_clones2 else ()) \
            + (("klettres",) if args.merge_klettres else ()) + (("aux",) if args.merge_aux else ()) \
            + (("fillets",) if args.merge_fillets else ()) + (("ktuberling",) if args.merge_ktuberling else ()) \
            + (("fillets-dev",) if args.merge_fillets_dev else ())
        parts += [p for p in [args.out / f"manifest_{s}.csv" for s in extra] if p.exists()]
        rows = [row for p in parts for row in read_manifest(p)]
        write_manifest(rows, args.out / "manifest.csv")
        log.info("wrote %d rows to %s", len(rows), args.out / "manifest.csv")


if __name__ == "__main__":
    run_recipe(main)
