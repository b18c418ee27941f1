"""Named sampling presets and preset files: what `--preset NAME_OR_FILE` (and `preset=` in Python) resolves.

A preset is a partial `SamplingSettings` (mirokit.sampling.settings): the fields it sets, as a dict; what it
leaves unset falls back to the model's defaults, then to the official sampler; explicit settings override it
(`resolve`). A preset file (written by `mirokit eval tune-targets`, or by hand) looks like::

    {"rewards": {"world_quality": 0.8}, "negative_rewards": {"world_quality": 0.1}, "guidance": 2.5,
     "solver": "euler", "steps": 20, "shift": 1.0, "about": {"metric": "shapes", "held_out": 0.61}}

Unknown keys are an error (a typo must not be silently ignored); "about" is free-form provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

from mirokit.atomic import write_json_atomic
from mirokit.sampling.settings import PROVENANCE, SamplingSettings, check_partial

SAMPLER_PRESETS: dict[str, dict] = {
    "official": {"solver": "euler", "steps": 50, "guidance": 7.0, "shift": 1.0,
                 "about": {"description": "the official MIRO sampler: Euler, 50 steps, guidance 7"}},
    "fast": {"solver": "ab2", "steps": 6, "shift": 1.0,
             "about": {"description": "second-order Adams-Bashforth, 6 steps: the fewest network evaluations that "
                       "matched the official 50-step Euler sampler on ShapesEval and every reward (95% intervals) "
                       "on the demo's MIRO model (BENCHMARKS.md, sampling cost); guidance stays the model's. Check "
                       "it on your model with `mirokit eval sweep --reference official` before relying on it"}},
}
"""Built-in named presets (`--preset official`)."""

def load_preset(name_or_file: str | Path | None) -> dict:
    """A built-in preset name or a JSON preset file -> the partial settings it sets ({} for None); one-line
    errors for unknown names, missing or malformed files and unknown keys."""
    if name_or_file is None:
        return {}
    name = str(name_or_file)
    if name in SAMPLER_PRESETS:
        return json.loads(json.dumps(SAMPLER_PRESETS[name]))  # a deep copy
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"preset {name!r} is neither a built-in preset ({', '.join(SAMPLER_PRESETS)}) "
                                f"nor a JSON file")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:  # ValueError: not UTF-8, not JSON, a 5000-digit number
        raise ValueError(f"preset file {path} is not valid JSON ({err})") from None
    return check_partial(data, f"preset file {path}")


def save_preset(settings: SamplingSettings | dict, path: str | Path, about: dict | None = None) -> Path:
    """Write a preset file (a SamplingSettings' sampling fields, or a checked partial dict, plus `about`
    provenance) to `path` (parents created); returns the path."""
    data = settings.to_preset() if isinstance(settings, SamplingSettings) else check_partial(settings, "preset")
    if about:
        data[PROVENANCE] = about
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, data)
