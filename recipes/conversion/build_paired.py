"""Paired data for the conversion decoder: rule-based text to speech, time-aligned to real speech.

Text to speech (``voicefake clone``) feeds the decoder espeak-ng's or flite's speech, whose
spectral envelope moves unlike any human's; the decoder only ever learnt to reconstruct real
speech from its own cepstrum. For every transcribed real training utterance this script
speaks the transcript with espeak-ng (the utterance's language) and, for English, with flite,
aligns each rendering to the real recording by dynamic time warping on the content encoder's
features (speaker-robust, distilled from Whisper), and warps the rendering's log-mel onto the
recording's frames. The decoder can then learn text-to-speech envelope -> a real voice saying
the same sounds (``train_decoder.py data.paired=...``).

Sources of real, transcribed speech (never the benchmarks' held-out speakers):
* DATA/train.csv (prepare_teacher.py): its real rows with a transcript (English);
* ``--extra DIR`` (recipes/detection/prepare_asterisk.py): studio prompts in English, Spanish,
  French, Italian and Russian not already in the shared data;
* DATA/dev.csv's transcribed rows become the dev pairs (unseen speakers: ``eval/paired_mel_l1``).

Short prompts of one speaker and language are joined (mels, pitch and alignments alike) until
each item is at least ``--min-seconds`` long, so that training crops fit. Items whose alignment
cost is in the worst ``--drop`` share (a transcript that does not match, a failed alignment)
are left out.

Usage:
    python recipes/conversion/build_paired.py --data runs/data/conversion [--extra runs/data/asterisk]
Writes DATA/paired.pt: ``train``: ``mels`` (per item (V, M, F) float16: version 0 the real mel,
then each warped rendering), ``log_f0``, ``speaker`` (index into ``embeddings``), ``bins``,
``engines``; ``dev``: the same per dev item; and ``meta``.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from build_decoder_cache import bins_of, speaker_table  # type: ignore[import-not-found]
from prepare_phones import VOICES as ESPEAK_VOICE  # type: ignore[import-not-found]
from prepare_phones import language as language_of  # type: ignore[import-not-found]

from voicefake import api
from voicefake.audio.features import MEL_16K_80, MelSpectrogram
from voicefake.audio.io import load_audio
from voicefake.audio.ops import resample
from voicefake.config import run_recipe
from voicefake.conversion.voice import estimate_log_f0
from voicefake.data.manifests import ManifestRow, data_root, read_manifest
from voicefake.synthesis import espeak, flite

SAMPLE_RATE = 16000
FLITE_VOICES = ("rms", "slt", "awb", "kal16")
log = logging.getLogger("build_paired")


@dataclass
class Pair:
    """One real utterance with its warped renderings (mels (V, M, F), version 0 the real one)."""

    row: ManifestRow
    language: str
    mels: torch.Tensor
    log_f0: torch.Tensor
    cost: float
    engines: list[str]


def band_limited(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """The rendering as heard through the real recording's bandwidth (for the alignment only)."""
    if sample_rate >= SAMPLE_RATE:
        return wav
    return resample(resample(wav, SAMPLE_RATE, sample_rate), sample_rate, SAMPLE_RATE)[: len(wav)]


def align(real: torch.Tensor, rendered: torch.Tensor) -> tuple[np.ndarray, float]:
    """(F, D) and (G, D) unit-norm content frames -> (F,) rendered frame for each real frame,
    and the mean cosine distance along the path."""
    cost = (1 - real @ rendered.T).double().numpy()
    total, path = librosa.sequence.dtw(C=cost, backtrack=True)
    index = np.zeros(len(real))
    np.add.at(index, path[:, 0], path[:, 1])  # a real frame matched to several rendered ones takes their mean
    counts = np.bincount(path[:, 0], minlength=len(real))
    return (index / np.maximum(counts, 1)).round().astype(np.int64), float(total[-1, -1] / len(path))


