"""`mirokit eval best-of-n`: expected best-of-N curves (exact, from one pool per prompt) for several models."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.eval_common import add_eval_flags, build_runs, load_prompt_set


@COMMANDS.register("eval.best-of-n")
def add_parser(esub) -> None:
    """Add the `mirokit eval best-of-n` parser to `esub` (the sub-commands of its group)."""
    p = esub.add_parser(
        "best-of-n", help="test-time scaling: expected best-of-N score for N = 1, 2, 4, ... from one pool of samples",
        description="Draw a pool of --pool images per prompt with each model (same noise for every model), score "
                    "them with the --select reward and compute, for N = 1, 2, 4, ... <= pool, the expected score of "
                    "the best of N images exactly from the pool (the average over all subsets of size N, no "
                    "resampling), averaged over prompts with a 95% t-interval. Reports the smallest N at which each "
                    "model's best-of-N reaches the --reference model's best-of-1 (\"samples saved\"). Writes "
                    "OUT/summary.json, OUT/scores.jsonl (every pool's scores), OUT/best_of_n.png (one curve per model) "
                    "and OUT/report.html.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mirokit eval best-of-n --model miro=demo_out/runs/miro/model "
               "--model baseline=demo_out/runs/baseline/model \\\n      --select world_quality --pool 64 "
               "--prompts mirokit/world/shapes_eval.jsonl --max-prompts 50 --out best_of_n/",
    )
    add_eval_flags(p, images_per_prompt=None)
    p.add_argument("--select", action="append", default=None, metavar="KEY",
                   help="the registered reward that picks the best sample and is reported (default: the first "
                        "--score key, else the first model's first reward key); repeat it for the paper's "
                        "test-time-scaling comparison per reward (each selected and reported by itself: the "
                        "curves N = 1..pool and the N at which each model reaches the --reference's best-of-1)")
    p.add_argument("--pool", type=int, default=128, help="samples per prompt and model, the largest N (default 128)")
    p.add_argument("--reference", default=None,
                   help="the model whose best-of-1 the others must reach (default: the first --model)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit eval best-of-n` with parsed `args`; returns the exit status."""
    from mirokit.evaluate.best_of_n import best_of_n, format_best_of_n, write_best_of_n_report
    from mirokit.evaluate.runs import header, selection_keys
    from mirokit.evaluate.samples import build_scorers
    from mirokit.options import parse_options

    if args.pool < 1:
        raise ValueError("--pool must be >= 1")
    records, indices = load_prompt_set(args)
    runs = build_runs(args)
    selects, keys = selection_keys(args.select, args.score, runs)
    scorers = build_scorers(keys, parse_options(args.option))
    summary, rows = best_of_n(runs, records, indices, scorers, select=selects if len(selects) > 1 else selects[0],
                              pool=args.pool, reference=args.reference)
    summary = {**header(indices, prompts=args.prompts, images_per_prompt=args.pool), **summary}
    paths = write_best_of_n_report(summary, rows, args.out)
    print(format_best_of_n(summary))
    print(f"wrote {paths['summary']}, {paths['html']} and the plots")
    return 0
