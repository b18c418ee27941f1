"""Multi-process training through the real CLI and Trainer: DDP and FSDP2 (gloo, CPU), checkpoints
written by 2 ranks resumed on 1 and the other way round, all against one process at the same
global batch.

Runs (tiny RIN, toy data, global batch 8, 6 steps, checkpoints every 3):
    single   one process (in this process)          accum   one process, grad_accum=2
    ddp      torchrun --nproc_per_node 2, DDP        fsdp    2 ranks, FSDP2, grad_accum=2
    fsdp_1   2 ranks FSDP2 (activation checkpointing) to step 3, then 1 process to step 6
    one_fsdp 1 process to step 3, then 2 ranks FSDP2 to step 6
Ranks other than the torchrun one are started directly with the variables torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*), which skips torchrun's agent (~5 s per launch).
"""

import os
import sys

import pytest
import torch
import yaml

from mirokit.config import to_dict
from mirokit.pipeline import MiroPipeline
from mirokit.train import checkpoint as ckpt
from mirokit.train.loop import Trainer, train
from mirokit.train.metrics import read_metrics

from runs import free_port, rank_envs, run_processes, tiny_run

STEPS = 6
OPTIONS = ["model.reward_keys=[brightness,size]", "train.batch_size=8", "train.log_every=1",
           "optim.warmup_steps=1", f"optim.total_steps={STEPS}", "train.checkpoint_every=3", "train.device=cpu",
           "train.ema_decay=0.5", "train.ema_warmup=false", "train.keep_checkpoints=0",
           "text_encoder={kind: tokens, vocab_size: 64, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}"]
ATOL = 2e-5


def _launch(config, out_dir, ranks: int, *overrides, torchrun: bool = False) -> None:
    """`mirokit train` on `ranks` processes (gloo), one thread each."""
    cli = ["-m", "mirokit.cli.main", "train", "--config", str(config), f"out_dir={out_dir}", *overrides]
    if torchrun:
        cmds = [[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                 "--master_port", str(free_port()), *cli]]
        envs = [dict(os.environ, OMP_NUM_THREADS="1")]
    else:
        envs = rank_envs(ranks)
        cmds = [[sys.executable, *cli]] * ranks
    run_processes(cmds, envs, timeout=300, what=f"training {out_dir}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    cfg = tiny_run(root / "single", *OPTIONS, f"train.steps={STEPS}")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))

    def here(name, *overrides):
        train(tiny_run(root / name, *OPTIONS, *overrides))

    here("single", f"train.steps={STEPS}")
    here("accum", f"train.steps={STEPS}", "train.grad_accum=2")
    _launch(config, root / "ddp", 2, "train.parallel=ddp", torchrun=True)
    _launch(config, root / "fsdp", 2, "train.parallel=fsdp2", "train.grad_accum=2")
    _launch(config, root / "fsdp_1", 2, "train.parallel=fsdp2", "train.steps=3", "train.activation_checkpointing=true")
    here("fsdp_1", f"train.steps={STEPS}")
    here("one_fsdp", "train.steps=3")
    _launch(config, root / "one_fsdp", 2, "train.parallel=fsdp2")
    return root


@pytest.fixture(scope="module")
def moving(runs):
    """Per parameter, the elements whose gradient is not zero up to float noise at the first step.

    The others (key biases, which softmax ignores; unused token rows) get a true gradient of 0, and
    float noise of ~1e-10 that Adam turns into lr-sized steps differing between reduction orders; they
    never change what the model computes.
    """
    trainer = Trainer(tiny_run(runs / "probe", *OPTIONS))
    trainer.optimizer.step = lambda: None  # keep the first step's gradients
    trainer.optimizer.zero_grad = lambda set_to_none=True: None
    trainer.train_step(next(iter(trainer.loader())))
    grads = {name: p.grad for name, p in trainer.module.named_parameters()}
    top = max(g.abs().max() for g in grads.values())
    mask = {name: g.abs() > 1e-8 * top for name, g in grads.items()}
    frozen = sum(int((~m).sum()) for m in mask.values())
    assert frozen < 0.1 * sum(m.numel() for m in mask.values())  # the comparison covers >90% of the weights
    return mask


def _assert_close(got: dict, want: dict, mask: dict, what: str) -> None:
    assert got.keys() == want.keys(), what
    for name, value in want.items():
        diff = (got[name].float() - value.float()).abs()
        if name in mask:
            diff = diff[mask[name]]
        worst = diff.max().item() if diff.numel() else 0.0
        assert worst <= ATOL, (what, name, worst)


@pytest.mark.parametrize("run", ["accum", "ddp", "fsdp", "fsdp_1", "one_fsdp"])
def test_same_losses_and_weights_as_one_process(runs, moving, run):
    want = [r["loss"] for r in read_metrics(runs / "single")]
    got = [r["loss"] for r in read_metrics(runs / run)]
    assert [r["step"] for r in read_metrics(runs / run)] == list(range(1, STEPS + 1))  # resumes continue the file
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-5, rtol=1e-5)
    assert want[-1] < want[0]  # training moved the loss: the comparison is not vacuous
    final = ckpt.checkpoint_name(STEPS)
    for prefix in ("model.", "ema."):
        _assert_close(ckpt.read_tensors(runs / run / "checkpoints" / final, prefix),
                      ckpt.read_tensors(runs / "single" / "checkpoints" / final, prefix), moving, f"{run} {prefix}")


