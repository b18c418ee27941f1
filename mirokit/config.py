"""Plain-dataclass configs: build from dicts/YAML, reject unknown keys, apply `a.b=value` overrides.

Every config in mirokit is a keyword-only dataclass living beside the class that uses it.
This module only knows how to turn nested dicts into those dataclasses and back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A one-line, user-facing configuration error (unknown key, wrong type, bad file)."""


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
    if not isinstance(data, dict):
        raise ConfigError(f"config {where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
            f"known keys of {where or cls.__name__ + '.'}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = _unwrap_optional(hints[name])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = from_dict(tp, value, where=f"{where}{name}.")
        elif tp is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif tp is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"config key {where}{name}: expected a number, got {value!r}") from None
        elif tp is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif typing.get_origin(tp) in (list, tuple) and isinstance(value, (list, tuple)):
            value = list(value) if typing.get_origin(tp) is list else tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config {where or cls.__name__}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain JSON/YAML-ready dict."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
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
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place; returns it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data
