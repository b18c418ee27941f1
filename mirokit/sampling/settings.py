"""One type for every sampling setting, and one rule for which value wins.

`SamplingSettings` holds everything that decides a sample besides the model and the prompt: reward targets,
solver, steps, time shift, guidance (and the signal levels it acts at), seed and batch size. Each field declares
its type, range, help and the surfaces that show it (`mirokit.sampling.options`). Its defaults are the official
MIRO sampler (Euler, 50 steps, joint guidance 7, every reward asked at 1 and guided away from 0).

Partial settings are plain dicts of the same field names (None = not set): what a user gives explicitly
(flags, keyword arguments), a preset (`mirokit.sampling.presets`), the defaults a model was released with.
`resolve(explicit, preset, model_defaults)` merges them, in that order of precedence:
- reward targets merge key by key (an explicit target replaces the preset's for that key only);
- the guidance scales (guidance, text_guidance, reward_guidance) come as a group from the first layer that
  sets any of them, so an explicit joint scale replaces a preset's separate scales and the other way round;
- any other field: the first layer that sets it, else the default.
Every value is checked once, here; a bad one is a one-line ValueError naming its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from mirokit.config import shown
from mirokit.sampling.options import declared, names, option
from mirokit.sampling.solvers import SOLVERS, function_evaluations

GUIDANCE_FIELDS = ("guidance", "text_guidance", "reward_guidance")
TARGET_FIELDS = ("rewards", "negative_rewards")
PROVENANCE = "about"
"""the free-form key of a preset (which search produced it, its scores); never used for sampling"""

_NOT_SWEPT = frozenset({"cli", "call", "preset", "studio"})


@dataclass(kw_only=True)
class SamplingSettings:
    """Everything that decides a sample besides the model and the prompt (defaults: the official sampler).
    Each field declares its type, range, help and surfaces (mirokit.sampling.options)."""

    rewards: dict[str, float | None] = option(
        default_factory=dict, kind="targets", flag="--reward", surfaces=_NOT_SWEPT,
        help="positive reward targets {key: value in [0, 1], or null = missing}; keys not named are asked at 1.0")
    negative_rewards: dict[str, float | None] = option(
        default_factory=dict, kind="targets", flag="--negative-reward", surfaces=_NOT_SWEPT,
        help="targets of the negative (unconditional) guidance branch; keys not named get 0.0")
    solver: str = option(
        "euler", kind="choice", choices=SOLVERS.known,
        help="ODE solver (mirokit.sampling.solvers); network calls per step: heun ~2, midpoint 2, the others 1")
    steps: int = option(50, kind="int", minimum=1, step=1, help="ODE steps over the signal-level grid")
    shift: float = option(1.0, kind="float", minimum=0.0, above=True, step=0.05,
                          help="time shift of the signal-level grid (> 1 spends more steps near the data)")
    guidance: float = option(7.0, kind="float", step=0.25, group="joint", label="w",
                             help="joint text + reward guidance scale w: D = D_c (1 + w) - D_u w")
    text_guidance: float | None = option(
        None, kind="float", optional=True, step=0.25, group="separate", surfaces=_NOT_SWEPT, label="w text",
        help="separate text guidance scale (set with reward_guidance; replaces guidance)")
    reward_guidance: float | None = option(
        None, kind="float", optional=True, step=0.25, group="separate", surfaces=_NOT_SWEPT, label="w reward",
        help="separate reward guidance scale (set with text_guidance)")
    guidance_interval: tuple[float, float] | None = option(
        None, kind="interval", optional=True, step=0.05,
        help="guide only at signal levels gamma in [lo, hi] (0 = noise, 1 = data); outside it only the conditional "
             "branch runs (Kynkaanniemi et al. 2024); null = every step")
    seed: int = option(0, kind="int", minimum=0, step=1, surfaces=frozenset({"cli", "call", "studio"}),
                       help="noise seed: image j of prompt i starts from noise seeded by (seed, i, j)")
    batch_size: int = option(16, kind="int", minimum=1, surfaces=frozenset({"cli", "call"}),
                             help="images per forward batch (each guidance branch multiplies it); does not change "
                                  "the images")

    def __post_init__(self):
        for name, (opt, _) in declared(type(self)).items():
            setattr(self, name, opt.check(name, getattr(self, name)))
        if (self.text_guidance is None) != (self.reward_guidance is None):
            raise ValueError("set both text_guidance and reward_guidance, or neither")

    @property
    def separate_guidance(self) -> bool:
        """True when text and rewards are guided with their own scales (three branches)."""
        return self.text_guidance is not None

    @property
    def function_evaluations(self) -> int:
        """Guided network evaluations per image (solver calls over `steps`)."""
        return function_evaluations(self.solver, self.steps)

    def replace(self, **changes) -> SamplingSettings:
        """A checked copy with some fields changed (the target dicts are copied)."""
        base = {"rewards": dict(self.rewards), "negative_rewards": dict(self.negative_rewards)}
        return replace(self, **{**base, **changes})

    def to_json(self) -> dict:
        """Every field as a JSON-ready dict (for settings.json, summaries and presets)."""
        return asdict(self)

    def to_preset(self) -> dict:
        """The fields a preset carries (the "preset" surface: the sampling itself, not the seed or the batch
        size); optional fields only when set."""
        keep = names(type(self), "preset")
        return {k: v for k, v in self.to_json().items() if k in keep and v is not None}


FIELDS = tuple(f.name for f in fields(SamplingSettings))


def check_partial(data: Mapping | None, source: str) -> dict:
    """A partial settings mapping -> a checked dict of the fields it sets (None values dropped; "about" kept
    as provenance). Unknown keys and bad values are one-line ValueErrors naming `source`."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: sampling settings must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS) - {PROVENANCE}, key=str)
    if unknown:
        raise ValueError(f"{source}: unknown sampling setting(s) {', '.join(map(shown, unknown))}; "
                         f"known: {', '.join(FIELDS)}")
    out = {k: v for k, v in data.items() if v is not None}
    settable = {k: v for k, v in out.items() if k != PROVENANCE}
    if settable.get("text_guidance") is not None or settable.get("reward_guidance") is not None:
        settable.setdefault("text_guidance", None)
        settable.setdefault("reward_guidance", None)
    try:
        SamplingSettings(**settable)  # every value checked against the type's own rules
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None
    return out


def resolve(explicit: Mapping | None = None, preset: Mapping | None = None,
            model_defaults: Mapping | None = None) -> SamplingSettings:
    """Merge partial settings (explicit > preset > model defaults > SamplingSettings' defaults; see the module
    docstring) -> SamplingSettings. Each layer is checked with `check_partial`."""
    layers = [check_partial(explicit, "explicit setting"), check_partial(preset, "preset"),
              check_partial(model_defaults, "the model's sampling defaults")]
    merged: dict[str, Any] = {}
    for name in TARGET_FIELDS:
        merged[name] = {k: v for layer in reversed(layers) for k, v in (layer.get(name) or {}).items()}
    source = next((layer for layer in layers if any(k in layer for k in GUIDANCE_FIELDS)), {})
    guidance = source.get("guidance", next((layer["guidance"] for layer in layers if "guidance" in layer), None))
    merged.update(guidance=guidance, text_guidance=source.get("text_guidance"),
                  reward_guidance=source.get("reward_guidance"))
    for name in FIELDS:
        if name not in merged:
            merged[name] = next((layer[name] for layer in layers if name in layer), None)
    return SamplingSettings(**{k: v for k, v in merged.items() if v is not None})
