"""ODE solvers over a signal-level grid gamma: 0 (noise) -> 1 (data), as a table of step functions.

dy/dgamma = -(eps - x0) = -v, so a step from gamma_a to gamma_b is y - v * (gamma_b - gamma_a).
A velocity function has the signature `fn(y (B,...), gamma (B,), state) -> (v (B,...), state)`;
`state` is the self-conditioning state carried from one call to the next (None at the start). A function with
`fn.takes_level = True` also gets `level=` the signal level as a host float (guidance intervals).

A solver is one step function registered in `SOLVERS` with its cost in network calls for S steps:

    @solver("name", calls=lambda steps: steps)
    def name_step(call, y, g_now, g_next, memory, last):
        v = call(y, g_now)                  # the velocity at (y, g_now): call it first, once
        return y - v * (g_next - g_now), v  # -> (y at g_next, that first velocity)

`call(y, g)` evaluates the (guided) velocity at signal level g; `memory` is a dict the solver keeps from one
step to the next (multistep methods); `last` is True on the final step. Built in:
- euler [S]: first order (the official sampler);
- heun [2S - 1]: EDM's 2nd-order trapezoid correction, Euler on the last step;
- midpoint [2S]: explicit 2nd-order Runge-Kutta, the velocity at the middle of each step;
- ab2 [S]: 2nd-order Adams-Bashforth multistep in gamma (variable steps), Euler on the first step;
- dpm++2m [S]: DPM-Solver++(2M) in data prediction over lambda = log(gamma / (1 - gamma)); its first
  order is exactly Euler on this path, the last step is first order (lambda is infinite at gamma = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mirokit.flow.time import shift_gamma
from mirokit.registry import Registry

VelocityFn = Callable[[Tensor, Tensor, Any], tuple[Tensor, Any]]
StepFn = Callable[[Callable[[Tensor, float], Tensor], Tensor, float, float, dict, bool], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Solver:
    """One registered solver: its step function and its network calls for a number of steps."""

    step: StepFn
    calls: Callable[[int], int]


SOLVERS: Registry[Solver] = Registry("solver", "mirokit.sampling")
"""name -> Solver (mirokit's shared registry: a plugin's module can register more; `SOLVERS.known()` are the
`--solver` choices)."""


def solver(name: str, *, calls: Callable[[int], int] = lambda steps: steps):
    """Register a step function under `name` (see the module docstring for its signature)."""
    def register(step: StepFn) -> StepFn:
        summary = (step.__doc__ or "").strip().splitlines()
        SOLVERS.register(name, description=summary[0] if summary else "")(Solver(step=step, calls=calls))
        return step
    return register


def get_solver(name: str) -> Solver:
    """The registered solver `name`; an unknown name is a one-line ValueError listing the known ones."""
    return SOLVERS.get(name)


def function_evaluations(name: str, steps: int) -> int:
    """Velocity calls (guided network evaluations) per image of solver `name` over `steps` steps."""
    return get_solver(name).calls(steps)


@dataclass(frozen=True)
class StepProgress:
    """What a sampling callback sees after each step."""

    step: int
    """steps done (1..total)"""
    total: int
    """steps in all"""
    gamma: float
    """the signal level reached"""
    sample: Tensor
    """(B, ...) the current state y at `gamma`"""
    estimate: Tensor
    """(B, ...) the clean sample predicted at the start of this step (x0 = y - (1 - gamma) v): a preview"""


class SamplingCancelled(RuntimeError):
    """Raised when a sampling callback returns False; says at which step."""


Callback = Callable[[StepProgress], "bool | None"]
"""called after every step; returning False cancels sampling (SamplingCancelled)"""


def gamma_grid(steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """(steps + 1,) uniform signal levels from 0 to 1 (first clamped to 1e-9), optionally shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.arange(steps + 1, dtype=torch.float32, device=device) / steps
    return shift_gamma(grid, shift).clamp(min=1e-9)


