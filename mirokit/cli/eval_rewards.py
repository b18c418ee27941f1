"""`mirokit eval rewards`: mean and 95% interval of registered rewards over a prompt set, models side by side."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.eval_common import add_eval_flags, build_runs, load_prompt_set


@COMMANDS.register("eval.rewards")
def add_parser(esub) -> None:
    """Add the `mirokit eval rewards` parser to `esub` (the sub-commands of its group)."""
    p = esub.add_parser(
        "rewards", help="mean and 95%% CI of reward scores over a prompt set, several models side by side",
        description="Sample every prompt of a prompt set with each model (same noise for every model), score the "
                    "images with registered reward scorers and report each reward's mean with a 95% t-interval "
                    "over prompts (images of one prompt clustered), plus each model's per-prompt paired difference "
                    "to the first model. Writes OUT/summary.json, OUT/scores.jsonl (every image's scores), "
                    "OUT/rewards.png, OUT/samples.png and OUT/report.html.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit eval rewards --model baseline=demo_out/runs/baseline/model "
               "--model miro=demo_out/runs/miro/model \\\n      --prompts mirokit/world/shapes_eval.jsonl "
               "--max-prompts 100 --out eval_rewards/\n"
               "  mirokit eval rewards --model miro=runs/miro/model --prompts parti-style --score aesthetic_score "
               "--option aesthetic_score.model=/models/aesthetic --out parti_rewards/",
    )
    add_eval_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit eval rewards` with parsed `args`; returns the exit status."""
    from mirokit.evaluate.reward_eval import evaluate_rewards, format_rewards, write_reward_report
    from mirokit.evaluate.runs import header, scorer_keys
    from mirokit.evaluate.samples import build_scorers
    from mirokit.options import parse_options

    records, indices = load_prompt_set(args)
    runs = build_runs(args)
    scorers = build_scorers(scorer_keys(args.score, runs), parse_options(args.option))
    result = evaluate_rewards(runs, records, indices, scorers, images_per_prompt=args.images_per_prompt)
    paths = write_reward_report(result, args.out, header=header(indices, prompts=args.prompts,
                                                                images_per_prompt=args.images_per_prompt))
    print(format_rewards(result["summary"]))
    print(f"wrote {paths['summary']}, {paths['html']} and the plots")
    return 0
