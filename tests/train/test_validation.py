"""Validation grids during training: prompts x reward targets from the EMA weights, PNG + TensorBoard."""

import pytest
from PIL import Image
from runs import tiny_run

from mirokit.config import ConfigError
from mirokit.train.loop import train


def test_grids_are_written_every_n_steps(tmp_path):
    train(tiny_run(tmp_path, "model.reward_keys=[brightness,size]", "train.batch_size=8", "train.steps=4",
                   "optim.warmup_steps=1", "train.checkpoint_every=0", "validation.every=2",
                   "validation.prompts=[a red circle, a blue square, a green triangle]",
                   "validation.targets=[{}, {brightness: 0.0}]", "validation.sampling={steps: 2}"))
    grids = sorted(p.name for p in (tmp_path / "validation").glob("*.png"))
    assert grids == ["step_0000002.png", "step_0000004.png"]
    assert Image.open(tmp_path / "validation" / grids[0]).size == (3 * 16, 2 * 16)  # columns x rows
    assert list((tmp_path / "tensorboard").glob("events.*"))


def test_validation_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key.*validation.prompt"):
        tiny_run(tmp_path, "validation.prompt=[x]")
    with pytest.raises(ValueError, match="unknown reward key 'aesthetic'"):
        train(tiny_run(tmp_path, "model.reward_keys=[brightness]", "train.batch_size=8", "train.steps=1",
                       "validation.every=1", "validation.prompts=[x]", "validation.targets=[{aesthetic: 1.0}]"))
