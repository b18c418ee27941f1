"""What a sampling setting is, declared once: its type, range, help and the surfaces that show it.

Every field of `mirokit.sampling.settings.SamplingSettings` carries an `Option` in its metadata (made with
`option(...)`). Everything else derives from that declaration:
- the checks of `SamplingSettings` (one-line ValueErrors naming the field);
- the command-line flags (`add_arguments`, read back by `explicit_from_args`);
- the keyword arguments of `MiroPipeline.__call__` (`names("call")`);
- the fields a preset file carries (`names("preset")`);
- the controls the studio draws (`studio_controls`, served by its /api/info);
- the settings `mirokit eval sweep` can sweep and how their values are written (`names("sweep")`, `parse_text`);
- the table in docs/CONFIG.md (`markdown_table`).
Adding a setting is one field of SamplingSettings (plus where it acts in sampling).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mirokit.config import shown

SURFACES = frozenset({"cli", "call", "preset", "studio", "sweep"})
"""cli: a flag; call: a keyword of MiroPipeline.__call__; preset: kept in preset files; studio: a control of the
page; sweep: a `mirokit eval sweep --sweep NAME=...` axis."""

KINDS = ("targets", "int", "float", "choice", "interval")


def _is_finite(value: Any) -> bool:
    """A finite int or float, not a bool (an int too large for a float is not finite either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Option:
    """One sampling setting's declaration (see the module docstring)."""

    kind: str
    """targets ({key: value in [0, 1] or None}), int, float, choice (a name of `choices()`), interval ([lo, hi])"""
    help: str
    """one sentence: what the setting does"""
    minimum: float | None = None
    """smallest allowed value (int, float)"""
    above: bool = False
    """the value must be strictly greater than `minimum`"""
    optional: bool = False
    """None is a value ("not used")"""
    choices: Callable[[], Sequence[str]] | None = None
    """the allowed names (choice), read when needed (solvers register themselves)"""
    surfaces: frozenset = SURFACES
    """where the setting shows (SURFACES)"""
    flag: str | None = None
    """the command-line flag when it is not --NAME-WITH-DASHES (targets: --reward)"""
    step: float | None = None
    """the studio control's step"""
    group: str | None = None
    """studio: "joint" / "separate" guidance controls (shown by the guidance-kind switch)"""
    label: str | None = None
    """studio: the control's label when it is not the name with spaces"""

    def check(self, name: str, value: Any) -> Any:
        """`value` checked and normalised (ints stay ints, floats become float, intervals a (lo, hi) tuple of
        floats); a bad value is a one-line ValueError naming `name`."""
        if value is None and self.optional:
            return None
        if self.kind == "targets":
            return _check_targets(name, value)
        if self.kind == "choice":
            known = list(self.choices())
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")
            return value
        if self.kind == "interval":
            return _check_interval(name, value)
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
                raise ValueError(f"{name} must be an integer >= {self.minimum:g}, got {value!r}")
            return value
        if not _is_finite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.minimum is not None and (value <= self.minimum if self.above else value < self.minimum):
            raise ValueError(f"{name} must be {'>' if self.above else '>='} {self.minimum:g}, got {value}")
        return float(value)

    def parse_text(self, name: str, text: str, where: str, *, checked: bool = True) -> Any:
        """One value written as text (a flag's argument, a sweep value) -> the value (checked unless not
        `checked`: flags are checked with the other layers by `resolve`); a one-line ValueError naming `where`.
        Intervals are LO:HI or `full` (no interval); optional values take `none`."""
        text = text.strip()
        check = self.check if checked else (lambda _name, value: value)
        try:
            if self.optional and text.lower() in ("none", "full"):
                return None
            if self.kind == "interval":
                lo, sep, hi = text.partition(":")
                if not sep:
                    raise ValueError(f"must look like LO:HI (signal levels in [0, 1]) or full, got {text!r}")
                return check(name, (_number(lo), _number(hi)))
            if self.kind == "int":
                number = _number(text)
                if not number.is_integer():
                    raise ValueError(f"must be an integer, got {text!r}")
                return check(name, int(number))
            if self.kind == "float":
                return check(name, _number(text))
            return check(name, text)
        except ValueError as err:
            raise ValueError(f"{where}: {str(err).removeprefix(name + ' ')}") from None

    def flag_name(self, name: str) -> str:
        """The command-line flag of the setting `name`."""
        return self.flag or "--" + name.replace("_", "-")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {text!r}")
    return value


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


def _check_interval(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or len(value) != 2 \
            or not all(_is_finite(v) for v in value):
        raise ValueError(f"{name} must be [lo, hi] (two signal levels in [0, 1]) or null, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"{name} must have 0 <= lo < hi <= 1 (signal levels: 0 = noise, 1 = data), got {value!r}")
    return lo, hi


def option(default: Any = None, *, default_factory: Callable | None = None, **declaration) -> Any:
    """A dataclass field carrying its `Option(**declaration)` in its metadata."""
    metadata = {"option": Option(**declaration)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(settings_type) -> dict[str, tuple[Option, Any]]:
    """{name: (Option, default)} of a settings dataclass, in field order."""
    from dataclasses import MISSING, fields

    out = {}
    for f in fields(settings_type):
        default = f.default_factory() if f.default is MISSING else f.default
        out[f.name] = (f.metadata["option"], default)
    return out


def names(settings_type, surface: str) -> list[str]:
    """The settings shown on `surface` (SURFACES), in field order."""
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; known: {', '.join(sorted(SURFACES))}")
    return [name for name, (opt, _) in declared(settings_type).items() if surface in opt.surfaces]


def add_arguments(parser: argparse.ArgumentParser, settings_type, *, targets: bool = True) -> None:
    """Add a flag per setting of the "cli" surface to `parser` (targets as repeatable KEY=VALUE flags, skipped
    when not `targets`); every flag defaults to None (= not given: the preset's, else the model's, else the
    declared default)."""
    for name, (opt, default) in declared(settings_type).items():
        if "cli" not in opt.surfaces or (opt.kind == "targets" and not targets):
            continue
        if opt.kind == "targets":
            parser.add_argument(opt.flag_name(name), dest=name, action="append", metavar="KEY=VALUE",
                                help=f"{opt.help} (repeatable; nan = missing)")
            continue
        shown_default = "none" if default is None else default
        kwargs: dict[str, Any] = {"dest": name, "default": None,
                                  "help": f"{opt.help} (default: the preset's, else the model's, else {shown_default})"}
        if opt.kind == "choice":
            kwargs["choices"] = list(opt.choices())
        else:
            kwargs["type"] = _flag_type(name, opt)
            kwargs["metavar"] = "LO:HI" if opt.kind == "interval" else name.upper()
        parser.add_argument(opt.flag_name(name), **kwargs)


def _flag_type(name: str, opt: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return opt.parse_text(name, text, opt.flag_name(name), checked=False)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).partition(": ")[2]) from None
    convert.__name__ = opt.kind  # argparse names the type in its message
    return convert


def explicit_from_args(args: argparse.Namespace, settings_type, parse_targets: Callable) -> dict:
    """The settings given on a command line built by `add_arguments`, as a partial settings dict (unset flags
    None); target flags go through `parse_targets(items, flag)`."""
    out = {}
    for name, (opt, _) in declared(settings_type).items():
        if "cli" not in opt.surfaces:
            continue
        value = getattr(args, name, None)
        out[name] = parse_targets(value, opt.flag_name(name)) if opt.kind == "targets" else value
    return out


def studio_controls(settings_type) -> list[dict]:
    """The studio's sampler controls, one JSON record per setting of the "studio" surface (targets are drawn by
    the page's reward table): name, kind, help, default, minimum, step, choices, group, label, optional,
    surfaces."""
    out = []
    for name, (opt, default) in declared(settings_type).items():
        if "studio" not in opt.surfaces or opt.kind == "targets":
            continue
        out.append({"name": name, "kind": opt.kind, "help": opt.help,
                    "default": list(default) if isinstance(default, tuple) else default, "minimum": opt.minimum,
                    "step": opt.step, "choices": list(opt.choices()) if opt.choices else None, "group": opt.group,
                    "label": opt.label or name.replace("_", " "),
                    "optional": opt.optional, "surfaces": sorted(opt.surfaces)})
    return out


def markdown_table(settings_type) -> str:
    """A markdown table of every setting: name, type, default, where it shows, what it does."""
    rows = ["| setting | type | default | shown in | what it does |", "|---|---|---|---|---|"]
    order = ("cli", "call", "preset", "studio", "sweep")
    for name, (opt, default) in declared(settings_type).items():
        where = ", ".join(s for s in order if s in opt.surfaces)
        value = "{}" if default == {} else ("null" if default is None else default)
        rows.append(f"| `{name}` | {opt.kind} | `{value}` | {where} | {opt.help} |")
    return "\n".join(rows)


def _as_text(value: Any) -> str:
    """A value as its flag argument (LO:HI for an interval; repr keeps floats exact)."""
    if isinstance(value, tuple):
        return ":".join(repr(v) for v in value)
    return value if isinstance(value, str) else repr(value)


def to_argv(settings, skip: Sequence[str] = ()) -> list[str]:
    """A SamplingSettings as the command-line flags that give it back (settings of the "cli" surface; unset
    optional ones and the names in `skip` left out): ["--reward", "a=1.0", "--steps", "50", ...]."""
    argv: list[str] = []
    for name, (opt, _) in declared(type(settings)).items():
        value = getattr(settings, name)
        if "cli" not in opt.surfaces or name in skip or value is None:
            continue
        if opt.kind == "targets":
            for key, target in value.items():
                argv += [opt.flag_name(name), f"{key}={'nan' if target is None else repr(target)}"]
        else:
            argv += [opt.flag_name(name), _as_text(value)]
    return argv


def to_keywords(settings, skip: Sequence[str] = ()) -> str:
    """A SamplingSettings as the keyword arguments of MiroPipeline.__call__ that give it back (the "call"
    surface; unset optional ones and `skip` left out): "rewards={'a': 1.0}, steps=50, ..."."""
    return ", ".join(f"{name}={getattr(settings, name)!r}" for name, (opt, _) in declared(type(settings)).items()
                     if "call" in opt.surfaces and name not in skip and getattr(settings, name) is not None)
