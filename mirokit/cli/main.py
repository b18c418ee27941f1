"""`mirokit` command line: parses and calls. Every command is registered (mirokit.cli.commands.COMMANDS) by its module
in mirokit/cli/ or by a plugin. Errors in user input print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys

from mirokit import __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command (mirokit.cli.commands.COMMANDS: the modules
    of mirokit.cli and the plugins' commands; each adds its own flags)."""
    from mirokit.cli.commands import add_commands
    from mirokit.registry import load_plugins

    load_plugins()  # plugins may add commands and components, or patch them, before any command runs
    parser = argparse.ArgumentParser(
        prog="mirokit",
        description="MIRO: multi-reward conditioned pretraining for text-to-image generators.",
        epilog="Set MIROKIT_DEBUG=1 to see full tracebacks instead of one-line errors.",
    )
    parser.add_argument("--version", action="version", version=f"mirokit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_commands(sub)
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
    except (*_user_errors(), OSError) as err:
        if os.environ.get("MIROKIT_DEBUG"):
            raise
        from mirokit.console import close_progress_bars, error_line

        close_progress_bars()
        print(f"mirokit {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 2


def entry() -> None:
    """The `mirokit` console script and `python -m mirokit.cli.main`: run `main` and exit with its status.

    A process that joined a torch.distributed group (torchrun ranks) leaves with os._exit once its work is done,
    outputs flushed and the group destroyed: under load, gloo's C++ threads could otherwise abort the process in
    the interpreter's teardown ("terminate called without an active exception", exit -6) after a run that
    finished, turning a successful rank into a failed one."""
    status = main()
    from mirokit.distributed import joined_a_process_group

    if joined_a_process_group():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
