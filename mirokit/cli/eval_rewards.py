"""`mirokit eval rewards`: mean and 95% interval of registered rewards over a prompt set, models side by side."""

from __future__ import annotations

import argparse

from mirokit.cli.eval_common import add_eval_flags, build_runs, header, load_prompt_set, scorer_keys
from mirokit.registry import COMMANDS


@COMMANDS.register("eval.rewards")
def add_parser(esub) -> None:
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
    from mirokit.cli.score import parse_options
    from mirokit.evaluate.reward_eval import evaluate_rewards, format_rewards, write_reward_report
    from mirokit.evaluate.samples import build_scorers

    records, indices = load_prompt_set(args)
    runs = build_runs(args)
    keys = scorer_keys(args, runs)
    scorers = build_scorers(keys, parse_options(args.option))
    result = evaluate_rewards(runs, records, indices, scorers, images_per_prompt=args.images_per_prompt)
    paths = write_reward_report(result, args.out, header=header(args, records, indices))
    print(format_rewards(result["summary"]))
    print(f"wrote {paths['summary']}, {paths['html']} and the plots")
    return 0
