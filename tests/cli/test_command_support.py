"""The library code the commands call instead of doing the work themselves (tests/test_cli_rule.py keeps them
out of mirokit/cli): the registry's command tree, option parsing, flags generated from a config dataclass, the
settings of a --reference preset, the studio's model list, `mirokit sample`'s files, shards and rules."""

import argparse
import dataclasses
import json
from types import SimpleNamespace

import pytest
from PIL import Image

from mirokit import options
from mirokit.registry import Registry


def test_the_registry_gives_the_direct_children_of_a_group():
    reg = Registry("thing", "mirokit.cli")  # discovery imports the commands, which register nothing here
    calls = []
    for kind in ("b", "a", "a.x", "a.x.y", "ab.z"):
        reg.register(kind)(lambda sub, kind=kind: calls.append((kind, sub)))
    assert [e.kind for e in reg.children()] == ["a", "b"]
    assert [e.kind for e in reg.children("a")] == ["a.x"]
    reg.call_children("a.x", "parser")
    assert calls == [("a.x.y", "parser")]


def test_commands_are_registered_in_the_cli_package():
    from mirokit.cli.commands import COMMANDS

    assert COMMANDS.package == "mirokit.cli" and "sample" in COMMANDS.known()
    assert {e.kind for e in COMMANDS.children("calibrate")} == {"calibrate.fit", "calibrate.apply"}


def test_option_parsers():
    assert options.parse_options(["clip.model=/p", "clip.batch_size=8"]) == {"clip": {"model": "/p", "batch_size": 8}}
    with pytest.raises(ValueError, match="--option 'clip=1' must look like REWARD.NAME=VALUE"):
        options.parse_options(["clip=1"])
    assert options.parse_values(["k=3", "d=cuda"], "--metric-option") == {"k": 3, "d": "cuda"}
    with pytest.raises(ValueError, match="--metric-option 'x' must look like NAME=VALUE"):
        options.parse_values(["x"], "--metric-option")
    assert options.parse_strings(["a=long", "b=short"], "--caption-length") == {"a": "long", "b": "short"}
    assert options.parse_counts({"q": "4"}, "--best-of") == {"q": 4}
    with pytest.raises(ValueError, match="--best-of q='x'"):
        options.parse_counts({"q": "x"}, "--best-of")
    assert options.parse_ints("16,32", "--channels") == (16, 32)
    with pytest.raises(ValueError, match="--channels '16,a' must be comma-separated integers"):
        options.parse_ints("16,a", "--channels")
    assert options.parse_words(" positive, ,guidance,") == ("positive", "guidance")
    assert options.parse_range("1,3.5", "--guidance-range") == (1.0, 3.5)
    assert options.parse_range(None, "--guidance-range") is None
    with pytest.raises(ValueError, match="must look like LO,HI"):
        options.parse_range("3", "--guidance-range")


@dataclasses.dataclass(kw_only=True)
class _Config:
    out_dir: str = "out"
    """where it goes (100% sure)"""
    steps: int | None = None
    """steps; None = automatic"""
    mix: float | None = 0.5
    """a mix, or none"""
    loud: bool = False
    """say more"""
    hidden: int = 3
    """not a flag"""
    overrides: list[str] = dataclasses.field(default_factory=list)
    """key=value overrides"""


def test_flags_are_generated_from_a_config_dataclass_and_build_it_back():
    from mirokit.config_flags import add_config_flags, config_from_flags

    p = argparse.ArgumentParser()
    add_config_flags(p, _Config, skip=("hidden",), names={"out_dir": "out"}, positional=("overrides",))
    assert config_from_flags(_Config, p.parse_args([]), skip=("hidden",)) == _Config()
    args = p.parse_args(["--out", "x", "--steps", "4", "--mix", "none", "--loud", "a=1", "b=2"])
    assert config_from_flags(_Config, args, skip=("hidden",)) == _Config(out_dir="x", steps=4, mix=None, loud=True,
                                                                         overrides=["a=1", "b=2"])
    assert "--hidden" not in p._option_string_actions and "--out-dir" not in p._option_string_actions
    with pytest.raises(SystemExit):
        p.parse_args(["--steps", "many"])
    with pytest.raises(ValueError, match="has no flag field 'nope'"):
        add_config_flags(argparse.ArgumentParser(), _Config, extra={"nope": {}})


def test_every_demo_flag_is_a_field_of_the_demo_config():
    from mirokit.cli.main import build_parser
    from mirokit.config_flags import config_from_flags, flag_fields
    from mirokit.world.commands import DEMO_INTERNAL
    from mirokit.world.demo_plan import DemoConfig

    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    dests = {a.dest for a in demo._actions} - {"help"}
    assert dests == {f.name for f in flag_fields(DemoConfig, DEMO_INTERNAL)}
    assert config_from_flags(DemoConfig, demo.parse_args([]), skip=DEMO_INTERNAL) == DemoConfig()
    assert demo.parse_args(["--out", "x", "--quality-mix", "none"]).quality_mix is None
    helps = {a.dest: a.help for a in demo._actions}
    assert helps["batch_size"] == "training batch size"  # the field's docstring


