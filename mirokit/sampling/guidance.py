"""Multi-reward guidance: one stacked batch for all branches, self-conditioning kept per branch.

Joint (official): D = D_c * (1 + w) - D_u * w, with c = (prompt, reward targets) and
u = (empty prompt, negative reward targets).
Separate scales: a third branch t = (prompt, negative targets) splits the direction in two:
D = D_c + w_text * (D_t - D_u) + w_reward * (D_c - D_t)  (equal scales give the joint formula).
Guidance interval [lo, hi] (Kynkaanniemi et al. 2024, "Applying guidance in a limited interval"): at signal levels
outside it only the conditional branch runs (D = D_c), which also saves those evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def _stack(branches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([b[k] for b in branches], dim=0) for k in branches[0]}


def _branch_state(state: Any, have: int, want: int) -> Any:
    """The self-conditioning state of `have` stacked branches as the state of `want` branches: the conditional
    branch's rows (the first 1/have) alone, or repeated when guidance starts (the other branches have none yet)."""
    if state is None or have == want:
        return state
    cond_rows = state[: state.shape[0] // have]
    return cond_rows if want == 1 else cond_rows.repeat(want, *([1] * (cond_rows.ndim - 1)))


def guided_velocity(model: Callable, cond: dict[str, Tensor], uncond: dict[str, Tensor], *, scale: float,
                    text_scale: float | None = None, reward_scale: float | None = None,
                    text_only: dict[str, Tensor] | None = None, dtype: torch.dtype | None = None,
                    interval: tuple[float, float] | None = None):
    """Build `fn(y, gamma, state, level=None) -> (v, state)` for the solvers (`fn.takes_level`: the solver
    passes the signal level as a host number, so choosing the branches reads nothing from the device).

    cond/uncond/text_only: model keyword arguments (text (B,L,D), text_mask (B,L), rewards (B,K)).
    scale: the joint w; text_scale and reward_scale (both or neither): the separate scales (three branches).
    With w = 0 only the conditional branch is evaluated, so the result equals the unguided model.
    dtype: the model's compute dtype (inputs are cast to it; the velocity comes back in float32).
    interval: (lo, hi) signal levels where guidance applies; elsewhere only the conditional branch is evaluated.
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
    cond_only = {k: v[: v.shape[0] // nb] for k, v in stacked.items()}
    branches_now = {"count": nb}

    def fn(y: Tensor, gamma: Tensor, state: Any, level: float | None = None) -> tuple[Tensor, Any]:
        guided = interval is None or level is None or interval[0] <= level <= interval[1]
        n = nb if guided else 1
        state = _branch_state(state, branches_now["count"], n)
        branches_now["count"] = n
        y_in = y.repeat(n, *([1] * (y.ndim - 1)))
        out = model(y_in if dtype is None else y_in.to(dtype), gamma.repeat(n), self_cond=state,
                    **(stacked if guided else cond_only))
        parts = out[0].float().chunk(n, dim=0)
        if n == 1:
            v = parts[0]
        elif n == 2:
            v = parts[0] * (1 + scale) - parts[1] * scale
        else:
            d_c, d_t, d_u = parts
            v = d_c + text_scale * (d_t - d_u) + reward_scale * (d_c - d_t)
        return v, out[1]

    fn.takes_level = True
    return fn
