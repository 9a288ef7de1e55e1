"""What every subcommand shares: common flags, JSON lines, per-file errors, safe outputs."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from voicefake.audio.io import AudioError, iter_media_files
from voicefake.checkpoint import CheckpointError


class UsageError(Exception):
    """Bad arguments: one line on stderr, exit status 2."""


def add_common(parser: argparse.ArgumentParser, checkpoint: bool = True, json_flag: bool = True) -> None:
    """Adds --json, --checkpoint, --device, --force and --debug."""
    if json_flag:
        parser.add_argument("--json", action="store_true", help="one JSON object per input on stdout")
    if checkpoint:
        parser.add_argument("--checkpoint", help="checkpoint directory (default: the bundled model)")
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default: cpu")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def unit_interval(text: str) -> float:
    """argparse ``type=`` for a number in [0, 1] (a clear usage error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside 0-1")
    return value


def share(text: str) -> float:
    """argparse ``type=`` for a share in (0, 1]: above 0, at most 1."""
    value = unit_interval(text)
    if value == 0.0:
        raise argparse.ArgumentTypeError("0 is not a share: give a number above 0, up to 1")
    return value


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Runs a subcommand; whole-call errors become one stderr line and an exit status."""
    try:
        return run(args)
    except UsageError as err:
        _fail(args, f"voicefake {args.command}: {err}")
        return 2
    except (AudioError, CheckpointError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as err:
        _fail(args, f"voicefake {args.command}: {err}")
        return 1
    except KeyboardInterrupt:
        _fail(args, f"voicefake {args.command}: interrupted")
        return 130


def _fail(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(" ".join(message.split()), file=sys.stderr)


def expand_inputs(inputs: list[str]) -> Iterator[tuple[str, Path | None, str | None]]:
    """Yields (label, path, error) per input file; folders expand to their media files."""
    for item in inputs:
        try:
            paths = iter_media_files([item])
        except AudioError as err:
            yield item, None, str(err)
            continue
        for path in paths:
            yield (item if Path(item) == path else str(path)), path, None


def emit(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    """Prints a JSON line (with --json) or a human line; stdout stays machine-readable."""
    if getattr(args, "json", False):
        print(json.dumps(record, ensure_ascii=False), flush=True)
    else:
        print(text, flush=True)


def per_file(args: argparse.Namespace, inputs: list[str],
             handle: Callable[[str, Path], tuple[dict[str, Any], str]]) -> int:
    """Runs ``handle(label, path)`` over every input; one file's error never stops the batch.

    Returns:
        1 if any file failed, else 0.
    """
    failed = False
    items = list(expand_inputs(inputs))
    for index, (label, path, error) in enumerate(items):
        if len(items) > 1 and not getattr(args, "json", False):
            print(f"[{index + 1}/{len(items)}] {label}", file=sys.stderr)
        if error is None and path is not None:
            try:
                record, text = handle(label, path)
                emit(args, {"file": label, **record}, text)
                continue
            except (AudioError, ValueError, FileExistsError, OSError) as err:
                if args.debug:
                    traceback.print_exc()
                error = " ".join(str(err).split())
        failed = True
        if getattr(args, "json", False):
            emit(args, {"file": label, "error": error}, "")
        print(f"{label}: error: {error}", file=sys.stderr)
    return 1 if failed else 0


def output_path(out: str | None, source: Path, suffix: str, multiple: bool) -> Path:
    """Works out an output file name: -o FILE, -o FOLDER/ for batches, or <input><suffix>."""
    if out is None:
        return source.with_name(source.stem + suffix)
    target = Path(out)
    if multiple or target.is_dir() or out.endswith(("/", "\\")):
        return target / (source.stem + suffix)
    return target


def check_writable(path: Path, force: bool) -> None:
    """Raises FileExistsError unless ``path`` is free or ``force`` is set."""
    if path.exists() and not force:
        raise FileExistsError(f"{path}: already exists; pass --force to overwrite it")
