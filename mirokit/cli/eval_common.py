"""Flags and set-up shared by `mirokit eval rewards | best-of-n | sweep | tune-targets`: models (NAME=DIR,
repeatable), prompt set, scorers, sampling flags (mirokit.cli.sampling_flags) and --out."""

from __future__ import annotations

from mirokit.cli.sampling_flags import (add_model_flags, add_sampling_flags, check_targets_known, model_dtype,
                                        parse_named, resolve_flags, settings_record, targets_for)


def add_eval_flags(p, *, several: bool = True, prompts_default: str | None = "parti-style", score: bool = True,
                   images_per_prompt: int | None = 1, score_default: str = "the models' reward keys") -> None:
    """The shared flags of an evaluation sub-command (images_per_prompt None: no --images-per-prompt flag)."""
    add_model_flags(p, several=several)
    if several:
        p.add_argument("--model-preset", action="append", metavar="NAME=PRESET",
                       help="a sampling preset for one model only (e.g. the one tune-targets wrote for it); "
                            "overrides --preset for that model (repeatable)")
    p.add_argument("--prompts", default=prompts_default,
                   help="prompt set: parti-style or drawbench-style (built in), or a .txt (one prompt per line, "
                        "optionally CATEGORY<TAB>PROMPT), .tsv (a Prompt column) or .jsonl (\"prompt\" per line) file"
                        + (f" (default {prompts_default})" if prompts_default else ""))
    p.add_argument("--max-prompts", type=int, default=None,
                   help="evaluate a random subset of this many prompts, drawn with --seed (default: all)")
    if images_per_prompt is not None:
        p.add_argument("--images-per-prompt", type=int, default=images_per_prompt,
                       help=f"images per prompt and model (default {images_per_prompt})")
    if score:
        p.add_argument("--score", action="append", metavar="KEY",
                       help=f"a registered reward scorer to report (repeatable; default: {score_default}; "
                            "`mirokit score --list` lists them)")
        p.add_argument("--option", action="append", default=[], metavar="KEY.NAME=VALUE",
                       help="scorer option, e.g. clip_score.model=/path (repeatable)")
    add_sampling_flags(p)
    p.add_argument("--out", required=True, help="output folder: summary.json, PNG plots, report.html")


def build_runs(args, *, several: bool = True) -> list:
    """Load the models and resolve each one's sampling settings -> [ModelRun]."""
    from mirokit.distributed import resolve_device
    from mirokit.evaluate.samples import ModelRun, load_pipes

    if getattr(args, "images_per_prompt", 1) < 1:
        raise ValueError("--images-per-prompt must be >= 1")
    models = parse_named(args.model, "--model") if several else {"model": args.model}
    presets = parse_named(getattr(args, "model_preset", None), "--model-preset")
    unknown = sorted(set(presets) - set(models))
    if unknown:
        raise ValueError(f"--model-preset names {unknown[0]!r}, which is not a --model name ({', '.join(models)})")
    device = str(resolve_device(args.device))
    if several:
        pipes = load_pipes(models, device=device, text_encoder=args.text_encoder, vae=args.vae)
    else:
        from mirokit.pipeline import MiroPipeline

        pipes = {"model": MiroPipeline.from_pretrained(args.model, variant=args.variant, device=device,
                                                       text_encoder=args.text_encoder, vae=args.vae)}
    for pipe in pipes.values():
        pipe.to(dtype=model_dtype(args))
    runs = []
    for name, pipe in pipes.items():
        preset = presets.get(name, args.preset)
        sampling = resolve_flags(args, pipe.sampler_defaults, preset=preset)
        check_targets_known(sampling.rewards, {n: p.reward_keys for n, p in pipes.items()}, "--reward")
        check_targets_known(sampling.negative_rewards, {n: p.reward_keys for n, p in pipes.items()},
                            "--negative-reward")
        sampling = sampling.replace(rewards=targets_for(pipe.reward_keys, sampling.rewards),
                                    negative_rewards=targets_for(pipe.reward_keys, sampling.negative_rewards))
        record = {"model": str(models[name]), **settings_record(sampling, preset), "reward_keys": pipe.reward_keys,
                  "device": device}
        runs.append(ModelRun(name=name, pipe=pipe, settings=sampling, record=record))
    return runs


def scorer_keys(args, runs) -> list[str]:
    """--score keys, else every reward key of the models (in order of appearance)."""
    keys = list(dict.fromkeys(args.score or [k for run in runs for k in run.pipe.reward_keys]))
    if not keys:
        raise ValueError("no reward to score: the models have no reward keys; name scorers with --score KEY")
    return keys


def load_prompt_set(args) -> tuple[list[dict], list[int]]:
    """(records, indices of the evaluated subset) from --prompts / --max-prompts (subset seeded by --seed)."""
    from mirokit.evaluate.samples import choose_prompts, load_prompts

    records = load_prompts(args.prompts)
    return records, choose_prompts(len(records), args.max_prompts, args.seed or 0)


def header(args, records: list[dict], indices: list[int], **extra) -> dict:
    """The part of every summary that says what was evaluated."""
    from mirokit import __version__

    return {"prompts": str(args.prompts), "num_prompts": len(indices), "prompt_indices": indices,
            "images_per_prompt": getattr(args, "images_per_prompt", None), "mirokit_version": __version__, **extra}


def metric_and_scorers(args, spec: str, keys: list[str]):
    """(metric, {key: scorer}) with --option routed to the scorers and to a reward:KEY metric's scorer; an option
    for a reward neither scored nor the metric's is a one-line error."""
    from mirokit.cli.score import parse_options
    from mirokit.evaluate.samples import build_scorers
    from mirokit.evaluate.settings_eval import build_metric

    options = parse_options(args.option)
    metric_key = spec.split(":", 1)[1] if spec.startswith("reward:") else None
    unknown = sorted(set(options) - set(keys) - {metric_key})
    if unknown:
        raise ValueError(f"--option for {unknown[0]}, which is neither scored nor the metric's reward")
    metric_options = {}
    for item in getattr(args, "metric_option", None) or []:
        import yaml

        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--metric-option {item!r} must look like NAME=VALUE")
        metric_options[name] = yaml.safe_load(raw)
    try:
        metric = build_metric(spec, args.prompts if (args.prompts or metric_key) else None, options, metric_options)
    except TypeError as err:  # an option the metric does not take
        raise ValueError(f"metric {spec!r}: {err}") from None
    return metric, build_scorers(keys, {k: v for k, v in options.items() if k in keys})


def add_metric_flags(p, *, required: bool, help_default: str = "") -> None:
    """--metric and --metric-option."""
    p.add_argument("--metric", required=required, default=None,
                   help="the metric: shapes, geneval or reward:KEY" + help_default)
    p.add_argument("--metric-option", action="append", default=[], metavar="NAME=VALUE",
                   help="keyword option of the metric (repeatable), e.g. geneval's detector=/models/mask2former "
                        "or device=cuda")
