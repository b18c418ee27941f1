"""`mirokit eval BENCHMARK ...`: ShapesEval here; every other benchmark adds its sub-parser from its own module."""

from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS: tuple[str, ...] = ("mirokit.cli.eval_rewards", "mirokit.cli.eval_best_of_n", "mirokit.cli.eval_sweep",
                               "mirokit.cli.eval_tune_targets", "mirokit.cli.eval_geneval")
"""modules with an `add_parser(esub)` that adds one `mirokit eval` sub-command each"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate generated images (ShapesEval: GenEval on the shapes world)",
        description="Evaluate a folder of generated images laid out like GenEval's "
                    "(FOLDER/00000/metadata.jsonl + FOLDER/00000/samples/0000.png ...).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mirokit world render --out gt/ && mirokit eval shapes gt/ --out gt_results.json",
    )
    esub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True, help="what to evaluate")
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
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(esub)


def run_shapes(args) -> int:
    from mirokit.evaluate.geneval_rules import RuleConfig
    from mirokit.world.shapes_eval import evaluate_folder, format_summary, write_results

    for name in ("detector_threshold", "counting_threshold"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1]")
    if args.position_threshold < 0 or args.max_objects < 1:
        raise ValueError("--position-threshold must be >= 0 and --max-objects >= 1")
    rules = RuleConfig(threshold=args.detector_threshold, counting_threshold=args.counting_threshold,
                       position_threshold=args.position_threshold, max_objects=args.max_objects)
    records, summary = evaluate_folder(args.folder, rules=rules)
    out, lines = write_results(records, summary, args.out)
    print(format_summary(summary))
    print(f"wrote {out} and {lines}")
    return 0
