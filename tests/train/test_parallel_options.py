"""Activation checkpointing and per-block torch.compile change nothing but speed and memory."""

import pytest
import torch
from runs import tiny_run

from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics

COMMON = ["model.reward_keys=[brightness,size]", "train.batch_size=8", "train.steps=3", "train.log_every=1",
          "optim.warmup_steps=1", "train.checkpoint_every=0"]


def _losses(tmp_path, name, *extra):
    train(tiny_run(tmp_path / name, *COMMON, *extra))
    return torch.tensor([r["loss"] for r in read_metrics(tmp_path / name)])


@pytest.mark.parametrize("options", [["train.activation_checkpointing=true"],
                                     ["train.compile=true", "train.compile_backend=aot_eager"]],
                         ids=["activation_checkpointing", "compile"])
def test_same_losses_as_plain_training(tmp_path, options):
    plain = _losses(tmp_path, "plain")
    other = _losses(tmp_path, "other", *options)
    assert len(plain) == 3
    torch.testing.assert_close(other, plain, atol=1e-5, rtol=1e-5)
