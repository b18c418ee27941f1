"""ODE solvers over a signal-level grid gamma: 0 (noise) -> 1 (data).

dy/dgamma = -(eps - x0) = -v, so a step from gamma_a to gamma_b is y - v * (gamma_b - gamma_a).
A velocity function has the signature `fn(y (B,...), gamma (B,), state) -> (v (B,...), state)`;
`state` is the self-conditioning state carried from one call to the next (None at the start).

Solvers (network calls for S steps in brackets, see `function_evaluations`):
- euler [S]: first order (the official sampler);
- heun [2S - 1]: EDM's 2nd-order trapezoid correction, Euler on the last step;
- midpoint [2S]: explicit 2nd-order Runge-Kutta, the velocity at the middle of each step;
- ab2 [S]: 2nd-order Adams-Bashforth multistep in gamma (variable steps), Euler on the first step;
- dpm++2m [S]: DPM-Solver++(2M) in data prediction over lambda = log(gamma / (1 - gamma)); its first
  order is exactly Euler on this path, the last step is first order (lambda is infinite at gamma = 1).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mirokit.flow.time import shift_gamma

VelocityFn = Callable[[Tensor, Tensor, Any], tuple[Tensor, Any]]
SOLVERS = ("euler", "heun", "midpoint", "ab2", "dpm++2m")


def function_evaluations(solver: str, steps: int) -> int:
    """Velocity calls (guided network evaluations) per image of `solver` over `steps` steps."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    return {"heun": 2 * steps - 1, "midpoint": 2 * steps}.get(solver, steps)


def gamma_grid(steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """(steps + 1,) uniform signal levels from 0 to 1 (first clamped to 1e-9), optionally shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.arange(steps + 1, dtype=torch.float32, device=device) / steps
    return shift_gamma(grid, shift).clamp(min=1e-9)


def solve(velocity_fn: VelocityFn, noise: Tensor, grid: Tensor, solver: str = "euler",
          progress: bool = False) -> Tensor:
    """Integrate from `noise` (B, ...) at grid[0] to grid[-1]; returns (B, ...) in float32.

    The calls of each solver are listed in the module docstring; the self-conditioning state always
    flows from one call to the next.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    y = noise.float()
    state = None
    n = y.shape[0]
    pairs = list(zip(grid[:-1].tolist(), grid[1:].tolist()))
    history: list[tuple[float, Tensor]] = []  # (gamma or lambda, velocity or x0) of the previous step: multistep

    def call(y_at: Tensor, g: float) -> Tensor:
        nonlocal state
        v, state = velocity_fn(y_at, torch.full((n,), g, device=y.device), state)
        return v.float()

    for i, (g_now, g_next) in enumerate(tqdm(pairs, desc=f"{solver} sampling", disable=not progress, leave=False)):
        dg = g_next - g_now
        last = i == len(pairs) - 1
        v = call(y, g_now)
        if solver == "heun" and not last:
            v2 = call(y - v * dg, g_next)
            y = y - 0.5 * (v + v2) * dg
        elif solver == "midpoint":
            y = y - call(y - v * (0.5 * dg), g_now + 0.5 * dg) * dg
        elif solver == "ab2" and history:
            g_prev, v_prev = history[0]
            ratio = dg / (2 * (g_now - g_prev))
            y = y - ((1 + ratio) * v - ratio * v_prev) * dg
        elif solver == "dpm++2m":
            y = _dpm_step(y, v, g_now, g_next, history, last)
        else:
            y = y - v * dg
        if solver == "ab2":
            history[:] = [(g_now, v)]
    return y


def _lam(g: float) -> float:
    return math.log(g) - math.log1p(-g)


def _dpm_step(y: Tensor, v: Tensor, g: float, g_next: float, history: list, last: bool) -> Tensor:
    """One DPM-Solver++(2M) step from gamma g to g_next (alpha = gamma, sigma = 1 - gamma, x0 = y - sigma v)."""
    x0 = y - (1 - g) * v
    if last or g_next >= 1.0:
        history[:] = []
        return x0 if g_next >= 1.0 else y - v * (g_next - g)
    lam, lam_next = _lam(g), _lam(g_next)
    h = lam_next - lam
    d = x0
    if history:
        lam_prev, x0_prev = history[0]
        r = (lam - lam_prev) / h
        d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
    history[:] = [(lam, x0)]
    return ((1 - g_next) / (1 - g)) * y - g_next * math.expm1(-h) * d
