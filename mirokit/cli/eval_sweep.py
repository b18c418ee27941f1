"""`mirokit eval sweep`: sweep one or two sampling settings (reward targets, guidance, solver, steps, shift)."""

from __future__ import annotations

import argparse

from mirokit.cli.eval_common import (add_eval_flags, add_metric_flags, build_runs, header, metric_and_scorers,
                                     scorer_keys)
from mirokit.registry import COMMANDS


@COMMANDS.register("eval.sweep")
def add_parser(esub) -> None:
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


def reference_setting(args, pipe, preset: str):
    """The --reference preset as settings: the preset's solver, steps and shift; guidance and targets as for the
    swept settings (explicit flags over the preset), so only the sampler differs."""
    from mirokit.cli.sampling_flags import resolve_flags, targets_for

    ns = argparse.Namespace(**{**vars(args), "steps": None, "solver": None, "shift": None})
    sampling = resolve_flags(ns, pipe.sampler_defaults, preset=preset)
    return sampling.replace(rewards=targets_for(pipe.reward_keys, sampling.rewards),
                            negative_rewards=targets_for(pipe.reward_keys, sampling.negative_rewards))


def run(args) -> int:
    from mirokit.evaluate.samples import choose_prompts
    from mirokit.evaluate.sweep import format_sweep, parse_sweep, run_sweep, write_sweep_report

    run_ = build_runs(args, several=False)[0]
    pipe = run_.pipe
    sweeps = [parse_sweep(s, pipe.reward_keys) for s in args.sweep]
    keys = scorer_keys(args, [run_])
    spec = args.metric or f"reward:{keys[0]}"
    swept_keys = [p.split(":", 1)[1] for p, _ in sweeps if p.startswith("reward:")]
    metric, scorers = metric_and_scorers(args, spec, list(dict.fromkeys([*keys, *swept_keys])))
    records = metric.prompts()
    base = run_.settings
    indices = choose_prompts(len(records), args.max_prompts, base.seed)
    reference = reference_setting(args, pipe, args.reference) if args.reference else None
    summary = run_sweep(pipe, base, sweeps, records, indices, metric=metric, scorers=scorers,
                        images_per_prompt=args.images_per_prompt, reference=reference,
                        reference_name=args.reference or "reference")
    summary = {**header(args, records, indices, model=str(args.model), prompts=args.prompts or spec), **summary}
    paths = write_sweep_report(summary, args.out)
    print(format_sweep(summary))
    print(f"wrote {paths['summary']}, {paths['html']} and the plots")
    return 0
