"""Flags and set-up shared by `mirokit eval rewards | best-of-n | sweep | tune-targets`: models (NAME=DIR,
repeatable), prompt set, scorers, sampling flags (mirokit.cli.sampling_flags) and --out."""

from __future__ import annotations

from mirokit.cli.sampling_flags import add_model_flags, add_sampling_flags, explicit_settings, model_dtype
from mirokit.config import parse_named


def add_eval_flags(p, *, several: bool = True, prompts_default: str | None = "parti-style", score: bool = True,
                   images_per_prompt: int | None = 1, score_default: str = "the models' reward keys",
                   model_required: bool = True) -> None:
    """The shared flags of an evaluation sub-command (images_per_prompt None: no --images-per-prompt flag;
    model_required False: --model may be left out, e.g. when image folders are evaluated instead)."""
    add_model_flags(p, several=several)
    p._option_string_actions["--model"].required = model_required
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
    """The models of the parsed flags, loaded with their sampling settings (mirokit.evaluate.runs.build_runs)."""
    from mirokit.evaluate.runs import build_runs as load_runs

    if getattr(args, "images_per_prompt", 1) < 1:
        raise ValueError("--images-per-prompt must be >= 1")
    models = parse_named(args.model, "--model") if several else {"model": args.model}
    return load_runs(models, presets=parse_named(getattr(args, "model_preset", None), "--model-preset"),
                     preset=args.preset, explicit=explicit_settings(args), device=args.device,
                     text_encoder=args.text_encoder, vae=args.vae, dtype=model_dtype(args),
                     variant=getattr(args, "variant", None))


def load_prompt_set(args) -> tuple[list[dict], list[int]]:
    """(records, indices of the evaluated subset) from --prompts / --max-prompts (subset seeded by --seed)."""
    from mirokit.evaluate.runs import load_prompt_set as load

    return load(args.prompts, args.max_prompts, args.seed)


def metric_and_scorers(args, spec: str, keys: list[str]):
    """(metric, {key: scorer}) of --metric-style `spec` with --option and --metric-option
    (mirokit.evaluate.runs.metric_and_scorers)."""
    from mirokit.evaluate.runs import metric_and_scorers as build
    from mirokit.options import parse_options, parse_values

    return build(spec, keys, prompts=args.prompts, options=parse_options(args.option),
                 metric_options=parse_values(getattr(args, "metric_option", None), "--metric-option"))


def add_metric_flags(p, *, required: bool, help_default: str = "") -> None:
    """--metric and --metric-option."""
    p.add_argument("--metric", required=required, default=None,
                   help="the metric: shapes, geneval or reward:KEY" + help_default)
    p.add_argument("--metric-option", action="append", default=[], metavar="NAME=VALUE",
                   help="keyword option of the metric (repeatable), e.g. geneval's detector=/models/mask2former "
                        "or device=cuda")
