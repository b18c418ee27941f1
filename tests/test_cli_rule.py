"""The CLI only parses and calls: no file in mirokit/cli/ loops over data, does numerics or writes files.

Read from the source with `ast` (nothing is imported). A file breaks the rule with any of:

- a loop: a `for` or `while` statement, a comprehension (list, set, dict) or a generator expression, or a call
  of a builtin that loops or computes for its caller (sum, min, max, sorted, map, filter, zip, enumerate, range,
  any, all, reversed, round, abs, pow, divmod);
- numerics: an arithmetic operator (`+ - * / // % ** @`, also as `+=` ...). Telling string concatenation from
  number arithmetic is not possible statically in general, so the rule is the simple sound one: `+` (text
  concatenation) and `/` (a path joined with a name) are allowed only when one operand is text (a string literal,
  an f-string, or an expression built only of those: another allowed `+`, or `x if c else y` of text), and `%`
  only with a string literal on its left (printf formatting); every other arithmetic operator is a violation, in
  f-strings too. Comparisons (`args.pool < 1`, input checks) are allowed;
- an import of a numerics or imaging library: torch, numpy, math, statistics, random, PIL;
- a file write or file-system change: `open(...)`, `.write_text(`, `.write_bytes(`, `.save(`, `.mkdir(`,
  `.unlink(`, `.rmdir(`, `.touch(`, `json.dump(`, `os.replace` / `os.rename` / `os.remove` / `os.makedirs`,
  anything of `shutil`.

The test reports every violation of every file at once (file:line what), so that each file's owner sees theirs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "mirokit" / "cli"
COMMAND_MODULES = sorted([*CLI.glob("*.py"), ROOT / "mirokit" / "world" / "commands.py"])
"""every module of mirokit/cli, and the command module of the shapes world plugin (the same rule)"""
KNOWN: dict[str, str] = {}
"""files that break the rule today, each with why: the test of each is expected to fail (strict: once the file
is clean its test fails until the entry is removed)"""

LOOPING_BUILTINS = {"sum", "min", "max", "sorted", "map", "filter", "zip", "enumerate", "range", "any", "all",
                    "reversed", "round", "abs", "pow", "divmod"}
NUMERIC_LIBRARIES = {"torch", "numpy", "math", "statistics", "random", "PIL"}
WRITING_METHODS = {"write_text", "write_bytes", "save", "mkdir", "unlink", "rmdir", "touch"}
OS_WRITES = {"replace", "rename", "remove", "makedirs", "unlink", "rmdir"}
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)


def _is_text(node: ast.AST) -> bool:
    """A string literal, an f-string, or an expression made only of them (`+` of text, `a if c else b`)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) and _is_text(node.orelse)
    return False


def _arithmetic(node: ast.BinOp) -> str | None:
    """Why a binary operation is numerics, or None when it is text building."""
    if not isinstance(node.op, ARITHMETIC):
        return None  # | & ^ << >>: types in annotations, set and dict unions
    if isinstance(node.op, (ast.Add, ast.Div)) and (_is_text(node.left) or _is_text(node.right)):
        return None  # text concatenation, or a path joined with a literal name (folder / "settings.json")
    if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
        return None
    return f"arithmetic `{type(node.op).__name__}`"


def _call(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        if func.id == "open":
            return "opens a file: open("
        if func.id in LOOPING_BUILTINS:
            return f"loops or computes: {func.id}("
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if func.attr in WRITING_METHODS:
            return f"writes files: .{func.attr}("
        if owner == "json" and func.attr == "dump":
            return "writes files: json.dump("
        if owner == "os" and func.attr in OS_WRITES:
            return f"changes files: os.{func.attr}("
        if owner == "shutil":
            return f"changes files: shutil.{func.attr}("
    return None


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every break of the rule in one file's source, as "FILE:LINE what"."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        why = None
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            why = f"loop `{type(node).__name__.lower()}`"
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            why = f"loop: {type(node).__name__}"
        elif isinstance(node, ast.BinOp):
            why = _arithmetic(node)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ARITHMETIC):
            why = f"arithmetic `{type(node.op).__name__}=`"
        elif isinstance(node, ast.Call):
            why = _call(node)
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] in NUMERIC_LIBRARIES | {"shutil"}]
            why = f"imports {', '.join(names)}" if names else None
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            why = f"imports {node.module}" if top in NUMERIC_LIBRARIES | {"shutil"} else None
        if why:
            found.append(f"{filename}:{node.lineno} {why}")
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1].split()[0])))


def test_the_checker_catches_each_kind_of_violation():
    bad = {
        "for x in xs:\n    pass\n": "loop `for`",
        "while True:\n    break\n": "loop `while`",
        "y = [x for x in xs]\n": "ListComp",
        "y = {k: 1 for k in ks}\n": "DictComp",
        "y = tuple(int(c) for c in s)\n": "GeneratorExp",
        "y = sum(v)\n": "sum(",
        "y = a * 2\n": "Mult",
        "y = n + 1\n": "Add",
        "y = a % b\n": "Mod",
        "y = a / b\n": "Div",
        "y = f'{n - 1}'\n": "Sub",
        "n += 1\n": "Add=",
        "import torch\n": "imports torch",
        "from numpy import array\n": "imports numpy",
        "f = open('x', 'w')\n": "open(",
        "p.write_text('x')\n": ".write_text(",
        "image.save(path)\n": ".save(",
        "folder.mkdir(parents=True)\n": ".mkdir(",
        "json.dump(d, f)\n": "json.dump(",
        "os.replace(a, b)\n": "os.replace(",
        "shutil.rmtree(p)\n": "shutil.rmtree(",
    }
    for source, expected in bad.items():
        found = violations(source)
        assert len(found) == 1 and expected in found[0], (source, found)


def test_the_checker_lets_parsing_and_text_through():
    good = ('def run(args) -> int:\n'
            '    if args.pool < 1:\n'
            '        raise ValueError("--pool must be >= 1")\n'
            '    p.add_argument("--x", help="a" + (f"b{1}" if c else "") + "c")\n'
            '    print("%d%%" % 3, f"{a:.1%}", folder / "settings.json")\n'
            '    x: dict | None = -1\n'
            '    return call(args.x, options={"a": args.a} | extra)\n')
    assert violations(good) == []


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT / "mirokit"))


def test_every_command_module_is_checked():
    files = {_name(p) for p in COMMAND_MODULES}
    assert {"cli/main.py", "cli/sample.py", "cli/studio.py", "cli/docs.py", "world/commands.py"} <= files
    assert set(KNOWN) <= files


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN[_name(p)], strict=True))
                                  if _name(p) in KNOWN else p for p in COMMAND_MODULES], ids=_name)
def test_the_cli_only_parses_and_calls(path):
    found = violations(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "the CLI only parses and calls; move this to the library:\n" + "\n".join(found)
