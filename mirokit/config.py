"""Plain-dataclass configs: build from dicts/YAML, reject unknown keys, apply `a.b=value` overrides; and the one
parser of `KEY=VALUE` items (overrides, reward targets, NAME=PATH; mirokit.options builds the --option parsers
on it): `split_key_value`, `yaml_value` and the typed wrappers `parse_pairs`, `parse_key_values`, `parse_named`.

Every config in mirokit is a keyword-only dataclass living beside the class that uses it.
This module only knows how to turn nested dicts into those dataclasses and back.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A one-line, user-facing configuration error (unknown key, wrong type, bad file)."""


class KindConfig:
    """Base of the config dataclass of a registered component kind.

    A family (e.g. backbones) has one base dataclass deriving from this with `registry` set to the
    family's `mirokit.registry.Registry`; each kind's config derives from that base and gets its
    `kind` when the kind is registered. In a YAML/dict config such a section is
    `{kind: NAME, **that kind's keys}` (a bare string is the kind with its defaults; a mapping
    without `kind` keeps the default's kind), and `to_dict` writes `kind` first.
    """

    kind: ClassVar[str] = ""
    registry: ClassVar[Any] = None


def shown(key: Any) -> str:
    """A key as one-line error messages show it: as is, or quoted with escapes when it is not a plain string (a
    newline in a key would break the line; an empty or non-string key would vanish)."""
    return key if isinstance(key, str) and key and key.isprintable() else repr(key)


def _kind_section(tp: type, value: Any, default: Any, where: str) -> Any:
    """Build the kind config named by `value` ({kind: ..., ...} or "kind") for a field typed `tp`."""
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ConfigError(f"config {where}: expected a mapping with a kind, got {type(value).__name__}")
    value = dict(value)
    kind = value.pop("kind", None) or getattr(default, "kind", None)
    if kind and not isinstance(kind, str):
        raise ConfigError(f"config {where}kind: expected a name, got {kind!r}")
    if not kind:
        raise ConfigError(f"config {where}: missing kind; known: {', '.join(tp.registry.known())}")
    try:
        cls = tp.registry.config_class(kind)
    except ValueError as err:
        raise ConfigError(f"config {where}kind: {err}") from None
    if not issubclass(cls, tp):
        raise ConfigError(f"config {where}kind: {kind!r} is a {cls.__name__}, not a {tp.__name__}")
    return from_dict(cls, value, where=where)


