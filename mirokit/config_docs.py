"""Generate docs/CONFIG.md from the config dataclasses and their field docstrings.

Run `python -m mirokit.config_docs > docs/CONFIG.md`; a test keeps the file in sync.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap

SECTIONS = [
    ("top level", "mirokit.train.config", "RunConfig"),
    ("model", "mirokit.models.generator", "GeneratorConfig"),
    ("model.rin", "mirokit.models.rin", "RINConfig"),
    ("model.unet", "mirokit.models.unet", "UNetConfig"),
    ("model.conditioning", "mirokit.models.conditioning", "ConditioningConfig"),
    ("text_encoder (kind: tokens)", "mirokit.encoders.text_tokens", "TokenTextEncoderConfig"),
    ("text_encoder (kind: hf_t5)", "mirokit.encoders.text_hf", "HFTextEncoderConfig"),
    ("data", "mirokit.data.source", "DataConfig"),
    ("data.world (kind: world)", "mirokit.world.sampling", "WorldConfig"),
    ("train", "mirokit.train.config", "LoopConfig"),
    ("optim", "mirokit.train.optim", "OptimConfig"),
    ("flow", "mirokit.flow.loss", "FlowLossConfig"),
]


def field_docs(cls) -> dict[str, str]:
    """{field name: the string literal written right under it in the class body}."""
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
        return "(section below)" if dataclasses.is_dataclass(value) else repr(value)
    return "required"


def config_reference() -> str:
    """Markdown tables of every config key: name, default, meaning."""
    import importlib

    out = ["# Configuration reference", "",
           "Generated from the config dataclasses by `python -m mirokit.config_docs`; unknown keys are an error.",
           "Override any key on the command line: `mirokit train --config FILE.yaml section.key=value`.", ""]
    for title, module, name in SECTIONS:
        cls = getattr(importlib.import_module(module), name)
        docs = field_docs(cls)
        out += [f"## `{title}` ({name})", "", (cls.__doc__ or "").strip().splitlines()[0], "",
                "| key | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            meaning = docs.get(f.name, "").replace("|", "\\|")
            out.append(f"| `{f.name}` | `{_default(f)}` | {meaning} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(config_reference())
