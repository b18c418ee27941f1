"""`mirokit eval BENCHMARK ...`: the group; every benchmark is a command registered as "eval.NAME" (its own module,
or a plugin's: the shapes world adds `eval shapes`)."""

from __future__ import annotations

from mirokit.cli.commands import COMMANDS, add_group


@COMMANDS.register("eval")
def add_parser(sub) -> None:
    """Add the `mirokit eval` group (one sub-command per benchmark) to `sub` (the top-level sub-commands)."""
    add_group(sub, "eval", metavar="BENCHMARK",
              help="evaluate a model or generated images (rewards, best-of-N, sweeps, GenEval, ShapesEval)",
              description="Evaluate models (reward scores, best-of-N curves, sweeps of sampling settings, target "
                          "search) or folders of generated images laid out like GenEval's "
                          "(FOLDER/00000/metadata.jsonl + FOLDER/00000/samples/0000.png ...).",
              epilog="example:\n  mirokit world render --out gt/ && mirokit eval shapes gt/ --out gt_results.json")
