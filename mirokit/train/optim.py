"""Optimizers (AdamW, LAMB) and the warm-up + cosine learning-rate schedule.

No I/O and no distributed code here (checkpoint.py saves optimizer state, sharded or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mirokit.train.parallelize import unwrap

# A parameter whose own attribute name (the part after the last ".") ends with one of these is a
# learned token / table / position code rather than a weight matrix: decaying it towards zero only
# erases information, so it gets no weight decay.  Matching is case-insensitive.
NO_DECAY_SUFFIXES: tuple[str, ...] = (
    "embed",  # pos_embed, time_embed, ...
    "embedding",
    "embeddings",
    "pos",
    "position",
    "positions",
    "register",
    "registers",
    "register_tokens",
    "latents",
)

OPTIMIZERS = ("adamw", "lamb")


@dataclass(kw_only=True)
class OptimConfig:
    """Optimizer, learning-rate schedule and gradient clipping.

    Fields:
        name: "adamw" | "lamb".
        lr: peak learning rate (reached at the end of warm-up).
        betas: Adam moment decay rates (beta1, beta2).
        eps: added to sqrt(second moment) in the denominator.
        weight_decay: decoupled weight decay on matrices (never on biases/norms/embeddings).
        warmup_steps: optimizer steps of linear warm-up (0 = none).
        total_steps: step at which the cosine reaches min_lr_ratio * lr (constant after).
        min_lr_ratio: final learning rate as a fraction of lr.
        grad_clip: max global gradient L2 norm (0 = no clipping).
    """

    name: str = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 100
    total_steps: int = 1000
    min_lr_ratio: float = 0.1
    grad_clip: float = 2.0

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.lr <= 0 or self.eps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("lr must be > 0 and eps, weight_decay, grad_clip >= 0")
        if self.warmup_steps < 0 or self.total_steps < 1:
            raise ValueError("warmup_steps must be >= 0 and total_steps >= 1")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def _skips_decay(name: str, param: torch.Tensor) -> bool:
    leaf = name.rsplit(".", 1)[-1].lower()
    return param.ndim <= 1 or leaf.endswith(NO_DECAY_SUFFIXES)


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group.

    No decay: every parameter with ndim <= 1 (biases, norm scales/shifts, scalar gains) and every
    parameter whose attribute name ends with a marker in `NO_DECAY_SUFFIXES` (embedding, position,
    register and latent tokens).  Decay: everything else (linear/conv weights).  Frozen parameters
    are left out; empty groups are dropped.  Each group also carries `names` (for debugging and for
    the checkpoint's state.json); torch optimizers keep extra keys as-is.

    Returns:
        `[{"params", "names", "weight_decay"}, ...]`, decayed group first.
    """
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    for name, p in unwrap(module).named_parameters():  # plain names, wrapped or not
        if p.requires_grad:
            (no_decay if _skips_decay(name, p) else decay).append((name, p))
    groups = []
    for items, wd in ((decay, weight_decay), (no_decay, 0.0)):
        if items:
            groups.append({"params": [p for _, p in items], "names": [n for n, _ in items], "weight_decay": wd})
    return groups


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019): Adam direction rescaled per parameter tensor by a trust ratio.

    For each parameter w with gradient g, at step t (starting at 1):
        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
        u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * w
        r = ||w|| / ||u||   (r = 1 when either norm is 0)
        w = w - lr * r * u
    State per parameter is tensors only (`step` is a float32 scalar tensor, like AdamW's), so
    checkpoints hold it as safetensors.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid LAMB hyper-parameters lr={lr} betas={betas} eps={eps} wd={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Apply one LAMB update to every parameter that has a gradient; returns closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt_().add_(group["eps"]))
                if group["weight_decay"] != 0:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm = torch.linalg.vector_norm(p)
                u_norm = torch.linalg.vector_norm(update)
                # torch.where keeps this on-device (no host sync on CUDA).
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss


def build_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Build the optimizer named by `cfg.name` over `param_groups(module, cfg.weight_decay)`: the trainable
    parameters only (frozen ones get no optimizer state)."""
    groups = param_groups(module, cfg.weight_decay)
    if not groups:
        raise ValueError("no parameter to train: every parameter is frozen (requires_grad=False)")
    if cfg.name == "adamw":
        # torch picks the per-tensor Python loop on CPU; the fused kernel is ~4x faster there (the demo's
        # 1M-parameter model, one core of our machine: 4.0 -> 1.1 ms per step, ~5% of a training step;
        # bench/optimizer.py). Sharded (DTensor) or GPU parameters keep torch's default (foreach on CUDA).
        on_cpu = all(type(p) is nn.Parameter and p.device.type == "cpu" for g in groups for p in g["params"])
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                                 fused=True if on_cpu else None)
    if cfg.name == "lamb":
        return Lamb(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}; known: {', '.join(OPTIMIZERS)}")


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Learning-rate multiplier for the optimizer step with 0-based index `step`.

    Warm-up: (step + 1) / warmup_steps for step < warmup_steps, so the very first update already
    moves the weights (1/warmup_steps) and step warmup_steps - 1 runs at the full lr.
    Then cosine from 1 at step warmup_steps to min_lr_ratio at step total_steps, constant after.
    If total_steps <= warmup_steps there is nothing to decay over and the factor stays 1.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = cfg.total_steps - cfg.warmup_steps
    if span <= 0:
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying `lr_factor`; call `scheduler.step()` once after each `optimizer.step()`.

    Its `state_dict()` is JSON-able (the lambda is stored as None and rebuilt from `cfg`).
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
