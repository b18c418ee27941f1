"""`mirokit export CHECKPOINT --out DIR`: a loadable model folder from any training checkpoint."""

from __future__ import annotations

import argparse

from mirokit.registry import COMMANDS


@COMMANDS.register("export")
def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a model folder (EMA weights) from a training checkpoint, sharded or not",
        description="Joins the EMA shards that every rank wrote into RUN/checkpoints/step_N/train_state and writes "
                    "a model folder (config.json, model.safetensors, text_encoder/, pipeline.json, calibration.json) "
                    "that `mirokit sample --model` and MiroPipeline.from_pretrained load. Runs in one process, on "
                    "CPU, whatever the number of ranks that trained. A run folder means its newest checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit export runs/big/checkpoints/step_0050000 --out models/big-50k\n"
               "  mirokit export runs/big --out models/big-latest",
    )
    p.add_argument("checkpoint", help="a checkpoint folder (RUN/checkpoints/step_N) or a run folder (its newest one)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from mirokit.train.checkpoint import latest_checkpoint
    from mirokit.train.export import export_checkpoint

    source = Path(args.checkpoint)
    if not (source / "train_state").is_dir():
        latest = latest_checkpoint(source)
        if latest is None:
            raise FileNotFoundError(f"no training checkpoint in {source}")
        source = latest
    out = export_checkpoint(source, args.out)
    print(f"exported {source} to {out}")
    return 0
