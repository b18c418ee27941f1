"""`mirokit score`: raw reward scores for every image of a dataset, resumable and splittable."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.unit_flags import add_unit_job_flags, run_unit_job


@COMMANDS.register("score")
def add_parser(sub) -> None:
    """Add the `mirokit score` parser to `sub` (the top-level sub-commands)."""
    p = sub.add_parser(
        "score", help="score a dataset with reward models (one parquet per input shard)",
        description="Compute raw reward scores for webdataset tar shards (img2dataset layout: "
                    "{key}.jpg/.png/.webp + .txt + .json), an image folder + captions JSONL, or a parquet table "
                    "(columns image, caption). Writes OUT/<unit>.parquet (key, caption, one column per reward, error) "
                    "and a run manifest. Restarting the same command skips finished units. Under torchrun each rank "
                    "takes its own units.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  mirokit score 'data/shard-{000000..000099}.tar' --reward clip_score --reward aesthetic_score "
               "--out scores/\n"
               "  mirokit score captions.jsonl --reward world_quality --out scores/\n"
               "  mirokit score table.parquet --reward clip_score --option clip_score.model=/models/clip --out scores/",
    )
    add_unit_job_flags(p, batch_size=64)
    p.add_argument("--reward", action="append", default=[], metavar="KEY", help="reward key to compute (repeatable)")
    p.add_argument("--option", action="append", default=[], metavar="KEY.NAME=VALUE",
                   help="scorer option, e.g. clip_score.model=/path, hpsv2_score.dtype=bf16 (repeatable)")
    p.add_argument("--caption", action="append", default=[], metavar="NAME",
                   help="also score the named caption {key}.NAME.txt (or the NAME_caption field), e.g. synthetic: "
                        "columns / JSON keys NAME_<reward> (repeatable)")
    p.add_argument("--caption-length", action="append", default=[], metavar="KEY=long|short|image",
                   help="which form of a named caption reward KEY scores (repeatable): long ({key}.NAME.txt), short "
                        "({key}.NAME_short.txt) or image (scored once: the reward reads no caption); default: long "
                        "for clip_score and vqa_score, short for the 77-token scorers, image for aesthetic_score")
    p.add_argument("--enrich", action="store_true",
                   help="also write OUT/enriched/<shard>.tar with the scores added to each sample's .json")
    p.add_argument("--list", action="store_true", help="list the registered reward keys and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit score` with parsed `args`; returns the exit status."""
    from mirokit.console import columns
    from mirokit.options import parse_options, parse_strings
    from mirokit.rewards import available_scorers
    from mirokit.rewards.job import ScoreJobConfig, run_score_job

    if args.list:
        print(columns(available_scorers()))
        return 0
    if not args.inputs or not args.out:
        raise ValueError("give input files and --out (or --list)")

    def config(fields: dict, device: str) -> ScoreJobConfig:
        return ScoreJobConfig(**fields, rewards=args.reward, reward_options=parse_options(args.option), device=device,
                              enrich=args.enrich, captions=args.caption,
                              caption_length=parse_strings(args.caption_length, "--caption-length"))

    return run_unit_job(args, config, run_score_job, "scored")
