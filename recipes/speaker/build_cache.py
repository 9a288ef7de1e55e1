"""Precomputes the distillation cache: teacher embeddings of clean crops + augmented student mels.

For every training speaker, the speech regions of all their files are joined into one stream
and cut into ``crop_seconds`` crops every ``hop_seconds``. For each crop the cache holds:

* the Resemblyzer GE2E embedding (the teacher, pretrained weights shipped in its wheel) of the
  CLEAN crop, (256,);
* our log-mels (MEL_16K_40) of ``1 + augmentations`` versions of the crop: version 0 clean,
  then ``voicefake.channel.phone_call`` calls, then one speed-perturbed (0.95-1.05x) copy with
  noise or reverberation. The student learns to map every version to the clean teacher.

The dev speakers (LibriSpeech test-other) get fixed 3 s crops, clean and through a phone call,
for the EER measured during training. Resemblyzer is needed only here, never at run time.

**Voice warps** (``--voice-warps -2,2``): the shared data has only ~130 training speakers, so
each speaker also lends its crops to pseudo-speakers: the crops pitch-shifted by a fixed number
of semitones (every frequency moves, pitch and formants: a different-sounding voice), each warp
its own AAM class, labelled by the teacher on the warped clean crop. The student thus learns the
teacher's map on voices that are not in the data. ``--extend CACHE`` adds them to an existing
cache instead of rebuilding it.

**WORLD voices** (``--world-voices 2``): more pseudo-speakers, each a training speaker's crops
re-synthesised by WORLD (``pyworld``) with its F0 scaled by ``f0_ratio`` and its spectral
envelope stretched along frequency by ``formant_ratio`` (vocal-tract length), the two drawn
independently per speaker and set (``--world-f0``, ``--world-formant`` ranges, log-uniform):
a pitch shift moves both together, so these are voices a pitch shift cannot make. Like the
pitch warps, each set is its own AAM class per speaker and the teacher labels its clean crops.

Usage:
    python recipes/speaker/build_cache.py --train runs/data/speaker/train.csv \
        --dev runs/data/speaker/dev.csv --out runs/data/speaker/cache.pt [--workers 2]
    python recipes/speaker/build_cache.py --train runs/data/speaker/train.csv \
        --dev runs/data/speaker/dev.csv --extend runs/data/speaker/cache.pt \
        --voice-warps=-2,2 --warp-max-crops 60 --out runs/data/speaker/cache_warp.pt
    python recipes/speaker/build_cache.py --train runs/data/speaker/train.csv \
        --dev runs/data/speaker/dev.csv --extend runs/data/speaker/cache_warp.pt \
        --world-voices 2 --warp-max-crops 40 --out runs/data/speaker/cache_world.pt
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from voicefake.audio.features import MEL_16K_40, MelSpectrogram, num_frames
from voicefake.audio.io import AudioError, load_audio, speech_regions
from voicefake.channel import add_noise, phone_call, pitch_shift, reverb, speed
from voicefake.config import run_recipe
from voicefake.data.manifests import ManifestRow, data_root, read_manifest

SAMPLE_RATE = 16000
log = logging.getLogger("build_cache")


def speech_stream(rows: list[ManifestRow], root: Path) -> np.ndarray:
    """The speech regions (0.1 s padded) of every file of one speaker, joined."""
    parts = []
    for row in rows:
        try:
            wav = load_audio(root / row.path, SAMPLE_RATE)
        except AudioError as err:
            log.warning("skipping %s: %s", row.path, err)
            continue
        for start, end in speech_regions(wav, SAMPLE_RATE):
            parts.append(wav[max(0, int((start - 0.1) * SAMPLE_RATE)) : int((end + 0.1) * SAMPLE_RATE)])
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def crops_of(stream: np.ndarray, crop: int, hop: int) -> list[np.ndarray]:
    """Crops of ``crop`` samples every ``hop``; a stream shorter than one crop is tiled."""
    if 0 < len(stream) < crop:
        stream = np.tile(stream, crop // len(stream) + 1)
    return [stream[s : s + crop] for s in range(0, len(stream) - crop + 1, hop)]


def augment(wav: np.ndarray, version: int, phone_versions: int, seed: int) -> np.ndarray:
    """Version 0 clean; 1..phone_versions a phone call; then speed + noise or reverb."""
    if version == 0:
        return wav
    if version <= phone_versions:
        return phone_call(wav, SAMPLE_RATE, seed=seed)[0]
    rng = np.random.default_rng(seed)
    out = speed(wav, SAMPLE_RATE, float(rng.uniform(0.95, 1.05)))
    if rng.random() < 0.5:
        return add_noise(out, SAMPLE_RATE, float(rng.uniform(5, 25)), str(rng.choice(["white", "pink", "babble"])), seed=seed)
    return reverb(out, SAMPLE_RATE, float(rng.uniform(0.2, 0.8)), seed=seed)


def world_voice(wav: np.ndarray, f0_ratio: float, formant_ratio: float) -> np.ndarray:
    """WORLD re-synthesis of ``wav`` (16 kHz) with F0 x ``f0_ratio`` and the spectral envelope
    (and aperiodicity) stretched along frequency by ``formant_ratio`` (> 1 moves formants up, a
    shorter vocal tract); same length and RMS as the input."""
    import pyworld

    x = wav.astype(np.float64)
    f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    bins = sp.shape[1]
    # new envelope at bin k = old envelope at bin k / formant_ratio (linear interpolation)
    source = np.clip(np.arange(bins) / formant_ratio, 0, bins - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    frac = source - low
    sp = sp[:, low] * (1 - frac) + sp[:, high] * frac
    ap = np.clip(ap[:, low] * (1 - frac) + ap[:, high] * frac, 0.0, 1.0)
    out = pyworld.synthesize(f0 * f0_ratio, np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                             SAMPLE_RATE, frame_period=5.0)
    out = np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)]
    gain = np.sqrt(np.mean(x**2) / max(np.mean(out**2), 1e-12))
    return (out * gain).astype(np.float32)


def world_ratios(speaker: int, voice_set: int, f0_range: tuple[float, float],
                 formant_range: tuple[float, float]) -> tuple[float, float]:
    """(f0_ratio, formant_ratio) of one WORLD pseudo-speaker, log-uniform in the ranges, drawn
    again while both are within 5 % of 1 (too close to the real voice)."""
    rng = np.random.default_rng([speaker, voice_set, 7])
    while True:
        f0 = float(np.exp(rng.uniform(*np.log(f0_range))))
        formant = float(np.exp(rng.uniform(*np.log(formant_range))))
        if abs(np.log(f0)) > 0.05 or abs(np.log(formant)) > 0.05:
            return f0, formant


def _fit_frames(mel: torch.Tensor, frames: int) -> torch.Tensor:
    """Crops or edge-pads (M, F) to (M, frames) (speed perturbation changes F)."""
    if mel.shape[-1] >= frames:
        return mel[:, :frames]
    return torch.nn.functional.pad(mel[None], (0, frames - mel.shape[-1]), mode="replicate")[0]


Warp = tuple[float, float, float]
"""(semitones, f0_ratio, formant_ratio) of a pseudo-speaker; (0, 1, 1) is the real voice."""


def speaker_job(args: tuple[int, list[ManifestRow], Path, float, float, int, int, int, Warp]) -> dict:
    """Teacher embeddings and augmented mels for one speaker's crops (at most ``max_crops``,
    evenly spread, so the few long-recorded speakers do not dominate), pitch-shifted by
    ``semitones`` or re-synthesised by WORLD with other F0 / formants first when ``warp`` is
    not (0, 1, 1) (a pseudo-speaker, see the module doc)."""
    index, rows, root, crop_s, hop_s, phone_versions, seed, max_crops, warp = args
    semitones, f0_ratio, formant_ratio = warp
    torch.set_num_threads(1)
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    teacher = VoiceEncoder("cpu", verbose=False)
    features = MelSpectrogram(MEL_16K_40)
    crop, frames = int(crop_s * SAMPLE_RATE), num_frames(int(crop_s * SAMPLE_RATE), MEL_16K_40)
    crops = crops_of(speech_stream(rows, root), crop, int(hop_s * SAMPLE_RATE))
    if len(crops) > max_crops:
        crops = [crops[i] for i in np.linspace(0, len(crops) - 1, max_crops).round().astype(int)]
    if semitones:
        crops = [pitch_shift(wav, SAMPLE_RATE, semitones) for wav in crops]
    if (f0_ratio, formant_ratio) != (1.0, 1.0):
        crops = [world_voice(wav, f0_ratio, formant_ratio) for wav in crops]
    versions = 2 + phone_versions
    mels = torch.zeros(len(crops), versions, MEL_16K_40.n_mels, frames, dtype=torch.float16)
    teacher_mels = []
    for i, wav in enumerate(crops):
        teacher_mels.append(wav_to_mel_spectrogram(normalize_volume(wav, -30, increase_only=True))[:160])
        for v in range(versions):
            out = augment(wav, v, phone_versions, seed * 7919 + index * 100_003 + i * 17 + v)
            mels[i, v] = _fit_frames(features(torch.from_numpy(out)), frames).half()
    with torch.no_grad():
        emb = teacher(torch.from_numpy(np.stack(teacher_mels))) if crops else torch.zeros(0, 256)
    return {"mels": mels, "teacher": emb.float(), "speaker": torch.full((len(crops),), index)}


def dev_crops(rows: list[ManifestRow], root: Path, seconds: float) -> dict:
    """Fixed crops of each dev file (speech only), clean and through a seeded phone call."""
    features = MelSpectrogram(MEL_16K_40)
    speakers = sorted({r.speaker for r in rows})
    length = int(seconds * SAMPLE_RATE)
    clean, phone, labels = [], [], []
    for i, row in enumerate(rows):
        wav = speech_stream([row], root)
        wav = np.pad(wav, (0, max(0, length - len(wav))))[:length]
        clean.append(features(torch.from_numpy(wav)))
        phone.append(features(torch.from_numpy(phone_call(wav, SAMPLE_RATE, seed=10_000 + i)[0])))
        labels.append(speakers.index(row.speaker))
    return {"clean": torch.stack(clean).half(), "phone": torch.stack(phone).half(),
            "speaker": torch.tensor(labels)}


def _range(text: str, flag: str) -> tuple[float, float]:
    """"low,high" with 0 < low < high."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"{flag} {text!r}: expected two numbers, low,high (e.g. 0.7,1.45)") from None
    if not 0 < low < high:
        raise SystemExit(f"{flag} {text!r}: need 0 < low < high")
    return low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--crop-seconds", type=float, default=1.6)
    parser.add_argument("--hop-seconds", type=float, default=0.8)
    parser.add_argument("--phone-versions", type=int, default=2)
    parser.add_argument("--dev-seconds", type=float, default=3.0)
    parser.add_argument("--max-crops-per-speaker", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voice-warps", default="", help="comma-separated semitone shifts, one pseudo-speaker "
                        "set each (e.g. -2,2); empty: none")
    parser.add_argument("--warp-max-crops", type=int, default=60, help="crops per pseudo-speaker")
    parser.add_argument("--world-voices", type=int, default=0, help="WORLD pseudo-speaker sets (F0 and "
                        "formants changed independently, drawn per speaker and set); 0: none")
    parser.add_argument("--world-f0", default="0.7,1.45", help="F0 ratio range of the WORLD voices")
    parser.add_argument("--world-formant", default="0.88,1.14", help="formant ratio range of the WORLD voices")
    parser.add_argument("--extend", type=Path, help="add the voice warps to this existing cache (same --train)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = data_root()
    assert root is not None
    by_speaker: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in read_manifest(args.train):
        by_speaker[row.speaker].append(row)
    names = sorted(by_speaker)
    warps = [float(x) for x in args.voice_warps.split(",")] if args.voice_warps else []
    f0_range, formant_range = (_range(text, flag) for text, flag in
                               ((args.world_f0, "--world-f0"), (args.world_formant, "--world-formant")))
    base = torch.load(args.extend, weights_only=True) if args.extend is not None else None
    if base is not None and base["speakers"][: len(names)] != names:
        raise SystemExit(f"{args.extend} was built from other speakers than {args.train}")
    # an extended cache keeps its pseudo-speakers; new ones get the next class indices
    first_set = 1 if base is None else len(base["speakers"]) // len(names)
    jobs = []
    if args.extend is None:
        jobs += [(i, by_speaker[n], root, args.crop_seconds, args.hop_seconds, args.phone_versions, args.seed,
                  args.max_crops_per_speaker, (0.0, 1.0, 1.0)) for i, n in enumerate(names)]
    sets: list[tuple[str, list[Warp]]] = [(f"{st:+g}st", [(st, 1.0, 1.0)] * len(names)) for st in warps]
    for w in range(args.world_voices):
        ratios = [world_ratios(i, first_set + len(warps) + w, f0_range, formant_range) for i in range(len(names))]
        sets.append((f"world{first_set + len(warps) + w}", [(0.0, f0, fm) for f0, fm in ratios]))
    for k, (_, set_warps) in enumerate(sets, start=first_set):
        jobs += [(i + k * len(names), by_speaker[n], root, args.crop_seconds, args.hop_seconds,
                  args.phone_versions, args.seed + k, args.warp_max_crops, set_warps[i]) for i, n in enumerate(names)]
    # longest speakers first, so no worker is left with one long job at the end
    jobs.sort(key=lambda job: -min(sum(r.duration_s for r in job[1]), job[7] * args.hop_seconds))
    parts = []
    with ProcessPoolExecutor(args.workers) as pool:
        for done, part in enumerate(pool.map(speaker_job, jobs)):
            parts.append(part)
            log.info("speaker %d/%d: %d crops", done + 1, len(jobs), len(part["speaker"]))
    if base is not None:
        parts.insert(0, {key: base[key] for key in ("mels", "teacher", "speaker")})
    parts = [p for p in parts if len(p["speaker"])]
    parts.sort(key=lambda part: int(part["speaker"][0]))
    cache = {key: torch.cat([p[key] for p in parts]) for key in ("mels", "teacher", "speaker")}
    cache["speakers"] = (names if base is None else base["speakers"]) + [f"{n}@{tag}" for tag, _ in sets for n in names]
    cache["dev"] = base["dev"] if base is not None else dev_crops(read_manifest(args.dev), root, args.dev_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, args.out)
    print(f"{len(cache['speaker'])} crops of {len(cache['speakers'])} speakers (pseudo-speakers included) -> {args.out}")


if __name__ == "__main__":
    run_recipe(main)
