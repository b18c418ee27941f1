"""The package layering of docs/ARCHITECTURE.md, read from the source with `ast` (nothing is imported).

- no core package imports the shapes world (a plugin), not even lazily inside a function, and none
  names it in a string (a hidden `importlib.import_module("mirokit.world...")`); nor does the CLI (the
  world registers its own commands through its plugin entry point);
- no import cycle between mirokit's packages and top-level modules, nor between any two modules (a package's
  modules included; imports inside functions count: a lazy import hides a circle, it does not remove it);
- `models` and `flow` import nothing from `data`, `train` or `cli`; `flow` never touches
  torch.distributed; `rewards` never imports `models`; only `cli` imports `cli` (and the world plugin, which
  registers its commands in `mirokit.cli.commands`);
- the packages stand in layers (LAYERS) and none names a package above its own, by an import or even in a string
  (a module path handed to importlib, or a registry told to discover "mirokit.cli"): the registry of commands
  lives in `cli`, not in `registry`. Docstrings may mention any package: they are documentation.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mirokit"
CORE = ("flow", "models", "sampling", "train", "data", "encoders", "rewards", "evaluate", "studio", "captions")


def _unit(path: Path) -> str:
    """The package (or top-level module) a source file belongs to: mirokit/train/loop.py -> train."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (module level, functions, try blocks)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import (use absolute mirokit.* imports)")
    return found


def _strings(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _graph() -> dict[str, set[str]]:
    """unit -> the other mirokit units it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(path)
        targets = {name.split(".")[1] for name in _imports(path) if name.startswith("mirokit.")}
        known = {t for t in targets if (PACKAGE / t).is_dir() or (PACKAGE / f"{t}.py").is_file()}
        graph.setdefault(unit, set()).update(known - {unit})
    return graph


def test_the_graph_is_read():
    graph = _graph()
    assert {"train", "models", "world", "cli", "config"} <= set(graph)
    assert "models" in graph["train"] and "train" in graph["cli"]  # the parser sees real edges


@pytest.mark.parametrize("core", (*CORE, "cli"))  # the world registers its commands itself
def test_core_never_imports_the_world_plugin(core):
    for path in (PACKAGE / core).rglob("*.py"):
        imported = {name for name in _imports(path) if name == "mirokit.world" or name.startswith("mirokit.world.")}
        assert not imported, f"{path.relative_to(PACKAGE.parent)} imports {sorted(imported)}"
        named = {s for s in _strings(path) if s.startswith("mirokit.world")}
        assert not named, f"{path.relative_to(PACKAGE.parent)} names {sorted(named)}"


def _module_name(path: Path) -> str:
    parts = list(path.with_suffix("").relative_to(PACKAGE.parent).parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    """module -> the mirokit modules it imports (at any depth); `from pkg import name` counts as pkg.name when
    that is a module, else as pkg."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules} - {name} for name, path in modules.items()}
    # the root package is a facade: `from mirokit import MiroPipeline` is resolved on first use, and every module
    # may read `mirokit.__version__`; its own lazy edge is the re-export, not a dependency
    assert graph["mirokit"] <= {"mirokit.pipeline"}, graph["mirokit"]
    graph["mirokit"] = set()
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
            if nxt not in state and (found := visit(nxt, stack + [nxt])):
                return found
        state[node] = 2
        return None

    for unit in sorted(graph):
        if unit not in state and (found := visit(unit, [unit])):
            return found
    return None


def test_no_cycle_between_modules():
    graph = _module_graph()
    assert "mirokit.train.loop" in graph["mirokit.cli.train"]  # the parser sees module edges
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_packages():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])


@pytest.mark.parametrize("unit, forbidden", [
    ("models", {"data", "train", "cli", "sampling", "pipeline", "world"}),
    ("flow", {"data", "train", "cli", "models", "world", "distributed"}),
    ("rewards", {"models", "train", "world"}),
    ("sampling", {"train", "data", "cli", "world"}),
    ("data", {"train", "cli", "models", "world"}),
    ("evaluate", {"train", "data", "cli", "world", "models", "flow"}),
    ("studio", {"train", "cli", "world", "models", "flow", "encoders"}),
    ("captions", {"train", "cli", "world", "models", "flow", "encoders", "data", "sampling", "pipeline"}),
    ("rewards", {"captions"}),
])
def test_arrows_point_one_way(unit, forbidden):
    assert not _graph().get(unit, set()) & forbidden, (unit, _graph()[unit] & forbidden)


def test_flow_never_touches_torch_distributed():
    for path in (PACKAGE / "flow").rglob("*.py"):
        assert not {n for n in _imports(path) if n.startswith("torch.distributed")}, path


def test_only_cli_imports_cli():
    importers = sorted(unit for unit, targets in _graph().items() if "cli" in targets and unit != "cli")
    assert importers in ([], ["world"]), importers
    for path in (PACKAGE / "world").rglob("*.py"):  # the plugin registers its commands, nothing more
        used = {n for n in _imports(path) if n.startswith("mirokit.cli")}
        assert used <= {"mirokit.cli.commands", "mirokit.cli.commands.COMMANDS", "mirokit.cli.commands.add_group"}, \
            (path, used)


LAYERS = {
    # the foundations: no mirokit package above them
    "registry": 0, "config": 0, "atomic": 0, "distributed": 0, "urls": 0, "images": 0, "console": 0, "options": 0,
    "parser_docs": 0, "pipeline_call": 0, "dtypes": 0, "sources": 0, "tars": 1, "pretrained": 1,
    "rewards": 2, "captions": 3, "data": 3, "encoders": 4, "flow": 5, "models": 5, "sampling": 6,
    "model_card_body": 7, "model_card": 7, "hub": 7, "pipeline": 8, "sample_output": 8,
    "train": 9, "config_docs": 9, "config_flags": 9, "evaluate": 10, "studio": 11, "cli": 12,
    "world": 13,  # the shapes world, a plugin: above everything, it may use (and register into) all of them
}
"""package (or top-level module) -> its layer: a package may name its own layer and those below"""


def _named_in_strings(path: Path) -> set[str]:
    """The mirokit packages a file names in string constants that are not documentation (a docstring, or a string
    standing alone as a statement: an attribute's docstring)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found.update(re.findall(r"\bmirokit\.([A-Za-z_]\w*)", node.value))
    return {name for name in found if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()}


def test_every_package_has_a_layer():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= set(LAYERS), f"place {sorted(units - set(LAYERS))} in LAYERS"


def test_no_package_names_a_package_above_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        if unit == "__init__":
            continue  # the root facade re-exports the pipeline (see _module_graph)
        imported = {n.split(".")[1] for n in _imports(path) if n.startswith("mirokit.") and n.count(".") >= 1}
        named = {n for n in imported if n in LAYERS} | _named_in_strings(path)
        wrong += [f"{path.relative_to(PACKAGE.parent)} ({unit}, layer {LAYERS[unit]}) names {n} (layer {LAYERS[n]})"
                  for n in sorted(named) if LAYERS[n] > LAYERS[unit]]
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_strings(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""Docs may say mirokit.cli."""\nCOMMANDS = Registry("command", "mirokit.cli")\n')
    assert _named_in_strings(bad) == {"cli"}
    bad.write_text('"""Docs may say mirokit.cli."""\nX = 1\n"""an attribute docstring naming mirokit.cli"""\n')
    assert _named_in_strings(bad) == set()
