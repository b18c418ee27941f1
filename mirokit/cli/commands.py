"""The registry of `mirokit` sub-commands, owned by the command line (the packages below it know nothing of it).

`COMMANDS` maps a name to `add_parser(subparsers)`, which adds the command's parser (with `func` set). A name with
a dot is a command of a group ("eval.rewards" is `mirokit eval rewards`, added by `add_group`). Built-in commands
are the modules of this package, found on first use; a plugin registers its own the same way (the shapes world
registers `demo`, `world ...` and `eval shapes`)."""

from __future__ import annotations

import argparse

from mirokit.registry import Registry

COMMANDS: Registry = Registry("command", "mirokit.cli")
"""`mirokit` sub-commands: name -> `add_parser(subparsers)`."""


def add_commands(subparsers, group: str = "") -> None:
    """Add every registered command of `group` ("" = the top level) to an argparse `subparsers`, sorted by name."""
    COMMANDS.call_children(group, subparsers)


def add_group(subparsers, name: str, *, help: str, description: str, epilog: str | None = None,
              metavar: str = "COMMAND") -> argparse.ArgumentParser:
    """Add command `name` whose sub-commands are the registered "name.*" commands (`mirokit eval rewards`);
    returns its parser."""
    parser = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    children = parser.add_subparsers(dest=f"{name}_command", metavar=metavar, required=True,
                                     help=f"one of the {name} commands")
    add_commands(children, name)
    return parser
