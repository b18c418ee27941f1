"""mirokit.sources: the one rule that tells a local folder from a hub id, and a guard that no loader has its own."""

import re
from pathlib import Path

import pytest

from mirokit.sources import is_local, locate, model_folder, one_line

PACKAGE = Path(__file__).resolve().parents[1] / "mirokit"


def test_paths_and_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t5").mkdir()
    assert is_local("t5") and is_local(tmp_path / "t5")  # exists: local, whatever it looks like
    for path in ("/nowhere", "./nowhere", "../nowhere", "~/nowhere", "a/b/c"):
        assert is_local(path), path  # meant as a path (a hub id is NAME or OWNER/NAME)
    for hub_id in ("google/flan-t5-xl", "gpt2", "openai/clip-vit-large-patch14"):
        assert not is_local(hub_id), hub_id


def test_locate_resolves_local_paths_and_keeps_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vae").mkdir()
    assert locate("./vae", "VAE") == (str(tmp_path / "vae"), True)
    assert locate("stabilityai/sdxl-vae", "VAE") == ("stabilityai/sdxl-vae", False)
    with pytest.raises(FileNotFoundError, match=r"^VAE weights not found: \./missing$"):
        locate("./missing", "VAE")


def test_model_folder(tmp_path):
    (tmp_path / "m" / "v1").mkdir(parents=True)
    assert model_folder(tmp_path / "m") == tmp_path / "m"
    assert model_folder(str(tmp_path / "m"), "v1") == tmp_path / "m" / "v1"
    with pytest.raises(FileNotFoundError, match="variant 'v2' of .* not found"):
        model_folder(str(tmp_path / "m"), "v2")
    with pytest.raises(FileNotFoundError, match="^model directory not found: /nope/model$"):
        model_folder("/nope/model")


def test_one_line():
    assert one_line(OSError("a\n  b\n\nc")) == "a b c"
    assert one_line(ValueError("")) == "ValueError"
    assert one_line(ValueError("x" * 400), limit=10) == "xxxxxxx..."


RULE = re.compile(r"""startswith\(\(["']/["'], ["']\.["']|count\(["']/["']\)|snapshot_download\(""")
"""the pieces of a hand-made "hub id or local path" rule"""


def test_one_rule_decides_hub_id_or_local_folder():
    found = [f"{p.relative_to(PACKAGE)}:{n}" for p in sorted(PACKAGE.rglob("*.py"))
             if p.name != "sources.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if RULE.search(line)]
    assert found == [], "decide with mirokit.sources (is_local / locate / model_folder)"
