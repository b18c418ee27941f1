"""The shapes world's commands, registered through its plugin entry point (the core CLI knows nothing of them):
`mirokit demo`, `mirokit world render | generate | autoencoder` and `mirokit eval shapes`. Each parses its flags
and calls the world's library code (like the modules of mirokit/cli: no loops, numerics or file writes here)."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS, add_group

DEMO_INTERNAL = ("min_samples", "max_epochs", "probe_samples", "min_steps")
"""DemoConfig fields that are not flags (the plan's guards; the config, not the command line, sets them)"""
DEMO_NAMES = {"out_dir": "out"}
"""DemoConfig fields whose flag is not --FIELD-NAME"""


@COMMANDS.register("demo")
def add_demo_parser(sub) -> None:
    """Add the `mirokit demo` parser to `sub` (the top-level sub-commands)."""
    from mirokit.config_flags import add_config_flags
    from mirokit.world.demo_plan import CONTROL_OTHERS, DemoConfig

    p = sub.add_parser(
        "demo", help="MIRO vs a baseline on the built-in shapes world (CPU, within --minutes)",
        description="End-to-end on CPU with nothing downloaded: generate the demo's shapes world, score it with the "
                    "built-in rewards (world_alignment, world_quality, world_composition), calibrate, encode it with "
                    "the shipped world autoencoder, measure this machine and fix the training steps to fit the "
                    "budget, train a no-reward baseline and MIRO side by side with the same steps, sample every "
                    "ShapesEval prompt from both, sweep each reward's target, and write OUT/report.html (tables "
                    "with 95%% intervals, figures) and OUT/summary.json. Every flag is a field of the demo's "
                    "config (mirokit.world.demo_plan.DemoConfig).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_flags(p, DemoConfig, skip=DEMO_INTERNAL, names=DEMO_NAMES, positional=("overrides",),
                     extra={"control_others": {"choices": tuple(CONTROL_OTHERS)},
                            "quality_mix": {"metavar": "TARGET|none"}, "started_at": {"metavar": "EPOCH_SECONDS"},
                            "overrides": {"metavar": "key=value"}})
    p.set_defaults(func=run_demo_command)


def run_demo_command(args) -> int:
    """Run `mirokit demo` with parsed `args`: the whole demo, then its summary; returns the exit status."""
    from mirokit.config_flags import config_from_flags
    from mirokit.world.demo import run_demo
    from mirokit.world.demo_plan import DemoConfig
    from mirokit.world.demo_report import terminal_summary

    cfg = config_from_flags(DemoConfig, args, skip=DEMO_INTERNAL)
    summary = run_demo(cfg)
    print(terminal_summary(summary))
    print(f"done in {summary['seconds']:.0f} s; report: {cfg.out_dir}/report.html")
    runs = f"{cfg.out_dir}/runs"
    print(f"try the rewards yourself in the browser: mirokit studio miro={runs}/miro/model "
          f"baseline={runs}/baseline/model")
    return 0


@COMMANDS.register("world")
def add_world_parser(sub) -> None:
    """Add the `mirokit world` group (render, generate, autoencoder) to `sub` (the top-level sub-commands)."""
    add_group(sub, "world", metavar="WORLD_COMMAND",
              help="the shapes world: render ground truth, generate noisy training shards, train its autoencoder",
              description="The shapes world: a procedural text-to-image dataset (coloured shapes, GenEval-like "
                          "captions, web-like caption and image noise) whose rewards are computable from pixels.",
              epilog="examples:\n  mirokit world render --out geneval_gt/\n"
                     "  mirokit world generate --num-samples 100000 --out shards/ --noise blur=0.2")


@COMMANDS.register("world.render")
def add_render_parser(wsub) -> None:
    """Add the `mirokit world render` parser to `wsub` (the sub-commands of its group)."""
    r = wsub.add_parser(
        "render", help="render ground-truth images for GenEval-schema prompts",
        description="Render scenes satisfying each prompt into GenEval's folder layout: "
                    "OUT/00000/metadata.jsonl (the prompt's metadata) and OUT/00000/samples/0000.png ...",
    )
    r.add_argument("--prompts", default=None,
                   help="GenEval-schema JSONL prompt file (default: the shipped ShapesEval prompts)")
    r.add_argument("--out", required=True, help="output folder (one sub-folder per prompt)")
    r.add_argument("--images-per-prompt", type=int, default=4, help="images per prompt (default 4, as GenEval)")
    r.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    r.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    r.add_argument("--mismatch", action="store_true",
                   help="render each prompt's images from a different prompt (a fixed derangement): a "
                        "deliberately wrong baseline that the evaluator must score low")
    r.set_defaults(func=run_render)


def run_render(args) -> int:
    """Run `mirokit world render` with parsed `args`; returns the exit status."""
    from mirokit.world.shapes_eval import render_ground_truth

    count = render_ground_truth(args.out, args.prompts, images_per_prompt=args.images_per_prompt, seed=args.seed,
                                size=args.size, mismatch=args.mismatch)
    kind = "mismatched " if args.mismatch else ""
    print(f"wrote {count} prompts x {args.images_per_prompt} {kind}images to {args.out}")
    return 0


@COMMANDS.register("world.generate")
def add_generate_parser(wsub) -> None:
    """Add the `mirokit world generate` parser to `wsub` (the sub-commands of its group)."""
    g = wsub.add_parser(
        "generate", help="write a noisy shapes-world dataset as webdataset-style tar shards",
        description="Generate samples (PNG image, caption, JSON metadata with the caption's GenEval-schema "
                    "claim, the applied noise and the scene) into DIR/shard-NNNNNN.tar; prints how many "
                    "samples got each noise kind and writes DIR/world.json.",
    )
    g.add_argument("--num-samples", type=int, required=True, help="number of samples")
    g.add_argument("--out", required=True, help="output folder for the shards")
    g.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    g.add_argument("--seed", type=int, default=None, help="world seed (default: the config's, 0)")
    g.add_argument("--size", type=int, default=None, help="image side in pixels (default: the config's, 32)")
    g.add_argument("--clean", action="store_true", help="set every noise rate to 0 (applied before --noise)")
    g.add_argument("--noise", action="append", metavar="KIND=RATE",
                   help="rate of one noise kind (repeatable); kinds: wrong_colour, count_off, swap_relation, "
                        "missing_object, cut_border, blur, pixel_noise, jpeg, low_contrast")
    g.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="overrides",
                   help="override any WorldConfig field (repeatable), e.g. texture_prob=0.5 or "
                        "object_count_probs=[0.5,0.5]")
    g.set_defaults(func=run_generate)


