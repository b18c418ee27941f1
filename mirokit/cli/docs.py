"""Generate docs/CLI.md from the argparse parsers themselves, so the flag tables and `--help` cannot disagree.

Run `python -m mirokit.cli.docs > docs/CLI.md`; tests/test_docs.py keeps the file in sync and checks that every
`mirokit ...` command line written in README.md and docs/ names a command and flags that exist.
"""

from __future__ import annotations

import argparse

INTRO = """# Command-line reference

Generated from the parsers by `python -m mirokit.cli.docs` (a test keeps it in sync with `--help`).
Every command prints this help with `--help`. Bad input (an unknown config key, a missing file, an unknown
reward key, a malformed value) prints one line `mirokit COMMAND: error: ...` and exits 2; set `MIROKIT_DEBUG=1`
for the full traceback. Under `torchrun`, run `torchrun ... -m mirokit.cli.main COMMAND ...`: the commands that
split work (`train`, `score`, `encode`, `generate geneval`, `eval geneval`) take their rank from torchrun.
Task-oriented guides: [TRAINING.md](TRAINING.md), [EVALUATION.md](EVALUATION.md), [DEMO.md](DEMO.md).
"""


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{name: sub-parser} of `parser`'s sub-command action ({} for a leaf command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()):
    """Every command as (path of names, parser, one-line help), depth first, groups before their sub-commands."""
    if parser is None:
        from mirokit.cli.main import build_parser

        parser = build_parser()
    helps = {a.dest: a.help or "" for action in parser._actions if isinstance(action, argparse._SubParsersAction)
             for a in action._choices_actions}
    out = []
    for name, child in sorted(subcommands(parser).items()):
        out += [(path + (name,), child, helps.get(name, ""))] + commands(child, path + (name,))
    return out


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag `parser` accepts (`--steps`, `-h`, ...)."""
    return {s for action in parser._actions for s in action.option_strings}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("%%", "%").replace("|", "\\|")


def _flag_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = action.metavar or (action.dest.upper() if action.nargs != 0 else "")
            name = ", ".join(f"`{s} {metavar}`".replace(" `", "`") if metavar else f"`{s}`"
                             for s in action.option_strings)
        else:
            name = f"`{action.metavar or action.dest}`"
        meaning = action.help or ""
        if "%(default)" in meaning:
            meaning = meaning % {"default": action.default}
        rows.append(f"| {name} | {_cell(meaning)} |")
    return ["| argument | meaning |", "|---|---|", *rows] if rows else []


def cli_reference() -> str:
    """docs/CLI.md: an index of the commands, then each one's description, usage line and flag table."""
    import os

    from mirokit.cli.main import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "10000"  # one usage line per command, whatever the terminal (argparse reads COLUMNS)
    try:
        return _reference(commands(build_parser()))
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _reference(everything) -> str:
    lines = [INTRO, "| command | what it does |", "|---|---|"]
    for path, _, summary in everything:
        lines.append(f"| [`mirokit {' '.join(path)}`](#{'-'.join(('mirokit',) + path)}) | {_cell(summary)} |")
    for path, parser, _ in everything:
        lines += ["", f"## mirokit {' '.join(path)}", ""]
        if parser.description:
            lines += [parser.description.strip().replace("%%", "%"), ""]
        usage = " ".join(parser.format_usage().split())
        lines += ["```", usage.removeprefix("usage: "), "```"]
        table = _flag_table(parser)
        if table:
            lines += [""] + table
        if parser.epilog:
            lines += ["", "```text", parser.epilog.strip().replace("%%", "%"), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(cli_reference(), end="")