def test_fsdp2_equals_ddp(runs, moving):
    ddp, fsdp = read_metrics(runs / "ddp"), read_metrics(runs / "fsdp")
    torch.testing.assert_close(torch.tensor([r["loss"] for r in fsdp]), torch.tensor([r["loss"] for r in ddp]),
                               atol=1e-5, rtol=1e-5)
    final = ckpt.checkpoint_name(STEPS)
    for prefix in ("model.", "ema."):
        _assert_close(ckpt.read_tensors(runs / "fsdp" / "checkpoints" / final, prefix),
                      ckpt.read_tensors(runs / "ddp" / "checkpoints" / final, prefix), moving, f"fsdp vs ddp {prefix}")


def test_sharded_checkpoints_hold_one_shard_per_rank(runs):
    shards = sorted(p.name for p in (runs / "fsdp" / "checkpoints" / "step_0000003" / "train_state").iterdir())
    assert [s for s in shards if s.endswith(".safetensors")] == [
        "shard-00001-model-00001-of-00001.safetensors", "shard-00002-model-00001-of-00001.safetensors"]
    state = ckpt.read_state(runs / "fsdp" / "checkpoints" / "step_0000003")
    assert state["world_size"] == 2 and state["step"] == 3 and state["images_seen"] == 24
    # sharded runs export the model only at the end; unsharded ones at every checkpoint
    assert not (runs / "fsdp" / "checkpoints" / "step_0000003" / "model.safetensors").exists()
    assert (runs / "ddp" / "checkpoints" / "step_0000003" / "model.safetensors").is_file()
    with pytest.raises(FileNotFoundError, match="mirokit export"):
        MiroPipeline.from_pretrained(runs / "fsdp" / "checkpoints" / "step_0000003")


def test_final_export_gathers_the_ema(runs, moving):
    from safetensors.torch import load_file

    want = load_file(str(runs / "single" / "model" / "model.safetensors"))
    gen_mask = {k[len("generator."):]: v for k, v in moving.items() if k.startswith("generator.")}
    for run in ("fsdp", "one_fsdp"):
        got = load_file(str(runs / run / "model" / "model.safetensors"))
        _assert_close(got, want, gen_mask, run)
    MiroPipeline.from_pretrained(runs / "fsdp" / "model")  # loads as a model folder


def test_export_command_on_a_sharded_checkpoint(runs, moving, tmp_path):
    from safetensors.torch import load_file

    from mirokit.cli.main import main

    assert main(["export", str(runs / "fsdp" / "checkpoints" / "step_0000003"), "--out", str(tmp_path / "m")]) == 0
    pipe = MiroPipeline.from_pretrained(tmp_path / "m")
    ema = ckpt.read_tensors(runs / "single" / "checkpoints" / "step_0000003", "ema.generator.")
    gen_mask = {k[len("generator."):]: v for k, v in moving.items() if k.startswith("generator.")}
    _assert_close(load_file(str(tmp_path / "m" / "model.safetensors")), ema, gen_mask, "export")
    assert pipe.extra["step"] == 3
