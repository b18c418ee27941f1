"""Sampling presets: built-in names, JSON files that round-trip, unknown keys and bad values rejected."""

import json

import pytest

from mirokit.sampling import SamplingSettings, resolve
from mirokit.sampling.presets import SAMPLER_PRESETS, load_preset, save_preset


def test_official_preset_is_the_papers_sampler():
    p = load_preset("official")
    s = resolve(preset=p)
    assert (s.solver, s.steps, s.guidance, s.shift) == ("euler", 50, 7.0, 1.0)
    p["steps"] = 3  # a loaded preset is a copy: the registry's entry is untouched
    assert SAMPLER_PRESETS["official"]["steps"] == 50


def test_fast_preset_keeps_the_models_guidance_and_halves_the_cost():
    fast, official = resolve(preset=load_preset("fast"), model_defaults={"guidance": 3.0}), resolve(
        preset=load_preset("official"))
    assert fast.guidance == 3.0 and fast.rewards == {} and fast.negative_rewards == {}
    assert 2 * fast.function_evaluations <= official.function_evaluations
    assert "BENCHMARKS.md" in load_preset("fast")["about"]["description"]


def test_json_round_trip_keeps_every_sampling_field(tmp_path):
    settings = SamplingSettings(rewards={"a": 0.25, "b": None}, negative_rewards={"a": 0.5}, guidance=2.5,
                                solver="dpm++2m", steps=12, shift=3.0, seed=5)
    path = save_preset(settings, tmp_path / "sub" / "p.json", about={"metric": "shapes"})
    loaded = load_preset(path)
    assert loaded["about"] == {"metric": "shapes"} and resolve(preset=loaded) == settings.replace(seed=0)
    assert json.loads(path.read_text())["rewards"] == {"a": 0.25, "b": None}
    assert "text_guidance" not in json.loads(path.read_text())  # unset scales are not written


@pytest.mark.parametrize("data,expected", [
    ({"rewardz": {}}, "unknown sampling setting(s) rewardz"),
    ({"solver": "rk4"}, "unknown solver 'rk4'"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"guidance": "high"}, "guidance must be a finite number"),
    ({"rewards": {"a": "x"}}, "rewards.a must be a number or null"),
    ({"rewards": [1]}, "rewards must be a {key: value} mapping"),
    ({"shift": -1.0}, "shift must be > 0"),
])
def test_bad_preset_files_are_one_line_errors_naming_the_file(tmp_path, data, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bad.json") as err:
        load_preset(path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a built-in preset \\(official, fast\\) nor a JSON file"):
        load_preset(tmp_path / "none.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_preset(tmp_path / "broken.json")
