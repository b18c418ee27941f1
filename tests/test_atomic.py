"""mirokit.atomic: the one file writer (a temporary sibling renamed over the target), and a guard that no module
writes files around it."""

import ast
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from mirokit import atomic
from mirokit.atomic import (
    SOLE_WRITER,
    atomic_path,
    process_owner,
    save_image_atomic,
    save_safetensors_atomic,
    stale_temporaries,
    temporary_path,
    write_atomic,
    write_json_atomic,
    write_parquet_atomic,
)

PACKAGE = Path(atomic.__file__).resolve().parent


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_text_bytes_and_json_land_whole_and_leave_no_temporary(tmp_path):
    assert write_atomic(tmp_path / "a.txt", "héllo\n") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    write_atomic(tmp_path / "sub" / "b.bin", b"\x00\x01")  # parents created
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    write_json_atomic(tmp_path / "c.json", {"x": [1, 2]}, indent=None)
    assert (tmp_path / "c.json").read_text() == '{"x": [1, 2]}\n'
    write_json_atomic(tmp_path / "c.json", {"p": Path("/q")}, default=str)  # replaces the old content
    assert json.loads((tmp_path / "c.json").read_text()) == {"p": "/q"}
    assert _hidden(tmp_path) == [] and _hidden(tmp_path / "sub") == []


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and _hidden(tmp_path) == []
    with pytest.raises(TypeError, match="expected bytes or str, got dict"):
        write_atomic(path, {"a": 1})
    assert path.read_text() == "old"


def test_an_owner_names_a_temporary_its_rerun_reuses(tmp_path):
    path = tmp_path / "m.json"
    assert temporary_path(path, "shard-1") == tmp_path / ".m.json.shard-1.tmp"
    assert temporary_path(path) == temporary_path(path, SOLE_WRITER) == tmp_path / f".m.json.{SOLE_WRITER}.tmp"
    assert temporary_path(path, process_owner()).name == f".m.json.pid{os.getpid()}.tmp"
    temporary_path(path).write_text("left by a kill")
    write_atomic(path, "new")  # the same name: overwritten and renamed
    assert path.read_text() == "new" and _hidden(tmp_path) == []


def test_stale_temporaries_are_found_by_target_prefix(tmp_path):
    for name in (".u1.parquet.123.tmp", ".u1.tar.sole.tmp", ".u10.parquet.9.tmp", "u1.parquet", ".u1.parquet"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in stale_temporaries(tmp_path, "u1.")] == [".u1.parquet.123.tmp", ".u1.tar.sole.tmp"]
    assert stale_temporaries(tmp_path, "[u") == []  # glob characters in a name are literal


def test_a_folder_moves_into_place(tmp_path):
    with atomic_path(tmp_path / "ckpt", "ranks") as tmp:
        tmp.mkdir()
        (tmp / "state.json").write_text("{}")
    assert (tmp_path / "ckpt" / "state.json").is_file() and _hidden(tmp_path) == []


def test_parquet_safetensors_and_images(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    write_parquet_atomic(tmp_path / "t.parquet", pa.table({"a": [1, 2]}))
    assert pq.read_table(tmp_path / "t.parquet").to_pylist() == [{"a": 1}, {"a": 2}]
    save_safetensors_atomic(tmp_path / "w.safetensors", {"w": torch.arange(3.0)}, {"format": "pt"})
    assert torch.equal(load_file(tmp_path / "w.safetensors")["w"], torch.arange(3.0))
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    save_image_atomic(tmp_path / "i.png", pixels)
    save_image_atomic(tmp_path / "j.jpg", Image.fromarray(pixels), format="JPEG", quality=95)
    with Image.open(tmp_path / "i.png") as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), pixels)
    with Image.open(tmp_path / "j.jpg") as im:
        assert im.format == "JPEG"
    assert _hidden(tmp_path) == []


WRITERS = re.compile(r"\bos\.(replace|rename)\(|\.rename\(|\bsave_file\(|\bpq\.write_table\(|"
                     r"\.with_suffix\([^)]*\.tmp|\.tmp-")
"""a rename, a safetensors or parquet file written directly, a hand-made temporary name"""


def offenders(root: Path = PACKAGE) -> list[str]:
    """`path:line` of every source line (outside mirokit/atomic.py) that writes a file around mirokit.atomic."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "atomic.py" and path.parent == root:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITERS.search(line.split("#")[0]):
                found.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return found


def test_every_rename_and_whole_file_writer_goes_through_mirokit_atomic():
    assert offenders() == [], "write through mirokit.atomic (write_atomic, atomic_path, ...) instead"


def test_the_guard_finds_a_second_writer(tmp_path):
    (tmp_path / "mirokit").mkdir()
    (tmp_path / "mirokit" / "atomic.py").write_text("import os\nos.replace('a', 'b')\n")
    (tmp_path / "mirokit" / "other.py").write_text("import os\n\ndef f(tmp, p):\n    os.replace(tmp, p)\n")
    assert offenders(tmp_path / "mirokit") == ["mirokit/other.py:4: os.replace(tmp, p)"]


def test_the_single_rename_is_in_move_into_place():
    tree = ast.parse((PACKAGE / "atomic.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("replace", "rename") and getattr(node.func.value, "id", "") == "os"]
    assert len(calls) == 1
