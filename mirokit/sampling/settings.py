"""One type for every sampling setting, and one rule for which value wins.

`SamplingSettings` holds everything that decides a sample besides the model and the prompt: reward targets,
solver, steps, time shift, guidance, seed and batch size. Its defaults are the official MIRO sampler (Euler,
50 steps, joint guidance 7, every reward asked at 1 and guided away from 0).

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

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from mirokit.config import shown
from mirokit.sampling.solvers import SOLVERS, function_evaluations

GUIDANCE_FIELDS = ("guidance", "text_guidance", "reward_guidance")
TARGET_FIELDS = ("rewards", "negative_rewards")
PROVENANCE = "about"
"""the free-form key of a preset (which search produced it, its scores); never used for sampling"""


def _is_finite(value: Any) -> bool:
    """A finite int or float, not a bool (an int too large for a float is not finite either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_targets(name: str, targets: Any) -> dict[str, float | None]:
    if not isinstance(targets, Mapping):
        raise ValueError(f"{name} must be a {{key: value}} mapping, got {targets!r}")
    out = {}
    for key, value in targets.items():
        if value is not None and not _is_finite(value):
            raise ValueError(f"{name}.{shown(key)} must be a number or null (missing), got {value!r}")
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}.{shown(key)}={value!r} is outside [0, 1]: targets are calibrated bins (0 = the "
                             "lowest training scores, 1 = the highest)")
        out[str(key)] = None if value is None else float(value)
    return out


def _finite(name: str, value: Any) -> float:
    if not _is_finite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(kw_only=True)
class SamplingSettings:
    """Everything that decides a sample besides the model and the prompt (defaults: the official sampler)."""

    rewards: dict[str, float | None] = field(default_factory=dict)
    """positive reward targets {key: value in [0, 1], or None = missing}; keys not named are asked at 1.0"""
    negative_rewards: dict[str, float | None] = field(default_factory=dict)
    """targets of the negative (unconditional) guidance branch; keys not named get 0.0"""
    solver: str = "euler"
    """ODE solver, a name of mirokit.sampling.solvers.SOLVERS"""
    steps: int = 50
    """ODE steps over the signal-level grid"""
    shift: float = 1.0
    """time shift of the grid (> 1 spends more steps near the data)"""
    guidance: float = 7.0
    """joint text + reward guidance scale w: D = D_c (1 + w) - D_u w"""
    text_guidance: float | None = None
    """separate text guidance scale (set with reward_guidance; replaces `guidance`)"""
    reward_guidance: float | None = None
    """separate reward guidance scale (set with text_guidance)"""
    seed: int = 0
    """noise seed: image j of prompt i starts from noise seeded by (seed, i, j)"""
    batch_size: int = 16
    """images per forward batch (each guidance branch multiplies it); does not change the images"""

    def __post_init__(self):
        self.rewards = _check_targets("rewards", self.rewards)
        self.negative_rewards = _check_targets("negative_rewards", self.negative_rewards)
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; known: {', '.join(SOLVERS)}")
        self.steps = _count("steps", self.steps, 1)
        self.shift = _finite("shift", self.shift)
        if self.shift <= 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")
        self.guidance = _finite("guidance", self.guidance)
        for name in ("text_guidance", "reward_guidance"):
            if getattr(self, name) is not None:
                setattr(self, name, _finite(name, getattr(self, name)))
        if (self.text_guidance is None) != (self.reward_guidance is None):
            raise ValueError("set both text_guidance and reward_guidance, or neither")
        self.seed = _count("seed", self.seed, 0)
        self.batch_size = _count("batch_size", self.batch_size, 1)

    @property
    def separate_guidance(self) -> bool:
        """True when text and rewards are guided with their own scales (three branches)."""
        return self.text_guidance is not None

    @property
    def function_evaluations(self) -> int:
        """Guided network evaluations per image (solver calls over `steps`)."""
        return function_evaluations(self.solver, self.steps)

    def replace(self, **changes) -> "SamplingSettings":
        """A checked copy with some fields changed (the target dicts are copied)."""
        base = {"rewards": dict(self.rewards), "negative_rewards": dict(self.negative_rewards)}
        return replace(self, **{**base, **changes})

    def to_json(self) -> dict:
        """Every field as a JSON-ready dict (for settings.json, summaries and presets)."""
        return asdict(self)

    def to_preset(self) -> dict:
        """The fields a preset carries (the sampling itself: not the seed or the batch size); separate guidance
        scales only when set."""
        out = {k: v for k, v in self.to_json().items() if k not in ("seed", "batch_size")}
        if not self.separate_guidance:
            out.pop("text_guidance")
            out.pop("reward_guidance")
        return out


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
