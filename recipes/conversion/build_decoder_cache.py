"""Adds what the conversion decoder needs to the content cache: log-F0 and speaker embeddings.

Reads DATA/cache.pt (build_cache.py) and the manifests beside it; writes DATA/decoder_cache.pt
with, per training utterance, its log-F0 (voicefake.conversion.voice.estimate_log_f0) and
speaker index, the mean speaker-16k embedding of every speaker, and dev crops (2 s of each
dev utterance: mel, log-F0 and its speaker's mean embedding).

With ``--extra DIR`` (the output of ``recipes/detection/prepare_asterisk.py``) the real
prompts there (those not already in the shared data, at least 2 s long) join the training
utterances: their clean and phone-line mels are stored here too (``extra_mels``). Every training
utterance gets ``bins``, the number of mel bands below its recording's Nyquist frequency, so the
decoder's loss ignores the empty upper bands of 8 kHz recordings.

With ``--speed F...`` every training utterance is also played F times as fast (tempo, pitch and
formants move together; ``voicefake.channel.effects.speed``) and each factor makes each training
speaker a new, virtual one ("<speaker>-speed<F>", with the mean embedding of its perturbed
utterances). The copies join ``extra_mels``, so ``data.extra_share`` sets how often they are
drawn. A decoder that has only heard 139 real voices learns the embedding-to-voice map from
more points (speaker augmentation); the dev crops stay real, unseen speakers.

Usage:
    python recipes/conversion/build_decoder_cache.py --data runs/data/conversion [--extra runs/data/asterisk] \
        [--speed 0.86 0.93 1.07 1.16 --out runs/data/conversion/decoder_cache_speed.pt]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from voicefake import api
from voicefake.audio.features import MEL_16K_80, MelSpectrogram, band_bins
from voicefake.audio.io import load_audio
from voicefake.channel import effects, phone_call
from voicefake.config import run_recipe
from voicefake.conversion.voice import estimate_log_f0
from voicefake.data.manifests import data_root, read_manifest

SAMPLE_RATE = 16000
DEV_FRAMES = 200
EXTRA_MIN_SECONDS = 2.05
SPEED_MIN_SECONDS = 1.0


def bins_of(rows: list) -> torch.Tensor:
    """Mel bands with signal per row: all of them unless recorded below 16 kHz."""
    return torch.tensor([band_bins(MEL_16K_80, min(r.sample_rate or SAMPLE_RATE, SAMPLE_RATE) / 2) for r in rows])


def extra_rows(folder: Path) -> list:
    return [r for r in read_manifest(folder / "manifest.csv")
            if r.label == "real" and "in_shared=0" in r.notes and r.duration_s >= EXTRA_MIN_SECONDS]


def speed_copies(rows: list, wavs: list[np.ndarray], factors: list[float]) -> tuple[list, list[np.ndarray]]:
    """Every (row, wav) played at each speed factor: rows renamed to the virtual speaker
    "<speaker>-speed<factor>", their sample rate scaled with the band they now fill (for ``bins``).
    Copies shorter than ``SPEED_MIN_SECONDS`` are left out."""
    out_rows, out_wavs = [], []
    for factor in factors:
        for row, wav in zip(rows, wavs, strict=True):
            if len(wav) / factor < SPEED_MIN_SECONDS * SAMPLE_RATE:
                continue
            rate = min(row.sample_rate or SAMPLE_RATE, SAMPLE_RATE)
            out_rows.append(replace(row, path=f"{row.path}@speed{factor:g}", speaker=f"{row.speaker or row.path}-speed{factor:g}",
                                    sample_rate=min(round(rate * factor), SAMPLE_RATE)))
            out_wavs.append(effects.speed(wav, SAMPLE_RATE, factor))
    return out_rows, out_wavs


def speaker_table(rows: list, wavs: list[np.ndarray], speaker: str = "speaker") -> tuple[list[int], torch.Tensor]:
    """(speaker index per row, (S, D) mean embedding per speaker) by the ``speaker`` encoder."""
    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    for row, wav in zip(rows, wavs, strict=True):
        groups[row.speaker or row.path].append(api.embed(wav, checkpoint=speaker, centre=False))
    names = sorted(groups)
    table = np.stack([np.mean(groups[n], axis=0) for n in names])
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    index = {n: i for i, n in enumerate(names)}
    return [index[r.speaker or r.path] for r in rows], torch.from_numpy(table.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--speaker", default="speaker", help="speaker encoder for the embeddings (bundled name "
                        "or checkpoint folder; the decoder must be used with this same encoder)")
    parser.add_argument("--out", type=Path, help="output file (default DATA/decoder_cache.pt)")
    parser.add_argument("--extra", type=Path, help="more real speech: a prepare_asterisk.py output folder")
    parser.add_argument("--speed", type=float, nargs="+", default=[], metavar="F",
                        help="also add every training utterance played F times as fast, as a new speaker (0.5-2)")
    args = parser.parse_args()
    if any(not 0.5 <= f <= 2.0 or f == 1.0 for f in args.speed):
        parser.error(f"--speed factors must be in 0.5-2.0 and not 1, got {args.speed}")
    out_path = args.out or args.data / "decoder_cache.pt"
    root = data_root()
    assert root is not None
    out: dict[str, dict] = {}
    mel = MelSpectrogram(MEL_16K_80)
    for split in ("train", "dev"):
        rows = read_manifest(args.data / f"{split}.csv")
        wavs = [load_audio(root / r.path, SAMPLE_RATE) for r in rows]
        extra = extra_rows(args.extra) if split == "train" and args.extra else []
        extra_wavs = [load_audio(args.extra / r.path, SAMPLE_RATE) for r in extra] if extra else []
        if split == "train" and args.speed:
            fast_rows, fast_wavs = speed_copies(rows, wavs, args.speed)
            extra, extra_wavs = extra + fast_rows, extra_wavs + fast_wavs
        speakers, table = speaker_table(rows + extra, wavs + extra_wavs, args.speaker)
        f0 = [estimate_log_f0(torch.from_numpy(w), MEL_16K_80).half() for w in wavs + extra_wavs]
        if split == "train":
            out[split] = {"log_f0": f0, "speaker": torch.tensor(speakers), "embeddings": table, "bins": bins_of(rows + extra)}
            if extra:
                out[split]["extra_mels"] = [
                    torch.stack([mel(torch.from_numpy(w)), mel(torch.from_numpy(phone_call(w, SAMPLE_RATE, seed=i)[0]))]).half()
                    for i, w in enumerate(extra_wavs)]
            continue
        keep = [i for i, w in enumerate(wavs) if len(f0[i]) >= DEV_FRAMES]
        out[split] = {
            "mel": torch.stack([mel(torch.from_numpy(wavs[i]))[:, :DEV_FRAMES] for i in keep]),
            "log_f0": torch.stack([f0[i][:DEV_FRAMES].float() for i in keep]),
            "speaker": table[[speakers[i] for i in keep]],
        }
    torch.save(out, out_path)
    print(f"train: {len(out['train']['log_f0'])} utterances ({len(out['train'].get('extra_mels', []))} extra), "
          f"{len(out['train']['embeddings'])} speakers; "
          f"dev: {len(out['dev']['mel'])} crops -> {out_path}")


if __name__ == "__main__":
    run_recipe(main)
