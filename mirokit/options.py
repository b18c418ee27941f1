"""Command-line values as plain Python values: NAME=VALUE options, comma-separated lists and ranges.

Each parser takes the strings a user typed and the flag they came with, and raises a one-line ValueError naming
the flag and the item for a malformed one. Every NAME=VALUE item is split by `mirokit.config.split_key_value` (the
one KEY=VALUE parser; numbers of sampling targets, `KEY=0.5`, `KEY=nan`, are `mirokit.config.parse_key_values`).
"""

from __future__ import annotations

from mirokit.config import ConfigError, parse_pairs, split_key_value, yaml_value


def parse_options(items: list[str] | None, flag: str = "--option") -> dict[str, dict]:
    """["clip_score.model=/p", "clip_score.batch_size=8"] -> {"clip_score": {"model": "/p", "batch_size": 8}}
    (values read as YAML scalars)."""
    out: dict[str, dict] = {}
    for item in items or []:
        name, raw = split_key_value(item, flag, "REWARD.NAME=VALUE")
        key, _, opt = name.partition(".")
        if not key or not opt:
            raise ConfigError(f"{flag} {item!r} must look like REWARD.NAME=VALUE")
        out.setdefault(key, {})[opt] = yaml_value(raw)
    return out


def parse_values(items: list[str] | None, flag: str) -> dict:
    """["detector=/m", "device=cuda", "k=3"] -> {"detector": "/m", "device": "cuda", "k": 3} (values read as YAML
    scalars)."""
    return parse_pairs(items, flag, "NAME=VALUE", lambda raw, _: yaml_value(raw), unique=False)


def parse_strings(items: list[str] | None, flag: str) -> dict[str, str]:
    """["clip_score=long", "pick_score=short"] -> {"clip_score": "long", "pick_score": "short"}: the text after the
    first "=" (the caller checks the values); an item without "=" or a key given twice is a one-line error."""
    return parse_pairs(items, flag)


def parse_counts(items: dict[str, str], flag: str) -> dict[str, int]:
    """{"world_quality": "4"} -> {"world_quality": 4}; a value that is not a whole number is a one-line error."""
    out = {}
    for key, raw in items.items():
        try:
            out[key] = int(raw)
        except ValueError:
            raise ValueError(f"{flag} {key}={raw!r}: {raw!r} is not a whole number") from None
    return out


def parse_ints(raw: str, flag: str) -> tuple[int, ...]:
    """"16,32" -> (16, 32); anything else is a one-line error naming the flag."""
    try:
        return tuple(int(c) for c in raw.split(","))
    except ValueError:
        raise ValueError(f"{flag} {raw!r} must be comma-separated integers") from None


def parse_words(raw: str) -> tuple[str, ...]:
    """"positive, negative,," -> ("positive", "negative"): the non-empty comma-separated words, stripped."""
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def parse_range(raw: str | None, flag: str) -> tuple[float, float] | None:
    """"LO,HI" -> (lo, hi) as floats; None stays None; anything else is a one-line error naming the flag."""
    if raw is None:
        return None
    try:
        lo, hi = (float(v) for v in raw.split(","))
    except ValueError:
        raise ValueError(f"{flag} {raw!r} must look like LO,HI") from None
    return lo, hi

