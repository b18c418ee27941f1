"""Command-line flags generated from a config dataclass, and the dataclass built back from the parsed flags, so
that a command's flags and the config it runs cannot drift apart (`mirokit demo` and DemoConfig).

Field `batch_size` becomes `--batch-size` (dest `batch_size`): its type from the annotation (`bool`: a switch;
`X | None`: an X, or the word none; `list[str]`: repeatable values; `dict`: a YAML mapping merged over the
default), its default, and its docstring (the string
literal under the field, as docs/CONFIG.md reads them) as help.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

NONE_WORDS = ("none", "null")


def _optional(parse):
    """A value parser that also reads the word none as None."""
    def read(text: str):
        if text.strip().lower() in NONE_WORDS:
            return None
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {parse.__name__} or none") from None

    read.__name__ = parse.__name__
    return read


def _mapping_over(default: dict):
    """A value parser reading a YAML mapping ("{steps: 8}") merged over the field's default mapping."""
    def mapping(text: str) -> dict:
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{text!r} is not a mapping such as '{{key: value}}'")
        return {**default, **value}

    return mapping


def _kind(tp: Any) -> tuple[Any, bool]:
    """(the base type, whether None is allowed) of an annotation."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _argument(name: str, tp: Any, default: Any) -> dict:
    """The add_argument keywords of a field of type `tp` with `default`."""
    base, optional = _kind(tp)
    if base is bool and not optional:
        return {"action": argparse.BooleanOptionalAction if default else "store_true", "default": default}
    if typing.get_origin(base) is list and typing.get_args(base) in ((str,), ()):
        return {"nargs": "*", "default": list(default)}
    if base in (int, float, str):
        return {"type": _optional(base) if optional else base, "default": default}
    if base is dict or typing.get_origin(base) is dict:
        return {"type": _mapping_over(default), "default": default, "metavar": "'{KEY: VALUE, ...}'"}
    raise TypeError(f"config field {name!r}: no command-line flag for type {tp!r}")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"config field {f.name!r} has no default: it cannot be an optional flag")


def flag_fields(cls: type, skip: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The fields of dataclass `cls` that are flags: every field not in `skip`."""
    unknown = sorted(set(skip) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {unknown[0]!r}")
    return [f for f in dataclasses.fields(cls) if f.name not in skip]


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (),
                     names: dict[str, str] | None = None, positional: tuple[str, ...] = (),
                     extra: dict[str, dict] | None = None) -> None:
    """Add one argument per field of dataclass `cls` except `skip`: `--FIELD-NAME`, or `--NAME` for
    `names` {field: NAME}; the fields of `positional` as positional arguments; `extra` {field: add_argument
    keywords} adds or replaces keywords (choices, metavar, type). The dest of every argument is its field's name."""
    from mirokit.config_docs import field_docs

    names, extra = names or {}, extra or {}
    fields = flag_fields(cls, skip)
    unknown = sorted((set(names) | set(extra) | set(positional)) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"{cls.__name__} has no flag field {unknown[0]!r}")
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for f in fields:
        kwargs = {**_argument(f.name, hints[f.name], _default(f)), "help": docs.get(f.name, "").replace("%", "%%"),
                  **extra.get(f.name, {})}
        if f.name in positional:
            parser.add_argument(f.name, **kwargs)
        else:
            name = names.get(f.name, f.name)
            kwargs = {"metavar": name.upper(), **kwargs} if f.name in names and "nargs" not in kwargs else kwargs
            parser.add_argument("--" + name.replace("_", "-"), dest=f.name, **kwargs)


def config_from_flags(cls: type, args: argparse.Namespace, *, skip: tuple[str, ...] = ()):
    """The `cls` instance of parsed flags added by add_config_flags (fields in `skip` keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in flag_fields(cls, skip)}
    return cls(**{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
