"""Multi-reward guidance: one stacked batch for all branches, self-conditioning kept per branch.

Joint (official): D = D_c * (1 + w) - D_u * w, with c = (prompt, reward targets) and
u = (empty prompt, negative reward targets).
Separate scales: a third branch t = (prompt, negative targets) splits the direction in two:
D = D_c + w_text * (D_t - D_u) + w_reward * (D_c - D_t)  (equal scales give the joint formula).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor


@dataclass(kw_only=True)
class GuidanceConfig:
    """Guidance scales. With text_scale and reward_scale both None, `scale` is the joint w."""

    scale: float = 7.0
    """joint guidance w for text and rewards together (official default 7)"""
    text_scale: float | None = None
    """separate text guidance scale (needs reward_scale too)"""
    reward_scale: float | None = None
    """separate reward guidance scale (needs text_scale too)"""

    def __post_init__(self):
        if (self.text_scale is None) != (self.reward_scale is None):
            raise ValueError("set both text_scale and reward_scale, or neither")

    @property
    def separate(self) -> bool:
        return self.text_scale is not None


def _stack(branches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([b[k] for b in branches], dim=0) for k in branches[0]}


def guided_velocity(model: Callable, cond: dict[str, Tensor], uncond: dict[str, Tensor],
                    guidance: GuidanceConfig, text_only: dict[str, Tensor] | None = None):
    """Build `fn(y, gamma, state) -> (v, state)` for the solvers.

    cond/uncond/text_only: model keyword arguments (text (B,L,D), text_mask (B,L), rewards (B,K)).
    With w = 0 only the conditional branch is evaluated, so the result equals the unguided model.
    """
    if guidance.separate:
        if text_only is None:
            raise ValueError("separate text/reward guidance needs the text-only branch")
        branches = [cond, text_only, uncond]
    elif guidance.scale == 0:
        branches = [cond]
    else:
        branches = [cond, uncond]
    stacked = _stack(branches)
    nb = len(branches)

    def fn(y: Tensor, gamma: Tensor, state: Any) -> tuple[Tensor, Any]:
        out = model(y.repeat(nb, *([1] * (y.ndim - 1))), gamma.repeat(nb), self_cond=state, **stacked)
        parts = out[0].float().chunk(nb, dim=0)
        if nb == 1:
            v = parts[0]
        elif nb == 2:
            v = parts[0] * (1 + guidance.scale) - parts[1] * guidance.scale
        else:
            d_c, d_t, d_u = parts
            v = d_c + guidance.text_scale * (d_t - d_u) + guidance.reward_scale * (d_c - d_t)
        return v, out[1]

    return fn