def solve(velocity_fn: VelocityFn, noise: Tensor, grid: Tensor, solver: str = "euler", progress: bool = False,
          callback: Callback | None = None) -> Tensor:
    """Integrate from `noise` (B, ...) at grid[0] to grid[-1]; returns (B, ...) in float32 on noise's device.
    The grid's levels are read as Python numbers (keep it on the host: a device grid costs a sync per call).

    The self-conditioning state always flows from one call to the next. `callback(StepProgress)` runs after
    every step; if it returns False, sampling stops with SamplingCancelled.
    """
    step_fn = get_solver(solver).step
    y = noise.float()
    state = None
    n = y.shape[0]
    levels = grid.detach().cpu().tolist() if isinstance(grid, Tensor) else [float(g) for g in grid]
    pairs = list(zip(levels[:-1], levels[1:]))
    memory: dict = {}
    takes_level = getattr(velocity_fn, "takes_level", False)

    def call(y_at: Tensor, g: float) -> Tensor:
        nonlocal state
        gamma = torch.full((n,), g, device=y.device)
        v, state = velocity_fn(y_at, gamma, state, level=g) if takes_level else velocity_fn(y_at, gamma, state)
        return v.float()

    for i, (g_now, g_next) in enumerate(tqdm(pairs, desc=f"{solver} sampling", disable=not progress, leave=False)):
        y_next, v = step_fn(call, y, g_now, g_next, memory, i == len(pairs) - 1)
        if callback is not None:
            done = StepProgress(step=i + 1, total=len(pairs), gamma=g_next, sample=y_next, estimate=y - (1 - g_now) * v)
            if callback(done) is False:
                raise SamplingCancelled(f"sampling cancelled after step {i + 1} of {len(pairs)}")
        y = y_next
    return y


@solver("euler")
def euler_step(call, y, g_now, g_next, memory, last):
    """y - v dg."""
    v = call(y, g_now)
    return y - v * (g_next - g_now), v


@solver("heun", calls=lambda steps: 2 * steps - 1)
def heun_step(call, y, g_now, g_next, memory, last):
    """Trapezoid: the mean of the velocities at both ends (Euler on the last step)."""
    v = call(y, g_now)
    dg = g_next - g_now
    if last:
        return y - v * dg, v
    return y - 0.5 * (v + call(y - v * dg, g_next)) * dg, v


@solver("midpoint", calls=lambda steps: 2 * steps)
def midpoint_step(call, y, g_now, g_next, memory, last):
    """The velocity at the middle of the step, reached by half an Euler step."""
    v = call(y, g_now)
    dg = g_next - g_now
    return y - call(y - v * (0.5 * dg), g_now + 0.5 * dg) * dg, v


@solver("ab2")
def ab2_step(call, y, g_now, g_next, memory, last):
    """2nd-order Adams-Bashforth with the previous step's velocity (variable step sizes)."""
    v = call(y, g_now)
    dg = g_next - g_now
    if "previous" in memory:
        g_prev, v_prev = memory["previous"]
        ratio = dg / (2 * (g_now - g_prev))
        y_next = y - ((1 + ratio) * v - ratio * v_prev) * dg
    else:
        y_next = y - v * dg
    memory["previous"] = (g_now, v)
    return y_next, v


def _lam(g: float) -> float:
    return math.log(g) - math.log1p(-g)


@solver("dpm++2m")
def dpm_step(call, y, g_now, g_next, memory, last):
    """DPM-Solver++(2M) from gamma g to g_next (alpha = gamma, sigma = 1 - gamma, x0 = y - sigma v)."""
    v = call(y, g_now)
    x0 = y - (1 - g_now) * v
    if last or g_next >= 1.0:
        memory.clear()
        return (x0 if g_next >= 1.0 else y - v * (g_next - g_now)), v
    lam, lam_next = _lam(g_now), _lam(g_next)
    h = lam_next - lam
    d = x0
    if "previous" in memory:
        lam_prev, x0_prev = memory["previous"]
        r = (lam - lam_prev) / h
        d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
    memory["previous"] = (lam, x0)
    return ((1 - g_next) / (1 - g_now)) * y - g_next * math.expm1(-h) * d, v
