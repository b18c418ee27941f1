"""The shared sampler flags: parsed into explicit settings, resolved over --preset and the model's defaults."""

import argparse
import json

import pytest

from mirokit.cli.sampling_flags import add_sampling_flags, explicit_settings
from mirokit.config import parse_named
from mirokit.sampling.targets import settings_for


def resolve_flags(args, model_defaults=None):
    """What the sampling commands do with the parsed flags (mirokit.sampling.targets.settings_for)."""
    return settings_for(explicit_settings(args), args.preset, model_defaults, ["a", "b"])


def _args(*argv):
    p = argparse.ArgumentParser()
    add_sampling_flags(p)
    return p.parse_args(list(argv))


def test_flags_become_explicit_settings_that_beat_the_preset(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"rewards": {"a": 0.3}, "text_guidance": 2.0, "reward_guidance": 4.0, "steps": 12}))
    s = resolve_flags(_args("--preset", str(path), "--guidance", "3", "--reward", "b=nan", "--seed", "2"),
                      {"steps": 30, "solver": "ab2"})
    assert (s.steps, s.solver, s.guidance, s.separate_guidance, s.seed) == (12, "ab2", 3.0, False, 2)
    assert s.rewards == {"a": 0.3, "b": None}
    assert explicit_settings(_args())["seed"] is None  # an unset flag leaves the preset's value


@pytest.mark.parametrize("argv,expected", [
    (["--steps", "0"], "steps must be an integer >= 1"),
    (["--shift", "0"], "shift must be > 0"),
    (["--text-guidance", "2"], "set both text_guidance and reward_guidance"),
    (["--reward", "a"], "--reward 'a' must look like KEY=VALUE"),
])
def test_bad_values(argv, expected):
    with pytest.raises(ValueError, match=expected):
        resolve_flags(_args(*argv))


def test_named_models():
    assert parse_named(["a=x/model", "runs/miro/model", "runs/b"], "--model") == {
        "a": "x/model", "miro": "runs/miro/model", "b": "runs/b"}
    with pytest.raises(ValueError, match="given twice"):
        parse_named(["a=x", "a=y"], "--model")


def test_sample_accepts_a_preset_and_flags_override_it(tmp_path, capsys):
    import sys
    from pathlib import Path

    from mirokit.cli.main import main

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    from runs import TINY_RIN

    run = tmp_path / "run"
    assert main(["train", "--config", "cpu_tiny", *TINY_RIN, f"out_dir={run}", "train.steps=1", "train.batch_size=4",
                 "train.progress=false", "data.num_samples=16", "train.checkpoint_every=0"]) == 0
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"rewards": {"brightness": 0.2}, "negative_rewards": {"size": 0.7}, "guidance": 1.5,
                                  "solver": "midpoint", "steps": 5}))
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(run / "model"), "--prompt", "a red circle", "--preset", str(preset),
                 "--steps", "2", "--reward", "size=0.4", "--out", str(out)]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["rewards"] == {"brightness": 0.2, "size": 0.4} and settings["negative_rewards"] == {"size": 0.7}
    assert (settings["solver"], settings["steps"], settings["guidance"]) == ("midpoint", 2, 1.5)
    assert (out / "000_000.png").is_file()
    # the preset's targets really reach the sampler: another target gives another image
    other = tmp_path / "other"
    assert main(["sample", "--model", str(run / "model"), "--prompt", "a red circle", "--preset", str(preset),
                 "--steps", "2", "--reward", "size=0.9", "--out", str(other)]) == 0
    assert (other / "000_000.png").read_bytes() != (out / "000_000.png").read_bytes()
    # an option declared only in SamplingSettings reaches the command line, settings.json and the images
    interval = tmp_path / "interval"
    assert main(["sample", "--model", str(run / "model"), "--prompt", "a red circle", "--preset", str(preset),
                 "--steps", "2", "--reward", "size=0.4", "--guidance-interval", "0.4:1", "--out", str(interval)]) == 0
    assert json.loads((interval / "settings.json").read_text())["guidance_interval"] == [0.4, 1.0]
    assert (interval / "000_000.png").read_bytes() != (out / "000_000.png").read_bytes()  # step 1 (gamma 0) unguided
