"""Optimizers and the learning-rate schedule (their checkpointing: test_checkpoint.py)."""

import json
import math

import pytest
import torch
from torch import nn

from mirokit.config import ConfigError, from_dict
from mirokit.train.optim import (
    Lamb,
    OptimConfig,
    build_optimizer,
    build_scheduler,
    lr_factor,
    param_groups,
)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.out = nn.Linear(4, 2)
        self.pos_embed = nn.Parameter(torch.randn(1, 5, 4) * 0.1)
        self.registers = nn.Parameter(torch.randn(2, 4) * 0.1)
        self.latents = nn.Parameter(torch.randn(3, 4) * 0.1)
        self.frozen = nn.Parameter(torch.randn(4, 4), requires_grad=False)

    def forward(self, x):
        h = self.norm(self.proj(x)) + self.pos_embed.mean() + self.registers.sum() + self.latents.mean()
        return self.out(torch.tanh(h))


def _step(model, opt, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, 2, generator=g)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def test_param_groups_split():
    torch.manual_seed(0)
    model = Tiny()
    groups = param_groups(model, 0.05)
    assert [g["names"] for g in param_groups(nn.DataParallel(model), 0.05)] == [g["names"] for g in groups]
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert sorted(decay["names"]) == ["out.weight", "proj.weight"]
    assert sorted(no_decay["names"]) == sorted(
        ["proj.bias", "norm.weight", "norm.bias", "out.bias", "pos_embed", "registers", "latents"]
    )
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert len(decay["params"]) == len(decay["names"])


def test_build_optimizer_kinds_and_unknown():
    model = Tiny()
    assert isinstance(build_optimizer(model, OptimConfig(name="adamw")), torch.optim.AdamW)
    lamb = build_optimizer(model, OptimConfig(name="lamb", lr=3e-4))
    assert isinstance(lamb, Lamb) and lamb.param_groups[0]["lr"] == 3e-4
    with pytest.raises(ValueError, match="known: adamw, lamb") as err:
        build_optimizer(model, OptimConfig(name="sgd"))
    assert "\n" not in str(err.value)


def test_config_validation_and_yaml_betas():
    cfg = from_dict(OptimConfig, {"name": "lamb", "betas": [0.8, 0.95], "lr": 1})
    assert cfg.betas == (0.8, 0.95) and isinstance(cfg.lr, float)
    with pytest.raises(ConfigError):
        from_dict(OptimConfig, {"min_lr_ratio": 1.5})
    with pytest.raises(ValueError):
        OptimConfig(betas=(0.9, 1.0))


def test_lamb_one_step_by_hand():
    lr, wd, eps, b1, b2 = 0.1, 0.1, 1e-6, 0.9, 0.99
    w = nn.Parameter(torch.tensor([3.0, 4.0]))
    b = nn.Parameter(torch.tensor([0.0]))
    groups = [{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}]
    opt = Lamb(groups, lr=lr, betas=(b1, b2), eps=eps)
    gw, gb = [0.5, -2.0], [1.0]
    w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
    opt.step()
    # Step 1: bias-corrected moments are g and g^2, so the Adam direction is g / (|g| + eps).
    u = [g / (abs(g) + eps) + wd * x for g, x in zip(gw, [3.0, 4.0])]
    trust = 5.0 / math.sqrt(sum(v * v for v in u))
    expected_w = [x - lr * trust * v for x, v in zip([3.0, 4.0], u)]
    assert torch.allclose(w.detach(), torch.tensor(expected_w), atol=1e-6, rtol=0)
    # ||b|| = 0 -> trust ratio 1.
    assert torch.allclose(b.detach(), torch.tensor([-lr * 1.0 / (1.0 + eps)]), atol=1e-7, rtol=0)

    # Step 2 against a float64 reference of the same recurrences (checks bias correction at t=2).
    w_prev = list(map(float, w.detach()))
    g2 = [-1.0, 0.25]
    w.grad, b.grad = torch.tensor(g2), None
    opt.step()
    m = [b1 * (1 - b1) * g1 + (1 - b1) * g for g1, g in zip(gw, g2)]
    v = [b2 * (1 - b2) * g1 * g1 + (1 - b2) * g * g for g1, g in zip(gw, g2)]
    u = [(mi / (1 - b1**2)) / (math.sqrt(vi / (1 - b2**2)) + eps) + wd * x for mi, vi, x in zip(m, v, w_prev)]
    trust = math.sqrt(sum(x * x for x in w_prev)) / math.sqrt(sum(x * x for x in u))
    expected_w = [x - lr * trust * ui for x, ui in zip(w_prev, u)]
    assert torch.allclose(w.detach(), torch.tensor(expected_w), atol=1e-6, rtol=0)
    assert opt.state[w]["step"].item() == 2 and opt.state[b]["step"].item() == 1


def test_lr_factor_shape_and_scheduler():
    cfg = OptimConfig(lr=2e-3, warmup_steps=10, total_steps=50, min_lr_ratio=0.1)
    f = [lr_factor(s, cfg) for s in range(80)]
    assert 0 < f[0] <= 0.1 + 1e-12
    assert all(a < b for a, b in zip(f[:10], f[1:10]))  # strictly rising warm-up
    assert f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # never rising after warm-up
    assert f[30] == pytest.approx(0.1 + 0.9 * 0.5)  # cosine midpoint
    assert f[50] == pytest.approx(0.1) and f[79] == pytest.approx(0.1)
    assert lr_factor(0, OptimConfig(warmup_steps=0, total_steps=10)) == pytest.approx(1.0)

    param = nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([param], lr=cfg.lr)
    sched = build_scheduler(opt, cfg)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        param.grad = torch.ones(2)
        opt.step()
        sched.step()
    assert seen == pytest.approx([cfg.lr * x for x in f[:12]])
    json.dumps(sched.state_dict())  # JSON-able, so the checkpoint needs no pickle


def test_adamw_on_cpu_is_fused_and_matches_the_reference_update():
    torch.manual_seed(0)
    model, reference = Tiny(), Tiny()
    reference.load_state_dict(model.state_dict())
    cfg = OptimConfig(name="adamw", lr=0.05, weight_decay=0.1)
    opt = build_optimizer(model, cfg)
    assert opt.defaults["fused"] is True
    ref_opt = torch.optim.AdamW(param_groups(reference, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay, foreach=False)
    for seed in range(5):
        _step(model, opt, seed)
        _step(reference, ref_opt, seed)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert not torch.equal(model.proj.weight, Tiny().proj.weight)
