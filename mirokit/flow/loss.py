"""Flow-matching training loss with self-conditioning and learned uncertainty weighting.

The model follows the one call signature `model(y, gamma, self_cond=..., **conditions)` and
returns `(velocity, self_cond_state, logvar)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mirokit.flow.path import interpolate, velocity_target
from mirokit.flow.time import logit_normal_gamma


@dataclass(kw_only=True)
class FlowLossConfig:
    """Training-time flow settings (official: logit-normal(0, 1), self-cond 0.9, uncertainty on)."""

    time_mean: float = 0.0
    """mean of the normal whose sigmoid is t = 1 - gamma"""
    time_std: float = 1.0
    """std of that normal"""
    self_cond_prob: float = 0.9
    """probability that a sample is trained with self-conditioning (extra detached forward pass)"""
    uncertainty_weighting: bool = True
    """weight the per-sample MSE as mse / e^u + u with the model's learned u(gamma) (EDM2)"""


@dataclass
class FlowDraw:
    """The random numbers of one training step: gamma (B,), noise (B, ...), self_cond_keep (B,) bool."""

    gamma: Tensor
    noise: Tensor
    self_cond_keep: Tensor

    def slice(self, start: int, stop: int) -> FlowDraw:
        """Rows [start, stop) — lets distributed ranks share one global draw."""
        return FlowDraw(self.gamma[start:stop], self.noise[start:stop], self.self_cond_keep[start:stop])


def draw_flow_noise(shape: tuple[int, ...], cfg: FlowLossConfig, generator: torch.Generator) -> FlowDraw:
    """Draw gamma, noise and the self-conditioning mask for a batch of `shape` (B, C, H, W) on the generator's
    device."""
    b = shape[0]
    device = generator.device
    gamma = logit_normal_gamma(b, mean=cfg.time_mean, std=cfg.time_std, generator=generator, device=device)
    noise = torch.randn(shape, generator=generator, device=device)
    keep = torch.rand(b, generator=generator, device=device) < cfg.self_cond_prob
    return FlowDraw(gamma, noise, keep)


def _rows(value, index: Tensor):
    """Rows `index` of a model keyword argument: a (B, ...) tensor, a list of B items, or None."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value[index.to(value.device)]
    return [value[i] for i in index.tolist()]


def self_conditioning_state(model: Callable, y: Tensor, gamma: Tensor, conditions: dict, keep: Tensor) -> Tensor | None:
    """The detached state of a first model call, for the rows that keep self-conditioning (zeros elsewhere).

    Only the kept rows are computed (rows are independent), but at least one, so that every rank of a
    sharded job makes the same number of model calls. Returns None if the model has no state.
    """
    index = keep.cpu().nonzero().flatten()  # drawn on the host: choosing rows reads no device value
    rows = index if index.numel() else torch.zeros(1, dtype=torch.long)
    used = rows.to(y.device)
    with torch.no_grad():
        part = model(y[used], gamma[used], **{k: _rows(v, rows) for k, v in conditions.items()})[1]
    if part is None:
        return None
    state = torch.zeros((y.shape[0], *part.shape[1:]), dtype=part.dtype, device=part.device)
    if index.numel():
        state[index.to(part.device)] = part
    return state


def flow_matching_loss(model: Callable, x0: Tensor, conditions: dict, draw: FlowDraw,
                       cfg: FlowLossConfig, *, self_conditioning: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """x0: (B, C, H, W) clean data; conditions: keyword arguments of the model (text, text_mask, rewards).

    With self-conditioning, a first no-grad call on the rows in `draw.self_cond_keep` gives the state
    the training call is conditioned on (zeros for the other rows). `self_conditioning=False` (a model whose
    trunk keeps no state, e.g. a diffusers transformer) skips that call whatever `cfg.self_cond_prob` says.
    The weighting uses the model's logvar: a model that learns none (rectified_flow) returns zeros, so its loss
    is the plain MSE.
    Returns the scalar loss to minimise and detached statistics (raw MSE, weighted loss, mean logvar).
    """
    gamma = draw.gamma.to(x0.device, x0.dtype)
    noise = draw.noise.to(x0.device, x0.dtype)
    y = interpolate(x0, noise, gamma)
    self_cond = None
    if cfg.self_cond_prob > 0 and self_conditioning:
        self_cond = self_conditioning_state(model, y, gamma, conditions, draw.self_cond_keep)
    velocity, _, logvar = model(y, gamma, self_cond=self_cond, **conditions)
    mse = (velocity.float() - velocity_target(x0, noise).float()).pow(2).flatten(1).mean(1)
    if cfg.uncertainty_weighting:
        per_sample = mse / logvar.exp() + logvar
    else:
        per_sample = mse
    loss = per_sample.mean()
    stats = {"mse": mse.mean().detach(), "loss": loss.detach(), "logvar": logvar.mean().detach()}
    return loss, stats
