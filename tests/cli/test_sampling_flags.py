"""The shared sampler flags: explicit flag > --preset > the model's released defaults > built-in defaults."""

import argparse
import json

import pytest

from mirokit.cli.sampling_flags import add_sampling_flags, parse_named, resolve_sampling


def _args(*argv):
    p = argparse.ArgumentParser()
    add_sampling_flags(p)
    return p.parse_args(list(argv))


@pytest.fixture
def preset(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"rewards": {"a": 0.3, "b": 0.9}, "negative_rewards": {"a": 0.6},
                                "text_guidance": 2.0, "reward_guidance": 4.0, "solver": "heun", "steps": 12,
                                "shift": 2.0}))
    return str(path)


def test_builtin_defaults_then_model_defaults():
    s = resolve_sampling(_args())
    assert (s.cfg.solver, s.cfg.steps, s.cfg.shift, s.cfg.guidance.scale) == ("euler", 50, 1.0, 7.0)
    s = resolve_sampling(_args(), {"steps": 30, "guidance": 5.0})
    assert (s.cfg.steps, s.cfg.guidance.scale) == (30, 5.0)


def test_preset_beats_model_defaults_and_flags_beat_the_preset(preset):
    s = resolve_sampling(_args("--preset", preset), {"steps": 30, "guidance": 5.0})
    assert (s.cfg.solver, s.cfg.steps, s.cfg.shift) == ("heun", 12, 2.0)
    assert (s.cfg.guidance.text_scale, s.cfg.guidance.reward_scale) == (2.0, 4.0)
    assert s.rewards == {"a": 0.3, "b": 0.9} and s.negative_rewards == {"a": 0.6}
    s = resolve_sampling(_args("--preset", preset, "--steps", "4", "--solver", "euler", "--reward", "a=0.1",
                               "--negative-reward", "b=nan"))
    assert (s.cfg.solver, s.cfg.steps, s.cfg.shift) == ("euler", 4, 2.0)
    assert s.rewards == {"a": 0.1, "b": 0.9} and s.negative_rewards == {"a": 0.6, "b": None}
    # any guidance flag replaces the preset's guidance settings, separate scales included
    s = resolve_sampling(_args("--preset", preset, "--guidance", "3"))
    assert s.cfg.guidance.scale == 3.0 and not s.cfg.guidance.separate
    assert s.settings()["preset"] == preset and s.settings()["guidance"] == 3.0


@pytest.mark.parametrize("argv,expected", [
    (["--steps", "0"], "--steps and --batch-size must be >= 1"),
    (["--shift", "0"], "--shift must be > 0"),
    (["--text-guidance", "2"], "set both text_scale and reward_scale"),
])
def test_bad_values(argv, expected):
    with pytest.raises(ValueError, match=expected):
        resolve_sampling(_args(*argv))


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
