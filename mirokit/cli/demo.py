"""`mirokit demo`: MIRO against a no-reward baseline on the shapes world, on a CPU, within a time budget
(the stages are in mirokit.world.demo)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from mirokit.sampling.solvers import SOLVERS
    from mirokit.world.demo import CONTROL_OTHERS, EVAL_SHARE, DemoConfig

    d = DemoConfig()
    p = sub.add_parser(
        "demo", help="MIRO vs a baseline on the built-in shapes world (CPU, within --minutes)",
        description="End-to-end on CPU with nothing downloaded: generate the demo's shapes world, score it with the "
                    "built-in rewards (world_alignment, world_quality, world_composition), calibrate, encode it with "
                    "the shipped world autoencoder, measure this machine and fix the training steps to fit the "
                    "budget, train a no-reward baseline and MIRO side by side with the same steps, sample every "
                    "ShapesEval prompt from both, sweep each reward's target, and write OUT/report.html (tables "
                    "with 95%% intervals, figures) and OUT/summary.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=d.out_dir, help="output folder (replaced)")
    p.add_argument("--minutes", type=float, default=d.minutes,
                   help="wall-clock budget of the whole demo: a faster machine trains more steps, never longer")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per model (skips the measurement; the budget no longer applies)")
    p.add_argument("--samples", type=int, default=None,
                   help=f"world samples to generate and score (default: enough that training sees each at most "
                        f"{d.max_epochs:g} times, at least {d.min_samples})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="training batch size")
    p.add_argument("--eval-prompts", type=int, default=d.eval_prompts,
                   help="ShapesEval prompts sampled per model (553 = all; fewer: spread over the file)")
    p.add_argument("--eval-images", type=int, default=None,
                   help=f"images per ShapesEval prompt (default: 2 if that evaluation fits in {EVAL_SHARE * 100:.0f}%% of the "
                        f"budget, else 1)")
    p.add_argument("--control-prompts", type=int, default=d.control_prompts,
                   help="prompts per point of the controllability sweep")
    p.add_argument("--sample-steps", type=int, default=d.sample_steps, help="ODE steps when sampling")
    p.add_argument("--solver", default=d.solver, choices=SOLVERS, help="ODE solver when sampling")
    p.add_argument("--guidance", type=float, default=d.guidance, help="joint guidance scale w")
    p.add_argument("--control-guidance", type=float, default=None,
                   help="joint guidance scale of the controllability sweep (default: --guidance)")
    p.add_argument("--control-others", default=d.control_others, choices=tuple(CONTROL_OTHERS),
                   help="the other rewards' targets while the controllability sweep varies one (default: missing)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the world, the weights and the noise")
    p.add_argument("--official-negative", action="store_true",
                   help="also sample MIRO guided away from the official negative targets (every reward 0, empty "
                        "prompt) as an extra report row")
    p.add_argument("--quality-mix", type=_target_or_none, default=d.quality_mix, metavar="TARGET|none",
                   help=f"also sample MIRO with world_quality's target at TARGET and the others at 1 (a reward mix; "
                        f"default {d.quality_mix:g}; kept when the budget affords it, see README), or none")
    p.add_argument("--started-at", type=float, default=None, metavar="EPOCH_SECONDS",
                   help="count the budget from this time instead of now (`make demo` passes its own start, so the "
                        "install counts too)")
    p.add_argument("--config", default=d.config, help="run config of both models (file or built-in name)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for both models")
    p.set_defaults(func=run)


def _target_or_none(text: str) -> float | None:
    """--quality-mix's value: a number, or none."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or none") from None


def run(args) -> int:
    from mirokit.world.demo import DemoConfig, run_demo
    from mirokit.world.demo_report import terminal_summary

    for name in ("samples", "batch_size", "eval_prompts", "eval_images", "control_prompts", "sample_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.minutes <= 0 or (args.steps is not None and args.steps < 1):
        raise ValueError("--minutes must be > 0 and --steps >= 1")
    cfg = DemoConfig(out_dir=args.out, minutes=args.minutes, steps=args.steps, samples=args.samples,
                     batch_size=args.batch_size, eval_prompts=args.eval_prompts,
                     eval_images=args.eval_images, control_prompts=args.control_prompts,
                     sample_steps=args.sample_steps, solver=args.solver, guidance=args.guidance,
                     control_guidance=args.control_guidance, control_others=args.control_others, seed=args.seed,
                     official_negative=args.official_negative, quality_mix=args.quality_mix,
                     started_at=args.started_at, config=args.config, overrides=list(args.overrides))
    summary = run_demo(cfg)
    print(terminal_summary(summary))
    print(f"done in {summary['seconds']:.0f} s; report: {args.out}/report.html")
    return 0
