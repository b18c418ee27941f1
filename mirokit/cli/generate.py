"""`mirokit generate geneval --model DIR --out FOLDER`: GenEval's folder layout, resumable, split over ranks/shards."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS, add_group
from mirokit.cli.sampling_flags import add_model_flags, add_sampling_flags, explicit_settings, model_dtype


@COMMANDS.register("generate")
def add_parser(sub) -> None:
    """Add the `mirokit generate` group (one sub-command per benchmark) to `sub` (the top-level sub-commands)."""
    add_group(sub, "generate", metavar="BENCHMARK",
              help="generate images for a benchmark's prompts in its folder layout (GenEval)",
              description="Generate the images a benchmark evaluates, in the layout its evaluator reads.")


@COMMANDS.register("generate.geneval")
def add_geneval_parser(gsub) -> None:
    """Add the `mirokit generate geneval` parser to `gsub` (the sub-commands of its group)."""
    g = gsub.add_parser(
        "geneval", help="GenEval's layout: OUT/00000/metadata.jsonl + OUT/00000/samples/0000.png ...",
        description="Generate images for GenEval's 553 prompts (or any GenEval-schema JSONL given with --prompts) "
                    "in the official layout: OUT/<prompt index, 5 digits>/metadata.jsonl holding the record and "
                    "samples/<image index, 4 digits>.png. Image j of prompt i starts from noise seeded by "
                    "(--seed, i, j), so images do not depend on sharding, batch size or resuming; a rerun skips "
                    "finished images. Under torchrun every rank takes its share of the prompts; --shard-index / "
                    "--num-shards split them further (e.g. over separate jobs). OUT/settings.json records the "
                    "model and every setting; a resume with different settings is refused.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit generate geneval --model runs/miro/model --out geneval_images/\n"
               "  torchrun --nproc_per_node 8 -m mirokit.cli.main generate geneval --model runs/miro/model "
               "--out geneval_images/\n"
               "  mirokit generate geneval --model demo_out/runs/miro/model --prompts mirokit/world/shapes_eval.jsonl "
               "--preset official --out shapes_images/ && mirokit eval shapes shapes_images/ --out shapes.json",
    )
    add_model_flags(g)
    g.add_argument("--out", required=True, help="output folder (GenEval layout)")
    g.add_argument("--prompts", default=None,
                   help="GenEval-schema JSONL (one record with \"prompt\" per line; default: GenEval's 553 prompts "
                        "shipped with mirokit)")
    g.add_argument("--images-per-prompt", type=int, default=4, help="images per prompt (default 4, GenEval's)")
    g.add_argument("--shard-index", type=int, default=0, help="this job's shard, 0-based (default 0)")
    g.add_argument("--num-shards", type=int, default=1,
                   help="number of jobs splitting the prompts (default 1): batch k of the images in prompt order goes "
                        "to shard k %% num-shards")
    add_sampling_flags(g)
    g.set_defaults(func=run_generate_geneval)


def default_geneval_prompts() -> list[dict]:
    """GenEval's evaluation metadata shipped with mirokit (a one-line error if this install lacks it)."""
    from mirokit.evaluate.geneval_data import load_geneval_prompts

    return load_geneval_prompts()


def run_generate_geneval(args) -> int:
    """Run `mirokit generate geneval` with parsed `args`; returns the exit status."""
    from mirokit import __version__
    from mirokit.distributed import check_shard, cleanup, init_distributed, job_shard, shard_label
    from mirokit.evaluate.generate import generate_geneval
    from mirokit.evaluate.samples import load_prompts
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling.targets import settings_for, settings_record

    check_shard(args.shard_index, args.num_shards)
    records = load_prompts(args.prompts) if args.prompts else default_geneval_prompts()
    dist = init_distributed(args.device)
    try:
        device = str(dist.device)
        pipe = MiroPipeline.from_pretrained(args.model, variant=args.variant, device=device,
                                            text_encoder=args.text_encoder, vae=args.vae)
        pipe.to(dtype=model_dtype(args))
        sampling = settings_for(explicit_settings(args), args.preset, pipe.sampler_defaults, pipe.reward_keys)
        settings = {"model": str(args.model), "variant": args.variant, "text_encoder": args.text_encoder,
                    "vae": args.vae, **({"dtype": args.dtype} if args.dtype != "fp32" else {}),
                    "prompts": args.prompts or "geneval", "num_prompts": len(records),
                    **settings_record(sampling, args.preset), "reward_keys": pipe.reward_keys, "device": device,
                    "mirokit_version": __version__}
        shard, shards = job_shard(args.shard_index, args.num_shards, dist)
        result = generate_geneval(pipe, records, args.out, sampling, images_per_prompt=args.images_per_prompt,
                                  shard_index=shard, num_shards=shards, settings=settings, progress=dist.is_main)
        print(f"shard {shard_label(shard, shards)}: {result['prompts']} prompts, wrote {result['written']} images "
              f"({result['skipped']} already there, {result['redrawn']} unreadable ones redrawn) to {result['out']}")
    finally:
        cleanup()
    return 0
