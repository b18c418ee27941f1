"""Rank helpers and `parallelize` (DDP / FSDP2) on a small net; the full Trainer path is test_parallel.py.

The two-rank test runs this file as a script in two processes (gloo on CPU) with the same
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_* variables torchrun would set (launching them directly
skips torchrun's agent process, which costs ~5 s here), and compares the result with
single-process training on the full batch.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from mirokit.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
    is_main,
)
from mirokit.train.ema import EMA
from mirokit.train.metrics import MetricsLogger
from mirokit.train.optim import OptimConfig, build_optimizer
from mirokit.train.parallelize import gradient_sync, parallelize, unwrap

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the workers run this file as a script
from runs import rank_envs, run_processes

ROOT = Path(__file__).resolve().parents[2]
GLOBAL_BATCH = 8
STEPS = 3
CFG = OptimConfig(name="lamb", lr=0.05, weight_decay=0.01, warmup_steps=1, total_steps=10, grad_clip=0)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 6), nn.Linear(6, 6)])
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        for block in self.layers:
            x = torch.tanh(block(x))
        return self.head(x)

    def blocks(self):
        return list(self.layers)


def _problem():
    torch.manual_seed(0)
    model = Net()
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(GLOBAL_BATCH, 4, generator=g), torch.randn(GLOBAL_BATCH, 1, generator=g)


def _train(model, x, y, micro_steps=1):
    """STEPS optimizer steps on (x, y), each accumulated over `micro_steps` equal slices."""
    opt = build_optimizer(model, CFG)  # built after parallelize: on the final (sharded) parameters
    ema = EMA(model, decay=0.9)
    for step in range(STEPS):
        opt.zero_grad()
        for xs, ys, i in zip(x.chunk(micro_steps), y.chunk(micro_steps), range(micro_steps)):
            with gradient_sync(model, i == micro_steps - 1):
                (nn.functional.mse_loss(model(xs), ys) / micro_steps).backward()
        opt.step()
        ema.update(model, ema.decay_at(step))
    return opt, ema


def _full(t):
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach()


def _result(model, ema):
    weights = {n: _full(p).flatten().tolist() for n, p in unwrap(model).named_parameters()}
    return {"weights": weights, "ema": {n: t.flatten().tolist() for n, t in ema.full_state().items()}}


def _worker(out_dir: Path) -> None:
    info = init_distributed("cpu")
    assert dist.is_initialized() and info.world_size == 2 and info.device.type == "cpu"
    result = {
        "rank": info.rank,
        "is_main": is_main(),
        "mean": all_reduce_mean(torch.tensor([float(info.rank), 10.0 * info.rank])).tolist(),
        "broadcast": broadcast_object({"seed": (7, info.rank), "name": "ünï"} if info.rank == 0 else None),
    }
    rows = slice(info.rank * GLOBAL_BATCH // 2, (info.rank + 1) * GLOBAL_BATCH // 2)
    for strategy in ("ddp", "fsdp2"):
        model, x, y = _problem()
        wrapped = parallelize(model, info, strategy=strategy)
        opt, ema = _train(wrapped, x[rows], y[rows], micro_steps=2)
        result[strategy] = _result(wrapped, ema)
        result[f"{strategy}_wrapped"] = type(wrapped).__name__
        result[f"{strategy}_block"] = type(unwrap(wrapped).layers[0]).__name__
        shadow = next(iter(ema.shadow.values()))
        result[f"{strategy}_ema_sharded"] = hasattr(shadow, "device_mesh")  # EMA sharded like the weights
    with MetricsLogger(out_dir / "run", enabled=info.is_main, tensorboard=False) as log:
        log.log(0, {"rank": float(info.rank)})
    barrier()
    (out_dir / f"rank{info.rank}.json").write_text(json.dumps(result))
    cleanup()


def test_two_ranks_match_single_process(tmp_path):
    envs = rank_envs(2, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run_processes([[sys.executable, __file__, str(tmp_path)]] * 2, envs, timeout=90, what="distributed workers")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    model, x, y = _problem()
    _, ema = _train(model, x, y)
    ref = _result(model, ema)
    for res in ranks:
        assert res["mean"] == [0.5, 5.0]
        assert res["broadcast"] == {"seed": [7, 0], "name": "ünï"}
        assert res["ddp_wrapped"] == "DistributedDataParallel"
        assert res["fsdp2_block"].startswith("FSDP") and res["ddp_block"] == "Linear"  # blocks sharded
        assert res["fsdp2_ema_sharded"] and not res["ddp_ema_sharded"]
        for strategy in ("ddp", "fsdp2"):
            for part in ("weights", "ema"):
                got, want = res[strategy][part], ref[part]
                assert got.keys() == want.keys()
                for name in want:
                    diff = (torch.tensor(got[name]) - torch.tensor(want[name])).abs().max().item()
                    assert diff <= 1e-6, (strategy, part, name, diff)
    assert [r["is_main"] for r in ranks] == [True, False]
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["rank"] for r in rows] == [0.0]  # only rank 0 logs
    # Training actually moved the weights (so the comparison above is not trivially true).
    start, _, _ = _problem()
    assert not torch.allclose(start.head.weight, model.head.weight)


def test_single_process_helpers(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert info.is_main and is_main() and not dist.is_initialized()
    t = torch.tensor([1.5, -2.0])
    out = all_reduce_mean(t)
    assert torch.equal(out, t) and out.data_ptr() != t.data_ptr()
    with pytest.raises(TypeError):
        all_reduce_mean(torch.tensor([1, 2]))
    assert broadcast_object({"a": (1, 2)}) == {"a": [1, 2]}
    barrier()
    cleanup()

    model = Net()
    assert parallelize(model, info, strategy="ddp") is model  # nothing to synchronise
    assert parallelize(model, info, strategy="fsdp2") is model
    with pytest.raises(ValueError, match="known: none, ddp, fsdp2"):
        parallelize(model, info, strategy="zero3")
    assert unwrap(nn.DataParallel(model)) is model


@pytest.mark.parametrize("checkpointing, calls", [(False, 2), (True, 4)])
def test_activation_checkpointing_recomputes_each_block(checkpointing, calls):
    seen = []
    model = Net()
    for layer in model.layers:
        layer.register_forward_pre_hook(lambda *_: seen.append(1))
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    model = parallelize(model, info, strategy="none", activation_checkpointing=checkpointing)
    model(torch.randn(3, 4)).sum().backward()
    assert len(seen) == calls  # 2 blocks, run again in the backward pass when checkpointed


def test_env_and_device_errors(monkeypatch):
    with pytest.raises(ValueError, match="known: auto, cuda, cpu"):
        init_distributed("gpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="outside WORLD_SIZE"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="not an integer"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            init_distributed("cuda")
        assert init_distributed("auto").device == torch.device("cpu")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
