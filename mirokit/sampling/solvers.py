"""ODE solvers over a signal-level grid gamma: 0 (noise) -> 1 (data).

dy/dgamma = -(eps - x0) = -v, so a step from gamma_a to gamma_b is y - v * (gamma_b - gamma_a).
A velocity function has the signature `fn(y (B,...), gamma (B,), state) -> (v (B,...), state)`;
`state` is the self-conditioning state carried from one call to the next (None at the start).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mirokit.flow.time import shift_gamma

VelocityFn = Callable[[Tensor, Tensor, Any], tuple[Tensor, Any]]
SOLVERS = ("euler", "heun")


def gamma_grid(steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """(steps + 1,) uniform signal levels from 0 to 1 (first clamped to 1e-9), optionally shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.arange(steps + 1, dtype=torch.float32, device=device) / steps
    return shift_gamma(grid, shift).clamp(min=1e-9)


def solve(velocity_fn: VelocityFn, noise: Tensor, grid: Tensor, solver: str = "euler",
          progress: bool = False) -> Tensor:
    """Integrate from `noise` (B, ...) at grid[0] to grid[-1]; returns (B, ...) in float32.

    euler: one call per step. heun: a second call at the end of every step but the last (EDM's
    2nd-order correction), 2*steps - 1 calls in all.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    y = noise.float()
    state = None
    n = y.shape[0]
    pairs = list(zip(grid[:-1].tolist(), grid[1:].tolist()))
    for i, (g_now, g_next) in enumerate(tqdm(pairs, desc=f"{solver} sampling", disable=not progress, leave=False)):
        g = torch.full((n,), g_now, device=y.device)
        v, state = velocity_fn(y, g, state)
        dg = g_next - g_now
        y_next = y - v.float() * dg
        if solver == "heun" and i < len(pairs) - 1:
            v2, state = velocity_fn(y_next, torch.full((n,), g_next, device=y.device), state)
            y_next = y - 0.5 * (v.float() + v2.float()) * dg
        y = y_next
    return y
