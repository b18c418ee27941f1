"""What the page asks for -> checked pipeline calls on identical noise.

A request is a JSON object: `mode` (one of MODES), `model`, `prompt`, the sampling fields of
`MiroPipeline.__call__` (preset, num_images and the "studio" surface of SamplingSettings: rewards,
negative_rewards, solver, steps, shift, guidance, text_guidance, reward_guidance, guidance_interval, seed) and the
mode's own fields:

- generate:     num_images images with the asked settings;
- sweep:        `sweep_key`'s target at `points` values 0 -> 1, the rest as asked, one image each on one noise;
- pareto:       `pareto_keys` (two keys) on a `points` x `points` grid of targets, one image each on one noise;
- ask_select:   `select_key` asked at 1.0 (one image), beside the best of `pool` images with that key missing
                (selected by its measured score): the cost of each in network evaluations;
- draft_final:  the `fast` preset, then the `official` sampler, on the same noise;
- ab:           the same settings on `model` and `model_b`, same noise.

Every call asks for image indices 0..n-1 of prompt 0 with one seed, so "same noise" holds by construction
(mirokit.sampling.noise). Limits (`Limits`) are refused with a one-line ValueError the page shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mirokit.config import shown
from mirokit.sampling import SamplingSettings, check_partial, resolve
from mirokit.sampling.options import names
from mirokit.sampling.presets import load_preset
from mirokit.studio.jobs import Call

MODES = ("generate", "sweep", "pareto", "ask_select", "draft_final", "ab")
SAMPLING_FIELDS = tuple(names(SamplingSettings, "studio"))
"""the sampling settings a request may set (the "studio" surface of SamplingSettings' fields)"""


@dataclass
class Limits:
    """Per-request limits of a studio (`mirokit studio --max-images ...`)."""

    max_images: int = 16
    """images one request may produce (all cells, pools included)"""
    max_steps: int = 100
    """ODE steps per image"""
    max_points: int = 9
    """points of a sweep strip (per axis of a two-reward grid)"""
    max_prompt_chars: int = 500


def _number(request: dict, name: str, default, kind=int, low=None, high=None):
    value = default if request.get(name) is None else request.get(name)  # null: the default
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float)
                                                                          and not math.isfinite(value)):
        raise ValueError(f"{name} must be a number, got {value!r}")  # (an int is finite, however large)
    if kind is int:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return kind(value)


def _key(request: dict, name: str, keys: list[str]) -> str:
    key = request.get(name)
    if key not in keys:
        raise ValueError(f"{name} must be one of the model's reward keys ({', '.join(keys)}), got {key!r}")
    return key


def sampling_kwargs(request: dict, keys: list[str], limits: Limits, sampler_defaults: dict) -> dict:
    """The checked keyword arguments of MiroPipeline.__call__ shared by every call of the request (the preset
    already merged in), with the settings they resolve to under "resolved"."""
    for name in ("rewards", "negative_rewards"):
        if not isinstance(request.get(name) or {}, dict):
            raise ValueError(f"{name} must be a {{key: value}} object, got {request.get(name)!r}")
        unknown = sorted(set(request.get(name) or {}) - set(keys))
        if unknown:
            raise ValueError(f"{name}: the model has no reward {', '.join(map(shown, unknown))}; "
                             f"its keys: {', '.join(keys)}")
    preset = request.get("preset") or None
    if preset is not None and not isinstance(preset, (str, dict)):
        raise ValueError(f"preset must be a name or a settings object, got {preset!r}")
    try:
        preset_fields = load_preset(preset) if isinstance(preset, str) else check_partial(preset, "preset")
    except FileNotFoundError as err:  # the page shows ValueErrors; anything else would be a server error
        raise ValueError(str(err)) from None
    unknown = sorted(set(preset_fields.get("rewards") or {}) | set(preset_fields.get("negative_rewards") or {}))
    unknown = [k for k in unknown if k not in keys]
    if unknown:
        raise ValueError(f"the preset names reward(s) the model lacks: {', '.join(map(shown, unknown))} "
                         f"(its keys: {', '.join(keys)})")
    explicit = {name: request.get(name) for name in SAMPLING_FIELDS if request.get(name) is not None}
    settings = resolve(explicit, preset_fields, sampler_defaults)
    if settings.steps > limits.max_steps:
        raise ValueError(f"steps must be at most {limits.max_steps} here, got {settings.steps}")
    kwargs = {k: v for k, v in settings.to_json().items() if k != "batch_size"}
    return {**kwargs, "resolved": settings}


