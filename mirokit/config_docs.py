"""Generate docs/CONFIG.md from the config dataclasses and their field docstrings.

Run `python -m mirokit.config_docs > docs/CONFIG.md`; a test keeps the file in sync.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap


def sections(cls: type | None = None, path: str = "") -> list[tuple[str, type]]:
    """(title, config class) for `cls` (default RunConfig) and every section below it, depth first.

    A section whose type is a registered family (backbone, text encoder, image space, data source) is
    listed once per registered kind, plugins included.
    """
    import typing

    from mirokit.config import KindConfig, _unwrap_optional

    if cls is None:
        from mirokit.train.config import RunConfig

        cls = RunConfig
    out = [(path or "top level", cls)]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap_optional(hints[f.name])
        where = f"{path}.{f.name}" if path else f.name
        if isinstance(tp, type) and issubclass(tp, KindConfig):
            for entry in tp.registry.entries():
                if not entry.config.__module__.startswith("mirokit."):
                    continue  # components of third-party plugins (and tests) are documented by their authors
                kinded = sections(entry.config, where)
                out += [(f"{title} (kind: {entry.kind})", c) for title, c in kinded]
        elif dataclasses.is_dataclass(tp):
            out += sections(tp, where)
    return out


def field_docs(cls) -> dict[str, str]:
    """{field name: the string literal written right under it in the class body}, base classes included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and klass.__module__.startswith("mirokit"):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    if not docs and cls.__doc__ and "Fields:" in cls.__doc__:
        # Google-style "Fields:" section: "name: text" with indented continuation lines
        name = None
        for line in cls.__doc__.split("Fields:", 1)[1].splitlines():
            head, sep, rest = line.strip().partition(": ")
            if sep and head.isidentifier():
                name = head
                docs[name] = rest
            elif name and line.strip():
                docs[name] += " " + line.strip()
    return docs


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            kind = getattr(value, "kind", "")
            return f"kind: {kind} (sections below)" if kind else "(section below)"
        return repr(value)
    return "required"


def config_reference() -> str:
    """Markdown tables of every config key: name, default, meaning."""
    out = ["# Configuration reference", "",
           "Generated from the config dataclasses by `python -m mirokit.config_docs`; unknown keys are an error.",
           "Override any key on the command line: `mirokit train --config FILE.yaml section.key=value`.",
           "Sections marked (kind: NAME) are chosen by their `kind` key, e.g. `model.backbone: {kind: unet, ...}`;",
           "setting `section.kind=...` on the command line starts that section from the new kind's defaults.", ""]
    for title, cls in sections():
        name = cls.__name__
        docs = field_docs(cls)
        out += [f"## `{title}` ({name})", "", (cls.__doc__ or "").strip().splitlines()[0], "",
                "| key | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            meaning = docs.get(f.name, "").replace("|", "\\|")
            out.append(f"| `{f.name}` | `{_default(f)}` | {meaning} |")
        out.append("")
    return "\n".join(out + sampling_reference())


def sampling_reference() -> list[str]:
    """The sampling settings' table (mirokit.sampling.SamplingSettings: where each one shows, what it does)."""
    from mirokit.sampling import SamplingSettings
    from mirokit.sampling.options import markdown_table

    return ["## Sampling settings (SamplingSettings)", "",
            "Every setting is declared once, as a field of `mirokit.sampling.SamplingSettings`; "
            "a `sampling:` section,",
            "`validation.sampling`, a preset file, the flags of `mirokit sample`/`generate`/`eval` "
            "(`--NAME-WITH-DASHES`),",
            "the keyword arguments of `MiroPipeline(...)`, the studio's controls and "
            "`mirokit eval sweep --sweep NAME=...`",
            "take them by these names (the \"shown in\" column). Intervals are `[lo, hi]` in YAML/JSON and "
            "`LO:HI` on the",
            "command line; `full` (or null) means no interval.", "", markdown_table(SamplingSettings), ""]


if __name__ == "__main__":
    print(config_reference())
