"""Generate docs/CLI.md from the argparse parsers themselves, so the flag tables and `--help` cannot disagree.

Run `python -m mirokit.cli.docs > docs/CLI.md`; tests/test_docs.py keeps the file in sync and checks that every
`mirokit ...` command line written in README.md and docs/ names a command and flags that exist. The page is
written by mirokit.parser_docs from the parser; this module gives it the parser and the introduction.
"""

from __future__ import annotations

import argparse

from mirokit.parser_docs import option_strings, subcommands  # noqa: F401 (re-exported for tests/test_docs.py)

INTRO = """# Command-line reference

Generated from the parsers by `python -m mirokit.cli.docs` (a test keeps it in sync with `--help`).
Every command prints this help with `--help`. Bad input (an unknown config key, a missing file, an unknown
reward key, a malformed value) prints one line `mirokit COMMAND: error: ...` and exits 2; set `MIROKIT_DEBUG=1`
for the full traceback. Under `torchrun`, run `torchrun ... -m mirokit.cli.main COMMAND ...`: the commands that
split work (`train`, `score`, `encode`, `generate geneval`, `eval geneval`) take their rank from torchrun.
Task-oriented guides: [TRAINING.md](TRAINING.md), [EVALUATION.md](EVALUATION.md), [DEMO.md](DEMO.md).
"""


def commands(parser: argparse.ArgumentParser | None = None) -> list:
    """Every command of `mirokit` (or of `parser`) as (path of names, parser, one-line help), depth first."""
    from mirokit.cli.main import build_parser
    from mirokit.parser_docs import commands as walk

    return walk(parser if parser is not None else build_parser())


def cli_reference() -> str:
    """docs/CLI.md: an index of the commands, then each one's description, usage line and flag table."""
    from mirokit.cli.main import build_parser
    from mirokit.parser_docs import markdown_reference

    return markdown_reference(build_parser(), INTRO, "mirokit")


if __name__ == "__main__":
    print(cli_reference(), end="")
