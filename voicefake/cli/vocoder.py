"""``voicefake vocode`` (copy-synthesis) and ``voicefake export`` (release checkpoints)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from voicefake import api
from voicefake.cli import common
from voicefake.nn.precision import compute_dtype, dtype_name


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the vocode and export subcommands."""
    p = sub.add_parser("vocode", help="copy-synthesis: audio -> mel -> GAN vocoder -> audio",
                       description="Re-synthesise recordings through the mel-spectrogram GAN vocoder. "
                       "Writes <input>.vocoded.wav beside each input unless -o is given.")
    p.add_argument("inputs", nargs="+", help="audio or video files, or folders")
    p.add_argument("-o", "--output", help="output file (one input) or folder")
    p.add_argument("--no-watermark", action="store_true",
                   help="do not watermark the output (logged, and stated in its metadata)")
    p.add_argument("--phase-iterations", type=int, metavar="N",
                   help="phase refinement after the network: match the mel, then N fast Griffin-Lim "
                   "iterations (default: the checkpoint's, 12 for the bundled model; 1: about 2.5x faster, "
                   "PESQ-WB 3.19 instead of 3.75; 0: off)")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="the network's arithmetic (default auto: bfloat16 on a CPU that has it natively, "
                   "about 2x faster with the same measured quality; float32 elsewhere)")
    common.add_common(p)
    p.set_defaults(run=run_vocode)

    e = sub.add_parser("export", help="copy a release checkpoint out of a training run",
                       description="Copies one model of a training run (no optimizer state) to OUT.")
    e.add_argument("run_dir", help="runs/<name>")
    e.add_argument("out", help="output checkpoint directory")
    e.add_argument("--step", type=int, help="step to export (default: best/, else the latest)")
    e.add_argument("--module", help="module name inside the step folder (e.g. generator)")
    e.add_argument("--full-precision", action="store_true", help="keep float32 weights")
    common.add_common(e, checkpoint=False)
    e.set_defaults(run=run_export)


def run_vocode(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint or "vocoder"
    if args.phase_iterations is not None and args.phase_iterations < 0:
        raise common.UsageError(f"--phase-iterations must be >= 0, got {args.phase_iterations}")
    loaded = api.load(checkpoint, args.device, kind="vocoder")
    model = loaded.name
    iterations = loaded.module.phase_iterations(args.phase_iterations)
    precision = dtype_name(compute_dtype(args.precision, args.device))
    multiple = len(args.inputs) > 1 or Path(args.inputs[0]).is_dir()

    def handle(label: str, path: Path) -> tuple[dict, str]:
        target = common.output_path(args.output, path, ".vocoded.wav", multiple)
        common.check_writable(target, args.force)
        start = time.perf_counter()
        wav, sample_rate = api.resynthesize(path, checkpoint, args.device, name=label,
                                            phase_iterations=args.phase_iterations, precision=precision)
        seconds = time.perf_counter() - start
        api.save_generated(target, wav, sample_rate, model, force=args.force,
                           watermark=not args.no_watermark)
        duration = len(wav) / sample_rate
        record = {"output": str(target), "duration": round(duration, 3), "seconds": round(seconds, 3),
                  "x_real_time": round(duration / max(seconds, 1e-9), 1), "model": model,
                  "phase_iterations": iterations, "precision": precision,
                  "watermark": not args.no_watermark}
        return record, f"{label} -> {target} ({duration:.2f} s audio in {seconds:.2f} s)"

    return common.per_file(args, args.inputs, handle)


def run_export(args: argparse.Namespace) -> int:
    from voicefake.train.state import export

    out = Path(args.out)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out}: already exists; pass --force to replace it")
    # --force replaces the weights and config but keeps what lives beside them (MODEL_CARD.md)
    path = export(args.run_dir, out, step=args.step, module=args.module, half=not args.full_precision,
                  replace=args.force)
    common.emit(args, {"file": args.run_dir, "output": str(path)}, f"exported {path}")
    return 0
