"""Config sections chosen by `kind`: dict/YAML round trip, overrides that switch kinds, one-line errors."""

import pytest

from mirokit.config import ConfigError, apply_overrides, from_dict, to_dict
from mirokit.data.jsonl import JsonlDataConfig
from mirokit.models.unet import UNetConfig
from mirokit.train.config import RunConfig, load_run_config


def test_kind_sections_round_trip_and_keep_their_kind_first():
    cfg = from_dict(RunConfig, {"model": {"backbone": {"kind": "unet", "channels": [8, 16]}},
                                "data": {"kind": "jsonl", "path": "x.jsonl"}})
    assert isinstance(cfg.model.backbone, UNetConfig) and cfg.model.backbone.channels == [8, 16]
    assert isinstance(cfg.data, JsonlDataConfig)
    data = to_dict(cfg)
    assert list(data["model"]["backbone"])[0] == "kind" and data["data"]["kind"] == "jsonl"
    assert to_dict(from_dict(RunConfig, data)) == data
    # a bare string is the kind with its defaults; a mapping without kind keeps the default kind
    assert from_dict(RunConfig, {"model": {"backbone": "unet"}}).model.backbone == UNetConfig()
    assert from_dict(RunConfig, {"model": {"backbone": {"num_blocks": 2}}}).model.backbone.kind == "rin"


def test_switching_kind_on_the_command_line_starts_the_section_afresh():
    cfg = load_run_config("cpu_tiny", ["data.kind=jsonl", "data.path=captions.jsonl"])
    assert isinstance(cfg.data, JsonlDataConfig) and cfg.data.path == "captions.jsonl"
    cfg = load_run_config("cpu_tiny", ["data.path=a.jsonl", "data.kind=jsonl"])  # order does not matter
    assert cfg.data.path == "a.jsonl"
    same = apply_overrides({"data": {"kind": "toy", "num_samples": 3}}, ["data.kind=toy"])
    assert same == {"data": {"kind": "toy", "num_samples": 3}}  # same kind: nothing is dropped
    assert load_run_config("cpu_tiny", ["model.backbone=unet"]).model.backbone == UNetConfig()


@pytest.mark.parametrize("data, message", [
    ({"model": {"backbone": {"kind": "unet", "patch_size": 2}}}, "unknown config key(s) model.backbone.patch_size"),
    ({"data": {"kind": "jsonl"}}, "missing required key(s) data.path"),
    ({"data": {"kind": "nosuch"}}, "unknown data source 'nosuch'; known: "),
    ({"text_encoder": 3}, "expected a mapping with a kind"),
])
def test_bad_sections_are_one_line_errors(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, data)
    assert message in str(info.value) and "\n" not in str(info.value)
