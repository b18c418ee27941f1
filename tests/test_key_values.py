"""The one KEY=VALUE parser (mirokit.config.split_key_value) and its typed wrappers, and a guard that no module
splits KEY=VALUE items by hand."""

import re
from pathlib import Path

import pytest

from mirokit.config import (
    ConfigError,
    apply_overrides,
    parse_key_values,
    parse_named,
    parse_pairs,
    split_key_value,
    yaml_value,
)

PACKAGE = Path(__file__).resolve().parents[1] / "mirokit"


def test_split_at_the_first_equals_sign():
    assert split_key_value("a=b=c", "--x") == ("a", "b=c")
    assert split_key_value("a=", "--x") == ("a", "")
    for bad in ("a", "=b", ""):
        with pytest.raises(ConfigError, match=rf"^--option {bad!r} must look like NAME=VALUE$"):
            split_key_value(bad, "--option", "NAME=VALUE")


def test_values_read_as_yaml_or_kept_as_text():
    assert [yaml_value(v) for v in ("8", "0.5", "true", "[a, b]", "/models/x", "")] == [
        8, 0.5, True, ["a", "b"], "/models/x", None]
    assert yaml_value("[1,") == "[1,"  # YAML cannot read it: the text


def test_pairs_numbers_and_names():
    assert parse_pairs(["a=1", "b=x"], "--f") == {"a": "1", "b": "x"}
    assert parse_pairs(["a=1", "a=2"], "--f", unique=False) == {"a": "2"}
    with pytest.raises(ValueError, match="^--f: the key 'a' is given twice$"):
        parse_pairs(["a=1", "a=2"], "--f")
    assert parse_key_values(["k=0.5", "j=nan"], "--reward") == {"k": 0.5, "j": None}
    with pytest.raises(ValueError, match=r"^--reward 'k=x': 'x' is not a number"):
        parse_key_values(["k=x"], "--reward")
    with pytest.raises(ValueError, match="^--reward 'k' must look like KEY=VALUE$"):
        parse_key_values(["k"], "--reward")
    assert parse_named(["a=x/model", "runs/miro/model", "runs/b/"], "--model") == {
        "a": "x/model", "miro": "runs/miro/model", "b": "runs/b/"}
    for bad, message in ((["=x"], "must look like NAME=PATH or PATH"), (["a="], "must look like NAME=PATH or PATH"),
                         (["a=x", "a=y"], "the name 'a' is given twice")):
        with pytest.raises(ValueError, match=message):
            parse_named(bad, "--model")


def test_overrides_use_the_same_split():
    assert apply_overrides({}, ["a.b=3", "c=[1, 2]", "d=x=y"]) == {"a": {"b": 3}, "c": [1, 2], "d": "x=y"}
    for bad in ("a.b", "=3"):
        with pytest.raises(ConfigError, match=rf"^override {bad!r} must look like key.sub=value$"):
            apply_overrides({}, [bad])


def test_option_parsers_use_the_same_split():
    from mirokit.options import parse_options, parse_strings, parse_values

    assert parse_options(["clip_score.model=/p", "clip_score.batch_size=8"]) == {
        "clip_score": {"model": "/p", "batch_size": 8}}
    with pytest.raises(ValueError, match=r"^--option 'clip_score=1' must look like REWARD.NAME=VALUE$"):
        parse_options(["clip_score=1"])
    assert parse_values(["detector=/m", "k=3"], "--metric-option") == {"detector": "/m", "k": 3}
    with pytest.raises(ValueError, match="^--metric-option 'k' must look like NAME=VALUE$"):
        parse_values(["k"], "--metric-option")
    assert parse_strings(["clip_score=short"], "--caption-length") == {"clip_score": "short"}
    with pytest.raises(ValueError, match="^--caption-length 'clip_score' must look like KEY=VALUE$"):
        parse_strings(["clip_score"], "--caption-length")


SPLITS = re.compile(r"""\.partition\(["']=["']\)|\.split\(["']=["']""")


def test_no_module_splits_key_value_items_by_hand():
    found = [f"{p.relative_to(PACKAGE)}:{n}" for p in sorted(PACKAGE.rglob("*.py"))
             if p.name != "config.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if SPLITS.search(line)]
    assert found == [], "split KEY=VALUE items with mirokit.config.split_key_value"
