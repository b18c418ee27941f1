"""What every evaluation command sets up before it samples: the models and the settings each samples with, the
prompt subset, the reward scorers and the metric, and the header of its summary.

Plain values in, plain values out (no argparse): `mirokit eval rewards | best-of-n | diversity | sweep |
tune-targets` parse their flags and call these. The settings of one model come from
`mirokit.sampling.targets.settings_for` (explicit flags > the model's preset > --preset > the model's defaults).
"""

from __future__ import annotations

from mirokit.evaluate.samples import ModelRun, load_pipes
from mirokit.sampling.targets import settings_for, settings_record

SAMPLER = ("solver", "steps", "shift")
"""the settings a --reference preset decides, whatever the flags say (the sampler being compared)"""


def build_runs(models: dict[str, str], *, presets: dict[str, str] | None = None, preset: str | None = None,
               explicit: dict | None = None, device: str = "auto", text_encoder: str | None = None,
               vae: str | None = None, dtype=None, variant: str | None = None) -> list[ModelRun]:
    """Load the models {name: folder or hub id} and resolve each one's sampling settings -> [ModelRun].

    presets: {model name: preset} overriding `preset` for that model (--model-preset; a name that is not a model
    is a one-line error); explicit: the partial settings given as flags; dtype: the generator's torch dtype while
    sampling (None: as stored); variant: the subfolder of every model. Target keys no model knows are a one-line
    error; a model drops the targets of keys it lacks. Each run's record names the model, its settings, its
    reward keys and the device."""
    from mirokit.distributed import resolve_device

    presets = presets or {}
    unknown = sorted(set(presets) - set(models))
    if unknown:
        raise ValueError(f"--model-preset names {unknown[0]!r}, which is not a --model name ({', '.join(models)})")
    device = str(resolve_device(device))
    pipes = load_pipes(models, device=device, text_encoder=text_encoder, vae=vae, variant=variant, dtype=dtype)
    keys_by_model = {name: pipe.reward_keys for name, pipe in pipes.items()}
    runs = []
    for name, pipe in pipes.items():
        chosen = presets.get(name, preset)
        settings = settings_for(explicit, chosen, pipe.sampler_defaults, pipe.reward_keys, keys_by_model)
        record = {"model": str(models[name]), **settings_record(settings, chosen), "reward_keys": pipe.reward_keys,
                  "device": device}
        runs.append(ModelRun(name=name, pipe=pipe, settings=settings, record=record))
    return runs


def reference_settings(explicit: dict | None, preset: str, pipe):
    """The settings of a --reference preset for `pipe`: the preset's solver, steps and shift (whatever the flags
    say); guidance, targets and the rest as for the swept settings (explicit flags over the preset), so that only
    the sampler differs."""
    others = {k: v for k, v in (explicit or {}).items() if k not in SAMPLER}
    return settings_for(others, preset, pipe.sampler_defaults, pipe.reward_keys)


def scorer_keys(requested: list[str] | None, runs: list[ModelRun]) -> list[str]:
    """The rewards to score: `requested` (--score), else every reward key of the models, in order of appearance."""
    keys = list(dict.fromkeys(requested or [k for run in runs for k in run.pipe.reward_keys]))
    if not keys:
        raise ValueError("no reward to score: the models have no reward keys; name scorers with --score KEY")
    return keys


def selection_keys(select: list[str] | None, score: list[str] | None, runs: list[ModelRun]) -> tuple[list, list]:
    """(the rewards that pick the best of N, every reward to score) of `mirokit eval best-of-n`: --select, else
    the first --score key, else the first model's first reward key."""
    first = score[0] if score else next((k for run in runs for k in run.pipe.reward_keys), None)
    selects = list(select or [first])
    if selects[0] is None:
        raise ValueError("no selection reward: the models have no reward keys; give --select KEY")
    return selects, list(dict.fromkeys([*selects, *(score or [])]))


def load_prompt_set(prompts: str, max_prompts: int | None, seed: int | None) -> tuple[list[dict], list[int]]:
    """(records, indices of the evaluated subset) of a prompt set: `max_prompts` drawn with `seed` (None = 0)."""
    from mirokit.evaluate.samples import choose_prompts, load_prompts

    records = load_prompts(prompts)
    return records, choose_prompts(len(records), max_prompts, seed or 0)


def header(indices: list[int], *, prompts, images_per_prompt: int | None = None, **extra) -> dict:
    """The part of every summary that says what was evaluated: the prompt set, the subset, images per prompt,
    the mirokit version, and `extra` entries."""
    from mirokit import __version__

    return {"prompts": str(prompts), "num_prompts": len(indices), "prompt_indices": indices,
            "images_per_prompt": images_per_prompt, "mirokit_version": __version__, **extra}


def metric_and_scorers(spec: str, keys: list[str], *, prompts: str | None, options: dict | None = None,
                       metric_options: dict | None = None):
    """(metric, {key: scorer}) for the metric `spec` (shapes, geneval, reward:KEY) on `prompts` and the rewards
    `keys`; `options` {reward: {name: value}} (--option) go to the scorers and to a reward:KEY metric's scorer (an
    option for a reward neither scored nor the metric's is a one-line error); `metric_options` (--metric-option)
    are the metric's own keyword options."""
    from mirokit.evaluate.samples import build_scorers
    from mirokit.evaluate.settings_eval import build_metric

    keys = list(dict.fromkeys(keys))
    options = options or {}
    metric_key = spec.split(":", 1)[1] if spec.startswith("reward:") else None
    unknown = sorted(set(options) - set(keys) - {metric_key})
    if unknown:
        raise ValueError(f"--option for {unknown[0]}, which is neither scored nor the metric's reward")
    try:
        metric = build_metric(spec, prompts if (prompts or metric_key) else None, options, metric_options or {})
    except TypeError as err:  # an option the metric does not take
        raise ValueError(f"metric {spec!r}: {err}") from None
    return metric, build_scorers(keys, {k: v for k, v in options.items() if k in keys})


def sweep_plan(specs: list[str], reward_keys: list[str], scored: list[str]) -> tuple[list, list[str]]:
    """(the parsed --sweep specs, the rewards to score: `scored` and every swept reward target's key)."""
    from mirokit.evaluate.sweep import parse_sweep

    sweeps = [parse_sweep(s, reward_keys) for s in specs]
    swept = [name.split(":", 1)[1] for name, _ in sweeps if name.startswith("reward:")]
    return sweeps, list(dict.fromkeys([*scored, *swept]))


def build_extractors(kinds: list[str] | None, options: dict[str, dict]) -> tuple[dict, dict]:
    """({kind: feature extractor}, {kind: its options}) of `mirokit eval diversity` (--features, default clip;
    --feature-option for a kind not extracted is a one-line error)."""
    from mirokit.evaluate.features import build_extractor

    kinds = list(dict.fromkeys(kinds or ["clip"]))
    unknown = sorted(set(options) - set(kinds))
    if unknown:
        raise ValueError(f"--feature-option for {unknown[0]}, which is not among --features ({', '.join(kinds)})")
    return {kind: build_extractor(kind, options.get(kind)) for kind in kinds}, {k: options.get(k, {}) for k in kinds}
