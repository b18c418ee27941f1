"""SamplingSettings and `resolve`: explicit > preset > the model's defaults > the official sampler."""

import pytest

from mirokit.sampling import SamplingSettings, check_partial, resolve

PRESET = {"rewards": {"a": 0.3, "b": 0.9}, "negative_rewards": {"a": 0.6}, "text_guidance": 2.0,
          "reward_guidance": 4.0, "solver": "heun", "steps": 12, "shift": 2.0, "about": {"why": "a test"}}


def test_the_defaults_are_the_official_sampler_then_the_model_defaults_apply():
    s = resolve()
    assert (s.solver, s.steps, s.shift, s.guidance, s.seed, s.rewards) == ("euler", 50, 1.0, 7.0, 0, {})
    assert s == SamplingSettings() and s.function_evaluations == 50
    s = resolve(model_defaults={"steps": 30, "guidance": 5.0})
    assert (s.steps, s.guidance) == (30, 5.0)


def test_preset_beats_model_defaults_and_explicit_beats_the_preset():
    s = resolve(preset=PRESET, model_defaults={"steps": 30, "guidance": 5.0, "rewards": {"c": 0.5}})
    assert (s.solver, s.steps, s.shift, s.text_guidance, s.reward_guidance) == ("heun", 12, 2.0, 2.0, 4.0)
    assert s.rewards == {"a": 0.3, "b": 0.9, "c": 0.5} and s.negative_rewards == {"a": 0.6}
    s = resolve({"steps": 4, "solver": "euler", "rewards": {"a": 0.1}, "negative_rewards": {"b": None}}, PRESET)
    assert (s.solver, s.steps, s.shift) == ("euler", 4, 2.0)
    assert s.rewards == {"a": 0.1, "b": 0.9} and s.negative_rewards == {"a": 0.6, "b": None}


def test_guidance_comes_as_one_group_from_the_first_layer_that_sets_it():
    s = resolve({"guidance": 3.0}, PRESET)  # a joint scale replaces the preset's separate ones
    assert s.guidance == 3.0 and not s.separate_guidance
    s = resolve({"text_guidance": 1.0, "reward_guidance": 2.0}, {"guidance": 3.0})
    assert s.separate_guidance and (s.text_guidance, s.reward_guidance) == (1.0, 2.0)
    assert resolve(preset={"solver": "ab2"}, model_defaults={"guidance": 2.0}).guidance == 2.0


@pytest.mark.parametrize("explicit, expected", [
    ({"steps": 0}, "steps must be an integer >= 1"), ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"shift": 0.0}, "shift must be > 0"), ({"text_guidance": 2.0}, "set both text_guidance and reward_guidance"),
    ({"solver": "rk4"}, "unknown solver 'rk4'"), ({"guidance": float("nan")}, "guidance must be a finite number"),
    ({"rewards": {"a": "x"}}, "rewards.a must be a number or null"), ({"rewards": [1]}, "rewards must be a"),
    ({"seed": -1}, "seed must be an integer >= 0"), ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"stepz": 3}, "unknown sampling setting(s) stepz"),
])
def test_bad_values_are_one_line_errors_naming_the_layer(explicit, expected):
    with pytest.raises(ValueError) as err:
        resolve(explicit)
    assert expected in str(err.value) and str(err.value).startswith("explicit setting:") and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="preset:"):
        resolve(preset=explicit)


def test_replace_checks_and_copies():
    s = SamplingSettings(rewards={"a": 0.5})
    t = s.replace(steps=3)
    t.rewards["a"] = 0.1
    assert s.rewards == {"a": 0.5} and t.steps == 3 and s.steps == 50
    with pytest.raises(ValueError, match="steps"):
        s.replace(steps=0)


def test_preset_fields_leave_out_the_seed_and_unset_separate_scales():
    assert set(SamplingSettings().to_preset()) == {"rewards", "negative_rewards", "solver", "steps", "shift",
                                                   "guidance"}
    assert check_partial({"steps": None, "about": {"x": 1}}, "p") == {"about": {"x": 1}}
