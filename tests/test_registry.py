"""The component registry: lookups, one-line errors, discovery of built-ins and plugins."""

import subprocess
import sys
import textwrap

import pytest

from mirokit import registry
from mirokit.config import ConfigError, from_dict
from mirokit.data.source import DATA_SOURCES
from mirokit.encoders import IMAGE_SPACES, TEXT_ENCODERS
from mirokit.models import BACKBONES
from mirokit.rewards.registry import SCORERS
from mirokit.train.config import RunConfig


def test_every_family_lists_its_built_ins():
    assert {"rin", "unet"} <= set(BACKBONES.known())
    assert {"tokens", "hf_t5"} <= set(TEXT_ENCODERS.known())
    assert "pixels" in IMAGE_SPACES.known()
    assert {"toy", "jsonl", "world"} <= set(DATA_SOURCES.known())  # world comes from the plugin
    assert {"clip_score", "vqa_score", "world_quality"} <= set(SCORERS.known())


@pytest.mark.parametrize("section, family", [("model.backbone", "backbone"), ("text_encoder", "text encoder"),
                                             ("image_space", "image space"), ("data", "data source")])
def test_unknown_kind_is_one_line_listing_the_known_ones(section, family):
    data: dict = {}
    node = data
    for part in section.split(".")[:-1]:
        node = node.setdefault(part, {})
    node[section.split(".")[-1]] = {"kind": "nosuch"}
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, data)
    message = str(info.value)
    assert f"unknown {family} 'nosuch'; known: " in message and "\n" not in message


def test_register_rejects_a_second_owner_and_empty_kinds():
    reg = registry.Registry("widget", "mirokit.models")

    @reg.register("a")
    def first():
        return 1

    reg.register("a")(first)  # registering the same object again is harmless
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("")
    with pytest.raises(ValueError, match="unknown widget 'b'; known: a"):
        reg.get("b")


def test_plugins_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "my_widgets.py").write_text(textwrap.dedent("""
        from mirokit.rewards.registry import register_scorer

        @register_scorer("my_widget_score", "from MIROKIT_PLUGINS")
        class Widget:
            key = "my_widget_score"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.PLUGIN_ENV, "my_widgets")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert SCORERS.entry("my_widget_score").description == "from MIROKIT_PLUGINS"
    monkeypatch.setenv(registry.PLUGIN_ENV, "no_such_module_xyz")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(ImportError, match="mirokit plugin 'no_such_module_xyz' failed to load"):
        SCORERS.get("another_unknown_key")


def test_the_world_arrives_by_entry_point_not_by_core_imports():
    code = textwrap.dedent("""
        import sys
        from mirokit.data.source import DATA_SOURCES
        from mirokit.train.loop import Trainer
        assert not any(m.startswith("mirokit.world") for m in sys.modules), "a core import pulled in the world"
        DATA_SOURCES.get("world")
        assert "mirokit.world.plugin" in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
