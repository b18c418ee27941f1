"""`mirokit eval tune-targets`: search reward targets and guidance for a metric; judge them on held-out prompts."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.eval_common import add_eval_flags, add_metric_flags, build_runs, metric_and_scorers


@COMMANDS.register("eval.tune-targets")
def add_parser(esub) -> None:
    """Add the `mirokit eval tune-targets` parser to `esub` (the sub-commands of its group)."""
    p = esub.add_parser(
        "tune-targets", help="search positive/negative reward targets and guidance that maximise a metric",
        description="Split the metric's prompts into a tuning and a disjoint held-out set (same prompt text never "
                    "on both sides, stratified by tag), search the positive and negative reward-target vectors and "
                    "the guidance scale that maximise the metric on the tuning set within --budget evaluations "
                    "(the default all-1/all-0 targets first, then random candidates, then a shrinking local "
                    "search), and compare the best with the defaults on the held-out set (paired by prompt, 95% "
                    "interval). Says plainly when the tuned settings do not beat the defaults. Saves the best as a "
                    "preset JSON that `mirokit sample --preset` and `mirokit generate geneval --preset` accept. Writes "
                    "OUT/summary.json, OUT/preset.json, OUT/search.png, OUT/held_out.png and OUT/report.html.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit eval tune-targets --model demo_out/runs/miro/model --metric shapes --budget 24 "
               "--max-prompts 200 --out tune_shapes/\n"
               "  mirokit sample --model demo_out/runs/miro/model --preset tune_shapes/preset.json "
               "--prompt 'a photo of a red circle' --out samples/\n"
               "  mirokit eval tune-targets --model runs/miro/model --metric reward:aesthetic_score --prompts "
               "parti-style --budget 16 --out tune_aesthetic/",
    )
    add_eval_flags(p, several=False, prompts_default=None, score_default="none; scored on the held-out split only")
    add_metric_flags(p, required=True, help_default=" to maximise")
    p.add_argument("--budget", type=int, required=True,
                   help="metric evaluations on the tuning split, the default targets included (>= 2)")
    p.add_argument("--tune-fraction", type=float, default=0.5,
                   help="fraction of the distinct prompts used for tuning; the rest is held out (default 0.5)")
    p.add_argument("--search", default="positive,negative,guidance",
                   help="what to search, comma-separated: positive, negative, guidance (default all three); what is "
                        "not searched keeps its --reward / --negative-reward / --guidance value")
    p.add_argument("--guidance-range", default=None, metavar="LO,HI",
                   help="guidance scales searched (default: half to twice the base guidance)")
    p.add_argument("--preset-out", default=None, help="where to write the preset JSON (default OUT/preset.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit eval tune-targets` with parsed `args`; returns the exit status."""
    from mirokit.evaluate.runs import header
    from mirokit.evaluate.samples import choose_prompts
    from mirokit.evaluate.tune_targets import format_tune, tune_targets, write_tune_report
    from mirokit.options import parse_range, parse_words

    search = parse_words(args.search)
    guidance_range = parse_range(args.guidance_range, "--guidance-range")
    run_ = build_runs(args, several=False)[0]
    metric, scorers = metric_and_scorers(args, args.metric, args.score or [])
    records = metric.prompts()
    base = run_.settings
    indices = choose_prompts(len(records), args.max_prompts, base.seed)
    summary = tune_targets(run_.pipe, base, records, indices, metric=metric, budget=args.budget,
                           tune_fraction=args.tune_fraction, images_per_prompt=args.images_per_prompt,
                           guidance_range=guidance_range, search=search, scorers=scorers, seed=base.seed)
    summary = {**header(indices, prompts=args.prompts or args.metric, images_per_prompt=args.images_per_prompt,
                        model=str(args.model)), **summary}
    paths = write_tune_report(summary, args.out, preset_path=args.preset_out)
    print(format_tune(summary))
    print(f"wrote {paths['preset']}, {paths['summary']}, {paths['html']} and the plots")
    return 0
