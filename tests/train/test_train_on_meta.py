"""The real Trainer's step on the `meta` device (train.device=meta): the loader's batch, conditions, the flow loss
with self-conditioning, backward, clipping, the optimizer step and the EMA update, for each backbone. On `meta` a
tensor made on the CPU that meets the model's is an error, and nothing can be read back: the step keeps its
statistics on the device (the loop reads them at its logging steps), so a per-step read would fail here too."""

import pytest
import torch
from runs import TINY_RIN, TINY_UNET, tiny_run

from mirokit.data.loader import batches
from mirokit.train.loop import Trainer


def _trainer(tmp_path, base, *overrides):
    cfg = tiny_run(tmp_path / "run", "train.device=meta", "train.batch_size=4", "train.steps=2",
                   "model.reward_keys=[brightness, size]", "validation.every=0", *overrides, base=base)
    return Trainer(cfg)


@pytest.mark.parametrize("base", [TINY_RIN, TINY_UNET], ids=["rin", "unet"])
@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_a_training_step_runs_on_meta(tmp_path, base, optimizer):
    trainer = _trainer(tmp_path, base, f"optim.name={optimizer}", "train.grad_accum=2", "flow.self_cond_prob=0.5")
    assert all(p.device.type == "meta" for p in trainer.module.parameters())
    loader = batches(trainer.loader())
    for _ in range(2):
        stats = trainer.train_step(next(loader))
    assert trainer.step == 2 and stats["loss"].device.type == "meta" and isinstance(stats["lr"], float)
    assert {"loss", "mse", "logvar", "grad_norm"} <= set(stats)
    assert all(s.device.type == "meta" for s in trainer.ema.shadow.values())


def test_a_tensor_made_on_the_host_inside_the_step_fails_on_meta(tmp_path, monkeypatch):
    """The planted bug: a `torch.zeros(n)` without a device added to the loss (as a per-sample weight would be)."""
    import mirokit.flow.loss as loss_module

    real = loss_module.interpolate

    def planted(x0, noise, gamma):
        return real(x0, noise, gamma) + torch.zeros(x0.shape[0]).view(-1, 1, 1, 1)

    monkeypatch.setattr(loss_module, "interpolate", planted)
    trainer = _trainer(tmp_path, TINY_RIN)
    with pytest.raises(RuntimeError, match="is not on the expected device meta"):
        trainer.train_step(next(batches(trainer.loader())))


def test_meta_is_one_process_only():
    import os

    from mirokit.distributed import init_distributed

    os.environ.update(WORLD_SIZE="2", RANK="0")
    try:
        with pytest.raises(ValueError, match="device 'meta' runs in one process"):
            init_distributed("meta")
    finally:
        del os.environ["WORLD_SIZE"], os.environ["RANK"]
