"""The added solvers (midpoint, ab2, dpm++2m) against exact flows: they reach a point mass, converge at
2nd order on a Gaussian's exact flow, beat Euler at equal network calls, and make the calls they declare."""

import math

import pytest
import torch

from mirokit.sampling import SamplingCancelled, SamplingSettings, gamma_grid, solve, solver
from mirokit.sampling.solvers import SOLVERS, function_evaluations

S2 = 0.25  # data ~ N(0, 0.5^2): the exact flow maps noise y0 to 0.5 * y0


def gaussian_velocity(y, g, state):
    """E[eps - x0 | y] for Gaussian data with variance S2 (the exact velocity of the probability-flow ODE)."""
    g = g.view(-1, 1).double()
    var = g ** 2 * S2 + (1 - g) ** 2
    return (y * (1 - g) / var - y * g * S2 / var).float(), state


def _error(solver, steps, noise, shift=3.0):
    out = solve(gaussian_velocity, noise, gamma_grid(steps, shift), solver)
    return (out - noise * math.sqrt(S2)).abs().max().item()


NOISE = torch.randn(64, 1, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", SOLVERS.known())
def test_every_solver_reaches_the_data_point(name):
    target = torch.tensor([[1.5, -2.0, 0.25]])

    def fn(y, gamma, state):
        return (y - target) / (1 - gamma).clamp(min=1e-6).view(-1, 1), state

    out = solve(fn, torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), gamma_grid(8), name)
    torch.testing.assert_close(out, target.expand(5, -1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["heun", "midpoint", "ab2", "dpm++2m"])
def test_second_order_convergence_on_the_exact_gaussian_flow(name):
    # halving the step divides a 2nd-order solver's error by ~4, Euler's by ~2
    ratio = _error(name, 16, NOISE) / _error(name, 32, NOISE)
    euler_ratio = _error("euler", 16, NOISE) / _error("euler", 32, NOISE)
    assert 1.8 < euler_ratio < 2.2
    assert ratio > 3.0, (name, ratio)


@pytest.mark.parametrize("name", ["heun", "midpoint", "ab2", "dpm++2m"])
def test_beats_euler_at_equal_network_calls(name):
    steps = 8
    calls = function_evaluations(name, steps)
    assert _error(name, steps, NOISE) < 0.5 * _error("euler", calls, NOISE)


@pytest.mark.parametrize("name", SOLVERS.known())
def test_declared_calls_and_the_self_conditioning_state_flows(name):
    seen = []

    def fn(y, gamma, state):
        seen.append(state)
        return torch.zeros_like(y), (0 if state is None else state + 1)

    solve(fn, torch.zeros(2, 3), gamma_grid(5), name)
    assert len(seen) == function_evaluations(name, 5)
    assert seen == [None, *range(len(seen) - 1)]  # each call gets the previous call's state


def test_unknown_solver_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown solver 'rk4'; known: ab2, dpm\\+\\+2m, euler, heun, midpoint"):
        SamplingSettings(solver="rk4")
    with pytest.raises(ValueError, match="unknown solver"):
        function_evaluations("rk4", 3)


def test_a_new_solver_is_one_function_and_one_entry():
    @solver("ralston-test", calls=lambda steps: 2 * steps)
    def ralston(call, y, g_now, g_next, memory, last):
        v = call(y, g_now)
        dg = g_next - g_now
        return y - (0.25 * v + 0.75 * call(y - v * (2 / 3) * dg, g_now + (2 / 3) * dg)) * dg, v

    try:
        assert SamplingSettings(solver="ralston-test", steps=8).function_evaluations == 16
        assert _error("ralston-test", 16, NOISE) / _error("ralston-test", 32, NOISE) > 3.0  # 2nd order
    finally:
        SOLVERS.unregister("ralston-test")


def test_the_callback_sees_every_step_and_can_cancel():
    seen = []
    out = solve(gaussian_velocity, NOISE, gamma_grid(6, 3.0), "ab2", callback=seen.append)
    assert [p.step for p in seen] == list(range(1, 7)) and {p.total for p in seen} == {6}
    assert torch.equal(seen[-1].sample, out) and seen[-1].gamma == 1.0
    # the preview is the clean sample predicted from the velocity at the step's start: exact on this flow
    exact = NOISE * math.sqrt(S2)
    assert (seen[-1].estimate - exact).abs().max() < (seen[0].estimate - exact).abs().max()
    steps = []
    with pytest.raises(SamplingCancelled, match="after step 2 of 6"):
        solve(gaussian_velocity, NOISE, gamma_grid(6), "euler", callback=lambda p: steps.append(p.step) or p.step < 2)
    assert steps == [1, 2]
