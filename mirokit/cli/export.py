"""`mirokit export CHECKPOINT --out DIR`: a loadable model folder from any training checkpoint."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS


@COMMANDS.register("export")
def add_parser(sub) -> None:
    """Add the `mirokit export` parser to `sub` (the top-level sub-commands)."""
    p = sub.add_parser(
        "export", help="write a model folder (EMA weights) from a training checkpoint, sharded or not",
        description="Joins the EMA shards that every rank wrote into RUN/checkpoints/step_N/train_state and writes "
                    "a model folder (config.json, model.safetensors, text_encoder/, pipeline.json, calibration.json, "
                    "README.md: the model card) that `mirokit sample --model` and MiroPipeline.from_pretrained load. "
                    "Runs in one process, on CPU, whatever the number of ranks that trained. A run folder means its "
                    "newest checkpoint. With --push-to-hub the folder is then uploaded to a hub model repo "
                    "(docs/HUB.md); a README.md in --out that mirokit did not write is kept.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit export runs/big/checkpoints/step_0050000 --out models/big-50k\n"
               "  mirokit export runs/big --out models/big-latest\n"
               "  mirokit export runs/big --out models/big-latest --push-to-hub me/miro-big --private",
    )
    p.add_argument("checkpoint", help="a checkpoint folder (RUN/checkpoints/step_N) or a run folder (its newest one)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--license", default=None,
                   help="the model card's licence, a hub licence id such as mit or apache-2.0 (default: other)")
    p.add_argument("--push-to-hub", metavar="OWNER/NAME", default=None,
                   help="then upload the folder to this hub model repo (created if needed) in one commit")
    p.add_argument("--private", action="store_true", default=None,
                   help="with --push-to-hub: create the repo private (an existing repo keeps its visibility)")
    p.add_argument("--token", default=None,
                   help="with --push-to-hub: hub token (default: HF_TOKEN, else the saved `hf auth login`)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit export` with parsed `args`; returns the exit status."""
    from pathlib import Path

    from mirokit.hub import push_folder
    from mirokit.model_card import check_repo_id, write_model_card
    from mirokit.train.checkpoint import latest_checkpoint
    from mirokit.train.export import export_checkpoint

    if args.push_to_hub is not None:
        check_repo_id(args.push_to_hub)
    elif args.private or args.token:
        raise ValueError("--private and --token go with --push-to-hub")
    source = Path(args.checkpoint)
    if not (source / "train_state").is_dir():
        latest = latest_checkpoint(source)
        if latest is None:
            raise FileNotFoundError(f"no training checkpoint in {source}")
        source = latest
    out = export_checkpoint(source, args.out)
    print(f"exported {source} to {out}")
    card = {"license": args.license}
    if args.push_to_hub is None:
        if args.license is not None:
            write_model_card(out, **card)
        return 0
    info = push_folder(out, args.push_to_hub, private=args.private, token=args.token, card=card)
    print(f"pushed {out} to {args.push_to_hub}: {info.pr_url or info.commit_url}")
    return 0
