"""`mirokit eval sweep`: sweep one or two sampling settings (reward targets, guidance, solver, steps, shift)."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.eval_common import add_eval_flags, add_metric_flags, build_runs, metric_and_scorers


@COMMANDS.register("eval.sweep")
def add_parser(esub) -> None:
    """Add the `mirokit eval sweep` parser to `esub` (the sub-commands of its group)."""
    p = esub.add_parser(
        "sweep", help="sweep a reward target, a pair, the guidance scale or the sampler; plots and sampling cost",
        description="Evaluate a model on a grid of one or two swept settings (same prompts and noise at every "
                    "point): reward:KEY (positive target), negative:KEY (negative-branch target), guidance, steps, "
                    "shift or solver. Plots every reward's mean and the --metric against the first swept value "
                    "(one line per value of the second), a Pareto plot when two reward targets are swept, and with "
                    "--reference a sampling-cost table: per solver, the fewest network evaluations whose metric "
                    "mean and every reward's mean reach the reference's 95% intervals. Writes OUT/summary.json, "
                    "OUT/sweep.png, OUT/pareto.png, OUT/sampling_cost.md, OUT/fastest_preset.json and OUT/report.html.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit eval sweep --model demo_out/runs/miro/model "
               "--sweep reward:world_quality=0,0.25,0.5,0.75,1 \\\n"
               "      --prompts mirokit/world/shapes_eval.jsonl --max-prompts 60 --out sweep_quality/\n"
               "  mirokit eval sweep --model demo_out/runs/miro/model --sweep reward:world_quality=0,0.5,1 "
               "--sweep reward:world_composition=0,0.5,1 --out pareto/\n"
               "  mirokit eval sweep --model demo_out/runs/miro/model --metric shapes --max-prompts 120 "
               "--sweep steps=4,6,8,12,16,25 \\\n      --sweep solver=euler,heun,midpoint,ab2,dpm++2m "
               "--reference official --out sampling_cost/",
    )
    add_eval_flags(p, several=False, prompts_default=None)
    p.add_argument("--sweep", action="append", required=True, metavar="PARAM=V1,V2,...",
                   help="a setting and its values: reward:KEY, negative:KEY, guidance, steps, shift or solver (give "
                        "one, or two for a grid)")
    add_metric_flags(p, required=False, help_default=", plotted with the rewards (default: reward:<first scored key> "
                                                     "on --prompts)")
    p.add_argument("--reference", default=None, metavar="PRESET",
                   help="a preset evaluated alongside (e.g. official = Euler 50 steps, guidance 7): its solver, steps "
                        "and shift, with --guidance and the targets overriding it as for the swept settings; enables "
                        "the sampling-cost table")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit eval sweep` with parsed `args`; returns the exit status."""
    from mirokit.cli.sampling_flags import explicit_settings
    from mirokit.evaluate.runs import header, reference_settings, scorer_keys, sweep_plan
    from mirokit.evaluate.samples import choose_prompts
    from mirokit.evaluate.sweep import format_sweep, run_sweep, write_sweep_report

    run_ = build_runs(args, several=False)[0]
    pipe = run_.pipe
    keys = scorer_keys(args.score, [run_])
    sweeps, scored = sweep_plan(args.sweep, pipe.reward_keys, keys)
    spec = args.metric or f"reward:{keys[0]}"
    metric, scorers = metric_and_scorers(args, spec, scored)
    records = metric.prompts()
    base = run_.settings
    indices = choose_prompts(len(records), args.max_prompts, base.seed)
    reference = reference_settings(explicit_settings(args), args.reference, pipe) if args.reference else None
    summary = run_sweep(pipe, base, sweeps, records, indices, metric=metric, scorers=scorers,
                        images_per_prompt=args.images_per_prompt, reference=reference,
                        reference_name=args.reference or "reference")
    summary = {**header(indices, prompts=args.prompts or spec, images_per_prompt=args.images_per_prompt,
                        model=str(args.model)), **summary}
    paths = write_sweep_report(summary, args.out)
    print(format_sweep(summary))
    print(f"wrote {paths['summary']}, {paths['html']} and the plots")
    return 0
