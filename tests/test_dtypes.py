"""mirokit.dtypes: the one dtype vocabulary (fp32, bf16, fp16; torch's names read as aliases), and a guard that no
second dtype table appears in the package."""

import ast
from pathlib import Path

import pytest
import torch

from mirokit.dtypes import DTYPES, dtype_name, dtype_named

PACKAGE = Path(__file__).resolve().parents[1] / "mirokit"
NAMES = {"fp32", "bf16", "fp16", "float32", "bfloat16", "float16"}


def test_the_vocabulary_and_its_torch_aliases():
    assert list(DTYPES) == ["fp32", "bf16", "fp16"]
    assert [dtype_named(n) for n in DTYPES] == [torch.float32, torch.bfloat16, torch.float16]
    assert [dtype_name(n) for n in ("float32", "bfloat16", "float16", "bf16")] == ["fp32", "bf16", "fp16", "bf16"]
    assert dtype_named("bfloat16") is torch.bfloat16


@pytest.mark.parametrize("bad", ["int8", "half", "BF16", "", "torch.float32"])
def test_anything_else_is_a_one_line_error_naming_the_setting(bad):
    with pytest.raises(ValueError, match=rf"^image_space.dtype: unknown dtype {bad!r}; known: fp32, bf16, fp16$"):
        dtype_named(bad, "image_space.dtype")


def test_configs_and_options_are_normalised_to_the_vocabulary(tmp_path):
    from mirokit.encoders.encode_job import EncodeJobConfig
    from mirokit.encoders.vae import VAESpaceConfig

    assert VAESpaceConfig(dtype="bfloat16").dtype == "bf16"  # a config.json written with torch's name loads
    assert EncodeJobConfig(inputs=[], out_dir=str(tmp_path), rewards=[]).dtype == "fp16"
    with pytest.raises(ValueError, match="--dtype: unknown dtype 'half'"):
        EncodeJobConfig(inputs=[], out_dir=str(tmp_path), rewards=[], dtype="half")


def _tables(path: Path) -> list[str]:
    """`path:line` of the dtype name strings outside a table of the vocabulary, and of dict literals keyed by two
    or more dtype names (a second table)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in ("bfloat16", "float16"):
            found.append(f"{path.name}:{node.lineno}: the string {node.value!r}")
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if len(keys & NAMES) >= 2:
                found.append(f"{path.name}:{node.lineno}: a dtype table")
    return found


def test_one_dtype_table_in_the_package():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "dtypes.py" for hit in _tables(path)]
    assert found == [], "use mirokit.dtypes (dtype_named / dtype_name / DTYPES)"


def test_the_guard_finds_a_second_table(tmp_path):
    (tmp_path / "m.py").write_text('import torch\nT = {"float32": torch.float32, "bf16": torch.bfloat16}\n')
    assert _tables(tmp_path / "m.py") == ["m.py:2: a dtype table"]
