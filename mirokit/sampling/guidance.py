"""Multi-reward guidance: one stacked batch for all branches, self-conditioning kept per branch.

Joint (official): D = D_c * (1 + w) - D_u * w, with c = (prompt, reward targets) and
u = (empty prompt, negative reward targets).
Separate scales: a third branch t = (prompt, negative targets) splits the direction in two:
D = D_c + w_text * (D_t - D_u) + w_reward * (D_c - D_t)  (equal scales give the joint formula).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor


def _stack(branches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([b[k] for b in branches], dim=0) for k in branches[0]}


def guided_velocity(model: Callable, cond: dict[str, Tensor], uncond: dict[str, Tensor], *, scale: float,
                    text_scale: float | None = None, reward_scale: float | None = None,
                    text_only: dict[str, Tensor] | None = None, dtype: torch.dtype | None = None):
    """Build `fn(y, gamma, state) -> (v, state)` for the solvers.

    cond/uncond/text_only: model keyword arguments (text (B,L,D), text_mask (B,L), rewards (B,K)).
    scale: the joint w; text_scale and reward_scale (both or neither): the separate scales (three branches).
    With w = 0 only the conditional branch is evaluated, so the result equals the unguided model.
    dtype: the model's compute dtype (inputs are cast to it; the velocity comes back in float32).
    """
    if (text_scale is None) != (reward_scale is None):
        raise ValueError("set both text_scale and reward_scale, or neither")
    if text_scale is not None:
        if text_only is None:
            raise ValueError("separate text/reward guidance needs the text-only branch")
        branches = [cond, text_only, uncond]
    elif scale == 0:
        branches = [cond]
    else:
        branches = [cond, uncond]
    stacked = _stack(branches)
    if dtype is not None:
        stacked = {k: v.to(dtype) if v.is_floating_point() else v for k, v in stacked.items()}
    nb = len(branches)

    def fn(y: Tensor, gamma: Tensor, state: Any) -> tuple[Tensor, Any]:
        y_in = y.repeat(nb, *([1] * (y.ndim - 1)))
        out = model(y_in if dtype is None else y_in.to(dtype), gamma.repeat(nb), self_cond=state, **stacked)
        parts = out[0].float().chunk(nb, dim=0)
        if nb == 1:
            v = parts[0]
        elif nb == 2:
            v = parts[0] * (1 + scale) - parts[1] * scale
        else:
            d_c, d_t, d_u = parts
            v = d_c + text_scale * (d_t - d_u) + reward_scale * (d_c - d_t)
        return v, out[1]

    return fn