def _wrong_type(tp: Any, value: Any) -> str:
    """Why `value` cannot be a `tp` (a bool, int, float or str, or a list/tuple of one), or "" (other types, left
    to the config's own checks)."""
    if tp in (bool, int, str):
        ok = isinstance(value, tp) and (tp is bool or not isinstance(value, bool))
        return "" if ok else f"expected {tp.__name__}"
    if tp is float:
        try:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        except OverflowError:  # an int too large for a float
            ok = False
        return "" if ok else "expected a finite number"
    if typing.get_origin(tp) in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return "expected a list"
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return next((f"{why} items" for v in value if len(set(args)) == 1 and (why := _wrong_type(args[0], v))), "")
    return ""


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def from_dict(cls: type[T], data: dict | None, *, where: str = "") -> T:
    """Build dataclass `cls` from a (nested) dict; unknown keys raise `ConfigError` naming them."""
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if isinstance(data, dict) and issubclass(cls, KindConfig) and "kind" in data:
        if data["kind"] != cls.kind:  # a family base (or another kind): dispatch on the registry
            return _kind_section(cls, data, None, where)
        data = {k: v for k, v in data.items() if k != "kind"}
    if not isinstance(data, dict):
        raise ConfigError(f"config {where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    if issubclass(cls, KindConfig) and not cls.kind and cls.registry is not None:
        raise ConfigError(f"config {where or cls.__name__}: missing kind; known: {', '.join(cls.registry.known())}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be numbers or null too
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + shown(k) for k in unknown)}; "
            f"known keys of {where or cls.__name__ + '.'}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = _unwrap_optional(hints[name])
        if isinstance(tp, type) and issubclass(tp, KindConfig) and not isinstance(value, tp):
            value = _kind_section(tp, value, _field_default(fields[name]), f"{where}{name}.")
        elif dataclasses.is_dataclass(tp) and not (value is None and tp is not hints[name]):
            value = from_dict(tp, value, where=f"{where}{name}.")  # null: the defaults; not a mapping: an error
        elif tp is float and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                value = float(value)
            except (ValueError, OverflowError):
                raise ConfigError(f"config key {where}{name}: expected a number, got {value!r}") from None
        elif tp is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # out_dir=2024: YAML read a number where a name was meant
        elif typing.get_origin(tp) in (list, tuple) and isinstance(value, (list, tuple)):
            value = list(value) if typing.get_origin(tp) is list else tuple(value)
        optional = tp is not hints[name] or fields[name].default is None
        if not (value is None and optional) and (why := _wrong_type(tp, value)):  # "abc" for steps fails later
            raise ConfigError(f"config key {where}{name}: {why}, got {value!r}")
        kwargs[name] = value
    required = [f.name for f in fields.values() if f.init and f.name not in kwargs
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise ConfigError(f"config {where.rstrip('.') or cls.__name__}: missing required key(s) "
                          f"{', '.join(where + k for k in required)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config {where or cls.__name__}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain JSON/YAML-ready dict (a KindConfig gets its `kind` key first)."""
    if dataclasses.is_dataclass(obj):
        head = {"kind": obj.kind} if isinstance(obj, KindConfig) else {}
        return head | {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; a missing or malformed file raises a one-line `ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place; returns it.

    Setting a section's `kind` to a new value starts that section afresh (its other keys from the file
    belonged to the old kind); keys given by other overrides still apply.
    """
    given: set[tuple[str, ...]] = set()
    for item in overrides:
        key, raw = split_key_value(item, "override", "key.sub=value")
        value = yaml_value(raw)
        node = data
        parts = tuple(key.strip().split("."))
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if isinstance(nxt, str):  # a section given as its bare kind name
                nxt = node[part] = {"kind": nxt}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = nxt
        if parts[-1] == "kind" and len(parts) > 1 and node.get("kind") not in (None, value):
            for name in list(node):
                if parts[:-1] + (name,) not in given:
                    del node[name]
        node[parts[-1]] = value
        given.add(parts)
    return data


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


# KEY=VALUE items of the command line (and of overrides): one split, typed wrappers around it.

def split_key_value(item: str, flag: str, shape: str = "KEY=VALUE") -> tuple[str, str]:
    """"k=v" -> ("k", "v"), split at the first "="; an item without "=" or with nothing before it is a one-line
    ConfigError (a ValueError) "FLAG 'ITEM' must look like SHAPE"."""
    key, sep, raw = str(item).partition("=")
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r} must look like {shape}")
    return key, raw


def yaml_value(raw: str) -> Any:
    """A VALUE read as YAML (8 -> int, 0.5 -> float, [a, b] -> list, true -> bool, text -> str); text YAML cannot
    read (e.g. "[1,") stays the text."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse_pairs(items: list[str] | None, flag: str, shape: str = "KEY=VALUE", convert=None, *,
                unique: bool = True) -> dict[str, Any]:
    """["a=1", "b=x"] -> {"a": convert("1", "FLAG 'a=1'"), ...} (`convert(raw, where)`; None keeps the text). A
    malformed item, or with `unique` a key given twice, is a one-line ValueError naming the flag; without
    `unique` the last value wins."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, raw = split_key_value(item, flag, shape)
        if unique and key in out:  # the first value would be dropped without a word
            raise ConfigError(f"{flag}: the key {key!r} is given twice")
        out[key] = raw if convert is None else convert(raw, f"{flag} {item!r}")
    return out


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, float | None]:
    """["k=0.5", "j=nan"] -> {"k": 0.5, "j": None} (reward targets); malformed items, values that are not finite
    numbers and keys given twice raise a one-line ValueError."""
    return parse_pairs(items, flag, convert=lambda raw, where: parse_number(raw, where, allow_missing=True))


def parse_named(items: list[str] | None, flag: str) -> dict[str, str]:
    """["miro=runs/miro/model", "runs/base/model"] -> {"miro": ..., "base": ...}: NAME=PATH, or a bare PATH named
    after its folder (its parent's when the folder is called model); an empty name or path, or a name given
    twice, is a one-line ValueError."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" in item:
            name, value = split_key_value(item, flag, "NAME=PATH or PATH")
        else:
            path = Path(item.rstrip("/"))
            name, value = (path.parent.name if path.name == "model" and path.parent.name else path.name), item
        if not name or not value:
            raise ConfigError(f"{flag} {item!r} must look like NAME=PATH or PATH")
        if name in out:
            raise ConfigError(f"{flag}: the name {name!r} is given twice")
        out[name] = value
    return out