def make_pair(row: ManifestRow, wav: np.ndarray, language: str, rng: random.Random, mel: MelSpectrogram,
              content: torch.nn.Module, rates: tuple[int, int]) -> Pair | None:
    real = mel(torch.from_numpy(wav))
    sample_rate = min(row.sample_rate or SAMPLE_RATE, SAMPLE_RATE)
    with torch.inference_mode():
        keys = content(real[None])[0]
        renders, engines, costs = [], [], []
        engines_to_try = [("espeak", lambda text, rate: espeak.speak(text, ESPEAK_VOICE[language], rate))]
        if language == "en" and flite.available():
            voice = "rms" if rng.random() < 0.5 else rng.choice(FLITE_VOICES)
            engines_to_try.append((f"flite-{voice}", lambda text, rate, v=voice: flite.speak(text, v, rate)))
        for name, speak in engines_to_try:
            try:
                spoken, rate = speak(row.transcript, rng.randint(*rates))
            except (espeak.EspeakError, flite.FliteError) as err:
                log.warning("%s: %s", row.path, err)
                continue
            spoken = resample(spoken, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else spoken
            if len(spoken) < 2 * MEL_16K_80.hop_length:
                continue
            rendered = mel(torch.from_numpy(spoken.astype(np.float32)))
            index, cost = align(keys, content(mel(torch.from_numpy(band_limited(spoken, sample_rate)))[None])[0])
            renders.append(rendered[:, index.clip(0, rendered.shape[-1] - 1)])
            engines.append(name)
            costs.append(cost)
    if not renders:
        return None
    f0 = estimate_log_f0(torch.from_numpy(wav), MEL_16K_80)[: real.shape[-1]]
    return Pair(row, language, torch.stack([real, *renders]).half(), f0.half(), float(np.mean(costs)), engines)


def join(pairs: list[Pair], min_frames: int) -> list[list[Pair]]:
    """Consecutive pairs of one speaker, language and set of engines, grouped to >= min_frames."""
    groups: dict[tuple, list[Pair]] = defaultdict(list)
    for pair in pairs:
        groups[(pair.row.speaker, pair.language, tuple(e.split("-")[0] for e in pair.engines))].append(pair)
    out = []
    for members in groups.values():
        current: list[Pair] = []
        for pair in members:
            current.append(pair)
            if sum(p.mels.shape[-1] for p in current) >= min_frames:
                out.append(current)
                current = []
    return out


def pack(groups: list[list[Pair]], speakers: dict[str, int], table: torch.Tensor) -> dict:
    rows = [g[0].row for g in groups]
    return {
        "mels": [torch.cat([p.mels for p in g], dim=-1) for g in groups],
        "log_f0": [torch.cat([p.log_f0 for p in g]) for g in groups],
        "speaker": torch.tensor([speakers[r.speaker or r.path] for r in rows]),
        "embeddings": table,
        "bins": bins_of(rows),
        "engines": [g[0].engines for g in groups],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--extra", type=Path, help="more transcribed real speech: a prepare_asterisk.py output folder")
    parser.add_argument("--extra-per-speaker", type=int, default=200, help="at most this many prompts per extra voice")
    parser.add_argument("--speaker", default="speaker", help="speaker encoder (as for build_decoder_cache.py)")
    parser.add_argument("--content", default="content", help="content encoder used for the alignment")
    parser.add_argument("--rates", type=int, nargs=2, default=(110, 170), help="speaking-rate range (words a minute)")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--drop", type=float, default=0.1, help="share of training items with the worst alignment left out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N utterances of each split (a quick check)")
    parser.add_argument("--out", type=Path, help="default DATA/paired.pt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = data_root()
    assert root is not None
    rng = random.Random(args.seed)
    mel = MelSpectrogram(MEL_16K_80)
    content = api.load(args.content, kind="content").module.eval()
    sources: dict[str, list[tuple[ManifestRow, Path]]] = {"train": [], "dev": []}
    for split in ("train", "dev"):
        sources[split] = [(r, root / r.path) for r in read_manifest(args.data / f"{split}.csv")
                          if r.label == "real" and r.transcript.strip() and language_of(r) in ESPEAK_VOICE]
    if args.extra:
        per_voice: dict[str, int] = defaultdict(int)
        for r in read_manifest(args.extra / "manifest.csv"):
            if r.label == "real" and "in_shared=0" in r.notes and r.transcript.strip() and language_of(r) in ESPEAK_VOICE:
                per_voice[r.speaker] += 1
                if per_voice[r.speaker] <= args.extra_per_speaker:
                    sources["train"].append((r, args.extra / r.path))
    out: dict = {"meta": {"rates": list(args.rates), "min_seconds": args.min_seconds, "drop": args.drop,
                          "content": args.content, "speaker": args.speaker}}
    for split, items in sources.items():
        items = items[: args.limit] if args.limit else items
        pairs, wavs = [], []
        for number, (row, path) in enumerate(items):
            wav = load_audio(path, SAMPLE_RATE)
            pair = make_pair(row, wav, language_of(row), rng, mel, content, tuple(args.rates))
            if pair is not None:
                pairs.append(pair)
                wavs.append(wav)
            if number % 200 == 0:
                log.info("%s: %d / %d", split, number, len(items))
        if split == "train" and pairs:
            limit = float(np.quantile([p.cost for p in pairs], 1 - args.drop))
            keep = [i for i, p in enumerate(pairs) if p.cost <= limit]
            pairs, wavs = [pairs[i] for i in keep], [wavs[i] for i in keep]
        indices, table = speaker_table([p.row for p in pairs], wavs, args.speaker)
        speakers = {(p.row.speaker or p.row.path): i for p, i in zip(pairs, indices, strict=True)}
        groups = join(pairs, int(args.min_seconds * SAMPLE_RATE / MEL_16K_80.hop_length))
        out[split] = pack(groups, speakers, table)
        out["meta"][f"{split}_utterances"] = len(pairs)
        out["meta"][f"{split}_minutes"] = round(sum(p.mels.shape[-1] for p in pairs) / 6000, 1)
        out["meta"][f"{split}_languages"] = sorted({p.language for p in pairs})
        log.info("%s: %d utterances -> %d items, %.1f min, mean alignment cost %.3f", split, len(pairs), len(groups),
                 out["meta"][f"{split}_minutes"], float(np.mean([p.cost for p in pairs])) if pairs else float("nan"))
    path = args.out or args.data / "paired.pt"
    torch.save(out, path)
    print(f"train: {len(out['train']['mels'])} items, dev: {len(out['dev']['mels'])} items -> {path}")


if __name__ == "__main__":
    run_recipe(main)
