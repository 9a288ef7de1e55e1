"""``voicefake watermark embed`` and ``voicefake watermark detect``."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicefake import api
from voicefake.cli import common

MODEL = "watermark-dsp@1"  # pure DSP: no checkpoint, this names the algorithm version


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``watermark embed`` and ``watermark detect``."""
    p = sub.add_parser("watermark", help="embed or detect the voicefake audio watermark",
                       description="The keyed watermark every generated clip carries (robust to "
                       "phone codecs, noise, cropping, speed and pitch changes).")
    inner = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    e = inner.add_parser("embed", help="watermark audio files",
                         description="Writes <input>.marked.wav beside each input unless -o is given.")
    e.add_argument("inputs", nargs="+", help="audio files or folders")
    e.add_argument("-o", "--output", help="output file (one input) or folder")
    e.add_argument("--key", help="private key (default: the public voicefake key)")
    common.add_common(e, checkpoint=False)
    e.set_defaults(run=run_embed)
    d = inner.add_parser("detect", help="look for the watermark in audio files",
                         description="One line (or JSON object) per file: watermarked, p, "
                         "payload and the marked segments in seconds.")
    d.add_argument("inputs", nargs="+", help="audio or video files, or folders")
    d.add_argument("--key", help="private key (default: the public voicefake key)")
    common.add_common(d, checkpoint=False)
    d.set_defaults(run=run_detect)


def run_embed(args: argparse.Namespace) -> int:
    multiple = len(args.inputs) > 1 or Path(args.inputs[0]).is_dir()

    def handle(label: str, path: Path) -> tuple[dict, str]:
        from voicefake.audio.io import read_audio, write_audio
        from voicefake.watermark import Payload

        target = common.output_path(args.output, path, ".marked.wav", multiple)
        common.check_writable(target, args.force)
        wav, rate = read_audio(path)
        wav = wav.mean(axis=1) if wav.ndim == 2 else wav
        payload = Payload.today("user")
        marked, _ = api.watermark_embed(wav, payload, int(rate), args.key, name=label)
        write_audio(target, marked, int(rate), force=args.force,
                    metadata={"comment": f"watermark: voicefake/{payload.hex()}"})
        record = {"output": str(target), "payload": payload.hex(), "model": MODEL}
        return record, f"{label} -> {target} (payload {payload.hex()})"

    return common.per_file(args, args.inputs, handle)


def run_detect(args: argparse.Namespace) -> int:
    def handle(label: str, path: Path) -> tuple[dict, str]:
        report = api.watermark_detect(path, 16000, args.key, name=label)
        info = report.to_dict()
        record = {"watermarked": info["watermarked"], "p": info["p"], "payload": info["payload"],
                  "segments": info["segments"], "statistic": info["statistic"],
                  "bits": info["bits"], "bit_confidence": info["bit_confidence"], "model": MODEL}
        payload = info["payload"]["hex"] if info["payload"] else "-"
        verdict = "WATERMARKED" if report.watermarked else "no watermark"
        return record, f"{label}: {verdict} (p={report.p:.3f}, payload {payload})"

    return common.per_file(args, args.inputs, handle)
