"""Named sampler presets and settings presets (JSON files): what `--preset NAME_OR_FILE` resolves.

A preset fixes some sampling settings; whatever it leaves unset falls back to the model's released
defaults, then to SampleConfig's. Explicit command-line flags override the preset. A settings file
(written by `mirokit eval tune-targets`, or by hand) looks like::

    {"rewards": {"world_quality": 0.8}, "negative_rewards": {"world_quality": 0.1}, "guidance": 2.5,
     "solver": "euler", "steps": 20, "shift": 1.0, "about": {"metric": "shapes", "held_out": 0.61}}

Unknown keys are an error (a typo must not be silently ignored); "about" is free-form provenance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mirokit.sampling.solvers import SOLVERS


@dataclass(kw_only=True)
class SamplingPreset:
    """Sampling settings; None = not set by this preset."""

    rewards: dict[str, float | None] | None = None
    """positive reward targets {key: value in [0, 1] or None = missing}; unnamed keys keep the default 1.0"""
    negative_rewards: dict[str, float | None] | None = None
    """targets of the negative guidance branch; unnamed keys keep the default 0.0"""
    guidance: float | None = None
    """joint text+reward guidance scale w"""
    text_guidance: float | None = None
    """separate text guidance scale (with reward_guidance)"""
    reward_guidance: float | None = None
    """separate reward guidance scale (with text_guidance)"""
    solver: str | None = None
    """ODE solver (mirokit.sampling.solvers.SOLVERS)"""
    steps: int | None = None
    """ODE steps"""
    shift: float | None = None
    """time shift of the signal-level grid"""
    about: dict = field(default_factory=dict)
    """free-form provenance (which search produced it, its scores); not used for sampling"""

    def __post_init__(self):
        for name in ("rewards", "negative_rewards"):
            targets = getattr(self, name)
            if targets is None:
                continue
            if not isinstance(targets, dict):
                raise ValueError(f"preset {name} must be a {{key: value}} object, got {targets!r}")
            for key, value in targets.items():
                if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                    raise ValueError(f"preset {name}.{key} must be a number or null, got {value!r}")
        for name in ("guidance", "text_guidance", "reward_guidance", "shift"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise ValueError(f"preset {name} must be a finite number, got {value!r}")
        if self.solver is not None and self.solver not in SOLVERS:
            raise ValueError(f"preset solver {self.solver!r} is unknown; known: {', '.join(SOLVERS)}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"preset steps must be an integer >= 1, got {self.steps!r}")
        if self.shift is not None and self.shift <= 0:
            raise ValueError(f"preset shift must be > 0, got {self.shift}")

    def to_json(self) -> dict:
        """The set fields as a JSON-ready dict ("about" only when not empty)."""
        out = {k: v for k, v in asdict(self).items() if v is not None and k != "about"}
        if self.about:
            out["about"] = self.about
        return out

    @classmethod
    def from_json(cls, data: dict, *, source: str = "preset") -> "SamplingPreset":
        """A dict (parsed JSON) -> preset; unknown keys raise a one-line ValueError naming `source`."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a preset must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown preset key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None


MISSING_WORDS = ("nan", "none", "missing")
"""Words that mean "reward missing" where a target value is expected."""


def parse_number(raw: str, context: str, *, allow_missing: bool = False) -> float | None:
    """A command-line value -> finite float (or None for nan/none/missing when `allow_missing`); one-line
    ValueError naming `context` otherwise."""
    if allow_missing and raw.strip().lower() in MISSING_WORDS:
        return None
    try:
        value = float(raw)
    except ValueError:
        hint = " (use nan for 'missing')" if allow_missing else ""
        raise ValueError(f"{context}: {raw!r} is not a number{hint}") from None
    if not math.isfinite(value):
        raise ValueError(f"{context}: values must be finite")
    return value


SAMPLER_PRESETS: dict[str, SamplingPreset] = {
    "official": SamplingPreset(solver="euler", steps=50, guidance=7.0, shift=1.0,
                               about={"description": "the official MIRO sampler: Euler, 50 steps, guidance 7"}),
    "fast": SamplingPreset(solver="ab2", steps=6, shift=1.0,
                           about={"description": "second-order Adams-Bashforth, 6 steps: the fewest network "
                                  "evaluations that matched the official 50-step Euler sampler on ShapesEval and "
                                  "every reward (95% intervals) on the demo's MIRO model (BENCHMARKS.md, sampling "
                                  "cost); guidance stays the model's. Check it on your model with `mirokit eval "
                                  "sweep --reference official` before relying on it"}),
}
"""Built-in named presets (`--preset official`)."""


def load_preset(name_or_file: str | Path) -> SamplingPreset:
    """A built-in preset name or a JSON settings file -> SamplingPreset (one-line errors for unknown names,
    missing or malformed files)."""
    name = str(name_or_file)
    if name in SAMPLER_PRESETS:
        preset = SAMPLER_PRESETS[name]
        return SamplingPreset(**{f.name: getattr(preset, f.name) for f in fields(preset)})
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"preset {name!r} is neither a built-in preset ({', '.join(SAMPLER_PRESETS)}) "
                                f"nor a JSON file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"preset file {path} is not valid JSON ({err})") from None
    return SamplingPreset.from_json(data, source=f"preset file {path}")


def save_preset(preset: SamplingPreset, path: str | Path) -> Path:
    """Write `preset` as JSON to `path` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(preset.to_json(), indent=2) + "\n")
    return path
