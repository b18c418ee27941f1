"""A markdown reference of a command-line program, read from its argparse parser itself (so that the flag tables
and `--help` cannot disagree): an index of the commands, then each one's description, usage line and flag table.
The program's own page (docs/CLI.md) passes its parser and introduction."""

from __future__ import annotations

import argparse
import os


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{name: sub-parser} of `parser`'s sub-command action ({} for a leaf command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list:
    """Every command as (path of names, parser, one-line help), depth first, groups before their sub-commands."""
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


def markdown_reference(parser: argparse.ArgumentParser, intro: str, program: str) -> str:
    """The reference page of `parser` (the program `program`, e.g. "mirokit"): `intro`, an index of the commands,
    then each one's description, usage line (one line, whatever the terminal's width) and flag table."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "10000"  # one usage line per command, whatever the terminal (argparse reads COLUMNS)
    try:
        return _reference(commands(parser), intro, program)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _reference(everything: list, intro: str, program: str) -> str:
    lines = [intro, "| command | what it does |", "|---|---|"]
    for path, _, summary in everything:
        lines.append(f"| [`{program} {' '.join(path)}`](#{'-'.join((program,) + path)}) | {_cell(summary)} |")
    for path, parser, _ in everything:
        lines += ["", f"## {program} {' '.join(path)}", ""]
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