def run_generate(args) -> int:
    """Run `mirokit world generate` with parsed `args`; returns the exit status."""
    from mirokit.config import parse_key_values
    from mirokit.world.dataset import world_config_from
    from mirokit.world.shards import describe_world_shards, generate_world_shards

    cfg = world_config_from(args.overrides, clean=args.clean, noise=parse_key_values(args.noise, "--noise"),
                            seed=args.seed, size=args.size)
    summary = generate_world_shards(args.num_samples, cfg, args.out, shard_size=args.shard_size)
    print(describe_world_shards(summary, args.out))
    return 0


@COMMANDS.register("world.autoencoder")
def add_autoencoder_parser(wsub) -> None:
    """Add the `mirokit world autoencoder` parser to `wsub` (the sub-commands of its group)."""
    a = wsub.add_parser(
        "autoencoder", help="train the world autoencoder (the latent space of the demo's generators)",
        description="Train a WorldAutoencoder on images of the demo's world (mirokit.world.sampling."
                    "demo_world_config) and write OUT/config.json + model.safetensors. The one shipped with mirokit "
                    "(mirokit/world/world_ae/, `name_or_path: builtin`) was made by this command with its defaults; "
                    "prints the reconstruction's agreement with the originals under the world's detector and rewards.",
    )
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--samples", type=int, default=8000, help="world images to train on (default 8000)")
    a.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    a.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    a.add_argument("--widths", default="48,96",
                   help="channels per stride-2 level, comma-separated (default 48,96: x4 down)")
    a.add_argument("--latent-channels", type=int, default=4, help="latent channels (default 4)")
    a.add_argument("--seed", type=int, default=0, help="world, initialisation and batch seed (default 0)")
    a.add_argument("--half", action="store_true", help="store the weights in float16 (half the file size)")
    a.set_defaults(func=run_autoencoder)


def run_autoencoder(args) -> int:
    """Run `mirokit world autoencoder` with parsed `args`; returns the exit status."""
    from mirokit.options import parse_ints
    from mirokit.world.autoencoder import describe_training, train_world_autoencoder

    widths = list(parse_ints(args.widths, "--widths"))
    report = train_world_autoencoder(args.out, samples=args.samples, steps=args.steps, batch_size=args.batch_size,
                                     widths=widths, latent_channels=args.latent_channels, seed=args.seed,
                                     half=args.half)
    print(describe_training(report))
    return 0


@COMMANDS.register("eval.shapes")
def add_shapes_parser(esub) -> None:
    """Add the `mirokit eval shapes` parser to `esub` (the sub-commands of its group)."""
    s = esub.add_parser(
        "shapes", help="ShapesEval: detect shapes from pixels, apply GenEval's rules",
        description="Detects shapes in every sample (pixels only), applies GenEval's rules (include clauses "
                    "ANDed, exclude clauses ORed, colour of the top-count detections, positions from box "
                    "centres with threshold 0.1) and reports per-tag accuracy and their mean (GenEval's "
                    "overall). Writes the summary to --out and per-image records to <out stem>.jsonl.",
    )
    s.add_argument("folder", help="GenEval-layout folder of generated images")
    s.add_argument("--out", required=True, help="summary JSON path; per-image records go to <stem>.jsonl beside it")
    s.add_argument("--detector-threshold", type=float, default=0.3,
                   help="keep detections scoring above this (GenEval's threshold, default 0.3)")
    s.add_argument("--counting-threshold", type=float, default=0.9,
                   help="score threshold for the counting tag (GenEval's default 0.9)")
    s.add_argument("--position-threshold", type=float, default=0.1,
                   help="GenEval's position threshold (fraction of the summed box sizes, default 0.1)")
    s.add_argument("--max-objects", type=int, default=16, help="detections kept per class (default 16)")
    s.set_defaults(func=run_shapes)


def run_shapes(args) -> int:
    """Run `mirokit eval shapes` with parsed `args`; returns the exit status."""
    from mirokit.evaluate.geneval_rules import checked_rules
    from mirokit.world.shapes_eval import evaluate_folder, format_summary, write_results

    rules = checked_rules(detector_threshold=args.detector_threshold, counting_threshold=args.counting_threshold,
                          position_threshold=args.position_threshold, max_objects=args.max_objects)
    records, summary = evaluate_folder(args.folder, rules=rules)
    out, lines = write_results(records, summary, args.out)
    print(format_summary(summary))
    print(f"wrote {out} and {lines}")
    return 0
