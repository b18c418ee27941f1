"""`mirokit` command line: train, sample, export, convert-official, vae, demo, score, encode, calibrate, world,
eval. Errors in user input print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys

from mirokit import __version__

COMMANDS = {
    "train": "mirokit.cli.train",
    "sample": "mirokit.cli.sample",
    "export": "mirokit.cli.export",
    "convert-official": "mirokit.cli.convert_official",
    "convert-geneval-detector": "mirokit.cli.convert_geneval",
    "vae": "mirokit.cli.vae",
    "demo": "mirokit.cli.demo",
    "score": "mirokit.cli.score",
    "encode": "mirokit.cli.encode",
    "calibrate": "mirokit.cli.calibrate",
    "world": "mirokit.cli.world",
    "eval": "mirokit.cli.eval",
    "generate": "mirokit.cli.generate",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command (each module adds its own flags)."""
    import importlib

    from mirokit.registry import load_plugins

    load_plugins()  # plugins may patch or add components before any command runs
    parser = argparse.ArgumentParser(
        prog="mirokit",
        description="MIRO: multi-reward conditioned pretraining for text-to-image generators.",
        epilog="Set MIROKIT_DEBUG=1 to see full tracebacks instead of one-line errors.",
    )
    parser.add_argument("--version", action="version", version=f"mirokit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(module).add_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from mirokit.config import ConfigError
    from mirokit.data.batch import DataError

    return (ConfigError, DataError, FileNotFoundError, ValueError, KeyError, FloatingPointError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mirokit` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("mirokit: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:
        if os.environ.get("MIROKIT_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"mirokit {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