def plan(request: dict, models: dict, limits: Limits) -> list[Call]:
    """The calls of `request` on `models` ({name: MiroPipeline}); a bad request is a one-line ValueError."""
    if not isinstance(request, dict):
        raise ValueError("a request must be a JSON object")
    mode = request.get("mode", "generate")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    name = request.get("model") or next(iter(models))
    if not isinstance(name, str) or name not in models:
        raise ValueError(f"unknown model {name!r}; loaded: {', '.join(models)}")
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("write a prompt first")
    if len(prompt) > limits.max_prompt_chars:
        raise ValueError(f"the prompt is longer than {limits.max_prompt_chars} characters")
    pipe = models[name]
    keys = pipe.reward_keys
    base = sampling_kwargs(request, keys, limits, pipe.sampler_defaults)
    settings = base.pop("resolved")
    fevals = settings.function_evaluations
    points = _number(request, "points", 5, int, 2, limits.max_points)

    def call(model: str, label: str, n: int = 1, meta: dict | None = None, **changes) -> Call:
        kwargs = {**base, **changes, "prompt": prompt, "num_images": n}
        s = resolve({k: v for k, v in kwargs.items() if k in SAMPLING_FIELDS}, None, None)
        return Call(model=model, kwargs=kwargs, label=label, cost=n * s.function_evaluations, meta=meta or {},
                    steps=s.steps * math.ceil(n / s.batch_size))  # generate's callback counts over every batch

    targets = [round(i / (points - 1) * 63) / 63 for i in range(points)]  # on the model's 1/63 grid
    if mode == "generate":
        n = _number(request, "num_images", 1, int, 1, limits.max_images)
        calls = [call(name, "", n)]
    elif mode == "sweep":
        key = _key(request, "sweep_key", keys)
        calls = [call(name, f"{key} = {t:.3f}", 1, {"key": key, "target": t},
                      rewards={**base["rewards"], key: t}) for t in targets]
    elif mode == "pareto":
        pair = request.get("pareto_keys") or []
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError("pareto_keys must name two different reward keys")
        a, b = (_key({"k": k}, "k", keys) for k in pair)
        if points * points > limits.max_images:
            raise ValueError(f"a {points}x{points} grid is more than {limits.max_images} images; use fewer points")
        calls = [call(name, f"{a} = {ta:.3f}, {b} = {tb:.3f}", 1, {"keys": [a, b], "targets": [ta, tb]},
                      rewards={**base["rewards"], a: ta, b: tb}) for ta in targets for tb in targets]
    elif mode == "ask_select":
        key = _key(request, "select_key", keys)
        pool = _number(request, "pool", 8, int, 2, limits.max_images - 1)
        calls = [call(name, f"ask: {key} = 1", 1, {"role": "ask", "key": key, "evaluations": fevals},
                      rewards={**base["rewards"], key: 1.0}),
                 call(name, f"select: best of {pool} by {key}", pool,
                      {"role": "pool", "key": key, "evaluations": pool * fevals},
                      rewards={**base["rewards"], key: None})]
    elif mode == "draft_final":
        n = _number(request, "num_images", 1, int, 1, max(1, limits.max_images // 2))
        # only the sampler changes (solver, steps, shift): the targets and the guidance stay as asked
        calls = [call(name, f"{role} ({p['solver']}, {p['steps']} steps)", n, {"role": role},
                      solver=p["solver"], steps=p["steps"], shift=p["shift"])
                 for role, p in (("draft", load_preset("fast")), ("final", load_preset("official")))]
    else:  # ab
        other = request.get("model_b")
        if not isinstance(other, str) or other not in models or other == name:
            raise ValueError(f"model_b must be another loaded model ({', '.join(m for m in models if m != name)})")
        mc_a, mc_b = models[name].generator.config, models[other].generator.config
        if (mc_a.image_channels, mc_a.image_size) != (mc_b.image_channels, mc_b.image_size):
            raise ValueError(f"{name} and {other} sample different shapes: they cannot share noise")
        n = _number(request, "num_images", 1, int, 1, max(1, limits.max_images // 2))
        theirs = models[other].reward_keys  # targets of keys model B lacks are dropped for B (a baseline has none)
        calls = [call(name, name, n, {"role": "a"}),
                 call(other, other, n, {"role": "b"}, **{f: {k: v for k, v in base[f].items() if k in theirs}
                                                         for f in ("rewards", "negative_rewards")})]
    images = sum(c.kwargs["num_images"] for c in calls)
    if images > limits.max_images:
        raise ValueError(f"this asks for {images} images; the limit here is {limits.max_images}")
    return calls
