"""The ``voicefake`` command: one subcommand per capability (see ../shared/CLI.md rules).

Shared behaviour lives in :mod:`voicefake.cli.common`; each capability's subcommands live in
their own module and register themselves in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from voicefake import __version__
from voicefake.cli import cloning, common, detection, lipsync, scenario, speaker, vocoder, watermark

# module with `register(subparsers)`; each adds its subcommands with `set_defaults(run=...)`
COMMANDS = [vocoder, speaker, cloning, detection, watermark, lipsync, scenario]


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = _Parser(
        prog="voicefake",
        description="Clone voices, make and detect audio deepfakes, align speech to video.",
        epilog="Every subcommand takes --json for one JSON object per input on stdout. "
        "Cloning a voice needs its owner's consent.",
    )
    parser.add_argument("--version", action="version", version=f"voicefake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return common.guarded(args.run, args)