def test_a_reference_preset_decides_the_sampler_and_the_flags_the_rest():
    from mirokit.evaluate.runs import reference_settings

    pipe = SimpleNamespace(sampler_defaults={"solver": "ab2", "steps": 6}, reward_keys=["a", "b"])
    explicit = {"solver": "heun", "steps": 3, "shift": 2.0, "guidance": 2.5, "rewards": {"a": 0.25},
                "negative_rewards": {}, "seed": None}
    s = reference_settings(explicit, "official", pipe)
    assert (s.solver, s.steps, s.shift, s.guidance, s.rewards) == ("euler", 50, 1.0, 2.5, {"a": 0.25})
    with pytest.raises(ValueError, match="unknown reward key 'c'"):
        reference_settings({"rewards": {"c": 1.0}}, "official", pipe)


def test_scorer_and_selection_keys():
    from mirokit.evaluate.runs import scorer_keys, selection_keys

    runs = [SimpleNamespace(pipe=SimpleNamespace(reward_keys=["a", "b"])),
            SimpleNamespace(pipe=SimpleNamespace(reward_keys=["b", "c"]))]
    assert scorer_keys(None, runs) == ["a", "b", "c"] and scorer_keys(["c", "c"], runs) == ["c"]
    assert selection_keys(None, ["x", "y"], runs) == (["x"], ["x", "y"])
    assert selection_keys(["b"], None, runs) == (["b"], ["b"])
    with pytest.raises(ValueError, match="no selection reward"):
        selection_keys(None, None, [SimpleNamespace(pipe=SimpleNamespace(reward_keys=[]))])


def test_the_studio_loads_each_model_or_each_variant_of_one():
    from mirokit.studio.build import model_loads, read_examples

    assert model_loads({"a": "x", "b": "y"}, None) == {"a": ("x", None), "b": ("y", None)}
    assert model_loads({"repo": "r"}, ["v1", "v2"]) == {"v1": ("r", "v1"), "v2": ("r", "v2")}
    with pytest.raises(ValueError, match="need exactly one MODEL"):
        model_loads({"a": "x", "b": "y"}, ["v1", "v2"])
    assert read_examples(None) is None


def test_samples_are_written_with_their_settings(tmp_path):
    from mirokit.sample_output import save_samples

    out = SimpleNamespace(images=[Image.new("RGB", (4, 4), c) for c in ("red", "blue")], prompts=["p", "q"],
                          indices=[(0, 0), (1, 2)])
    files = save_samples(out, tmp_path / "s", {"model": "m"})
    assert files == [{"file": "000_000.png", "prompt": "p"}, {"file": "001_002.png", "prompt": "q"}]
    assert Image.open(tmp_path / "s" / "001_002.png").getpixel((0, 0)) == (0, 0, 255)
    assert json.loads((tmp_path / "s" / "settings.json").read_text()) == {"model": "m", "images": files}
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_shards_of_a_job_on_torchrun_ranks(monkeypatch):
    from mirokit import distributed

    info = SimpleNamespace(rank=1, world_size=4)
    assert distributed.job_shard(2, 3, info) == (9, 12) and distributed.shard_label(9, 12) == "10/12"
    distributed.check_shard(1, 2)
    with pytest.raises(ValueError, match=r"--shard-index must be in 0\.\.1 and --num-shards >= 1"):
        distributed.check_shard(2, 2)
    err = RuntimeError("Read error: Connection reset by peer")
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.lost_peer_error(err, "x") is None  # not a torchrun rank
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert str(distributed.lost_peer_error(err, "detail")).startswith("rank 1 of 2 lost its connection")
    assert distributed.lost_peer_error(RuntimeError("out of memory"), "x") is None


def test_genevals_rules_check_their_options():
    from mirokit.evaluate.geneval_rules import checked_rules

    rules = checked_rules(detector_threshold=0.4, counting_threshold=0.8, position_threshold=0.2, max_objects=5)
    assert (rules.threshold, rules.min_score, rules.max_objects) == (0.4, 0.4, 5)
    with pytest.raises(ValueError, match=r"--counting-threshold must be in \[0, 1\]"):
        checked_rules(counting_threshold=1.5)
    with pytest.raises(ValueError, match="--position-threshold must be >= 0 and --max-objects >= 1"):
        checked_rules(max_objects=0)


def test_error_lines():
    from mirokit.console import columns, error_line

    assert error_line(ValueError("first\nsecond")) == "first" and error_line(KeyError()) == "KeyError"
    assert error_line(OSError(28, "No space left on device", "/x")) == "No space left on device: /x"
    assert columns({"ab": "one", "c": "two"}, 3) == "ab  one\nc   two"
