"""Sampling presets: built-in names, JSON files that round-trip, unknown keys and bad values rejected."""

import json

import pytest

from mirokit.sampling.presets import SAMPLER_PRESETS, SamplingPreset, load_preset, save_preset


def test_official_preset_is_the_papers_sampler():
    p = load_preset("official")
    assert (p.solver, p.steps, p.guidance, p.shift) == ("euler", 50, 7.0, 1.0)
    p.steps = 3  # a loaded preset is a copy: the registry's entry is untouched
    assert SAMPLER_PRESETS["official"].steps == 50


def test_fast_preset_keeps_the_models_guidance_and_halves_the_cost():
    from mirokit.sampling.solvers import function_evaluations

    fast, official = load_preset("fast"), load_preset("official")
    assert fast.guidance is None and fast.rewards is None and fast.negative_rewards is None
    assert 2 * function_evaluations(fast.solver, fast.steps) <= function_evaluations(official.solver, official.steps)
    assert "BENCHMARKS.md" in fast.about["description"]


def test_json_round_trip_keeps_every_field(tmp_path):
    preset = SamplingPreset(rewards={"a": 0.25, "b": None}, negative_rewards={"a": 0.5}, guidance=2.5,
                            text_guidance=None, solver="dpm++2m", steps=12, shift=3.0, about={"metric": "shapes"})
    path = save_preset(preset, tmp_path / "sub" / "p.json")
    assert load_preset(path) == preset
    assert json.loads(path.read_text())["rewards"] == {"a": 0.25, "b": None}
    assert "text_guidance" not in json.loads(path.read_text())  # unset fields are not written


@pytest.mark.parametrize("data,expected", [
    ({"rewardz": {}}, "unknown preset key(s) rewardz"),
    ({"solver": "rk4"}, "solver 'rk4' is unknown"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"guidance": "high"}, "guidance must be a finite number"),
    ({"rewards": {"a": "x"}}, "rewards.a must be a number or null"),
    ({"rewards": [1]}, "rewards must be a {key: value} object"),
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
