"""`mirokit train --config FILE.yaml [key=value ...]`."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS


@COMMANDS.register("train")
def add_parser(sub) -> None:
    """Add the `mirokit train` parser to `sub` (the top-level sub-commands)."""
    p = sub.add_parser(
        "train", help="train (or resume) a reward-conditioned generator",
        description="Train a MIRO generator from a YAML run config. Pointing at an existing out_dir resumes "
                    "from its newest complete checkpoint. Works unchanged under `torchrun --nproc_per_node N`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit train --config configs/cpu_tiny.yaml\n"
               "  mirokit train --config cpu_tiny train.steps=200 out_dir=runs/try\n"
               "  torchrun --nproc_per_node 2 -m mirokit.cli.main train --config cpu_tiny train.device=cpu",
    )
    p.add_argument("--config", required=True,
                   help="run config YAML file, or the name of a built-in one (cpu_tiny, demo_unet)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override config keys, e.g. train.steps=100 optim.lr=3e-4 model.reward_keys=[a,b]")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit train` with parsed `args`; returns the exit status."""
    import yaml

    from mirokit.config import to_dict
    from mirokit.train.config import load_run_config

    cfg = load_run_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    from mirokit.distributed import is_main, lost_peer_error
    from mirokit.sources import one_line
    from mirokit.train.loop import train

    try:
        final = train(cfg)
    except RuntimeError as err:  # gloo: "Read error ...: Connection reset by peer ... GLHF!" on every survivor
        lost = lost_peer_error(err, one_line(err))
        if lost is None:
            raise
        raise lost from None
    if is_main():
        print(f"model written to {final}")
    return 0
