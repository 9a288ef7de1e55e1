"""``voicefake embed`` (speaker embeddings) and ``voicefake verify`` (is it the same speaker?)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from voicefake import api
from voicefake.audio.legs import CHANNEL_MODES
from voicefake.cli import common


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the embed and verify subcommands."""
    p = sub.add_parser("embed", help="speaker embedding of each recording",
                       description="Prints a unit-norm speaker embedding per audio or video file "
                       "(256 numbers for the bundled model). 8 kHz phone audio is upsampled. With a "
                       "model that centres its embeddings (the bundled one), each line also holds "
                       "cloning_embedding: the raw embedding a voice clone is conditioned on, which "
                       "`voicefake clone --voice LINE.json` uses.")
    p.add_argument("inputs", nargs="+", help="audio or video files, or folders")
    common.add_common(p)
    p.set_defaults(run=run_embed)

    v = sub.add_parser("verify", help="is TEST spoken by the speaker of ENROLL?",
                       description="Compares each TEST recording with the enrolled speaker. ENROLL is a "
                       "file or a folder (all its clips are averaged). Prints the cosine, a calibrated "
                       "same-speaker probability p_same and the decision same (score >= the threshold "
                       "giving 1%% false accepts on dev trials; the score is the cosine, or its AS-norm "
                       "against the model's cohort of training speakers for the bundled model).")
    v.add_argument("enroll", help="recording (or folder of recordings) of the claimed speaker")
    v.add_argument("tests", nargs="+", metavar="TEST", help="recordings to check")
    v.add_argument("--channels", choices=CHANNEL_MODES, default="auto",
                   help="auto (default): check the two legs of a stereo call recording apart (two people), unless "
                        "they carry one signal or one is silent; split: every channel; mix: average them. Checked "
                        "apart, the line is the best-matching leg's, with 'channel' and a 'channels' list")
    v.add_argument("--timeline", action="store_true",
                   help="also check 3 s windows (every 1.5 s) and list them as 'segments': where the enrolled "
                        "voice is heard in a call that holds two; the decision stays the whole recording's")
    common.add_common(v)
    v.set_defaults(run=run_verify)


def run_embed(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint or "speaker"
    loaded = api.load(checkpoint, args.device, kind="speaker")
    model, centred = loaded.name, bool(loaded.module.config.center_embeddings)

    def handle(label: str, path: Path) -> tuple[dict, str]:
        raw = api.embed(path, checkpoint, args.device, name=label, centre=False)
        with torch.inference_mode():
            emb = loaded.module.centred(torch.from_numpy(raw)[None].to(loaded.device))[0].cpu().numpy()
        values = [round(float(x), 6) for x in emb]
        head = " ".join(f"{x:+.3f}" for x in values[:4])
        record = {"embedding": values, "model": model}
        if centred:  # the decoder of a voice clone is conditioned on the raw embedding
            record["cloning_embedding"] = [round(float(x), 6) for x in raw]
        return record, f"{label}: {len(values)}-d embedding [{head} ...]"

    return common.per_file(args, args.inputs, handle)


def run_verify(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint or "speaker"
    model = api.load(checkpoint, args.device, kind="speaker").name
    clips = [path for label, path, error in common.expand_inputs([args.enroll]) if error is None and path]
    if not clips:
        raise FileNotFoundError(f"{args.enroll}: no audio or video files to enroll")
    enrolled = api.embed_speaker(clips, checkpoint, args.device)

    def handle(label: str, path: Path) -> tuple[dict, str]:
        result = api.verify_embedding(enrolled, path, checkpoint, args.device, name=label, channels=args.channels,
                                      timeline=args.timeline)
        record = {"enroll": args.enroll, **result.to_dict(), "model": model}
        verdict = "SAME speaker" if result.same else "different speaker"
        text = f"{label}: {verdict} (cosine {result.cosine:.3f}, p_same {result.p_same:.2f})"
        if result.channels:
            legs = ", ".join(f"{c.channel} {'same' if c.same else 'different'} {c.cosine:.3f}" for c in result.channels)
            text += f"; channels checked apart, best match channel {result.channel} ({legs})"
        if args.timeline:
            hits = [f"{seg['start']:.1f}-{seg['end']:.1f} s" for seg in result.segments if seg["same"]]
            text += f"; windows matching: {', '.join(hits) if hits else 'none'}"
        return record, text

    return common.per_file(args, args.tests, handle)
