import pytest
import torch
from conftest import make_conditions

from mirokit.models import MiroGenerator
from mirokit.sampling import gamma_grid, guided_velocity, solve


def point_mass_velocity(target):
    """Exact velocity of a flow whose data is the single point `target`: v = (y - x*) / (1 - gamma)."""
    def fn(y, gamma, state):
        return (y - target) / (1 - gamma).clamp(min=1e-6).view(-1, 1), state
    return fn


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_solvers_reach_the_data_point(solver):
    target = torch.tensor([[1.5, -2.0, 0.25]])
    noise = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    out = solve(point_mass_velocity(target), noise, gamma_grid(8), solver)
    torch.testing.assert_close(out, target.expand(5, -1), atol=1e-4, rtol=1e-4)


def test_heun_is_more_accurate_than_euler_on_a_curved_flow():
    # data ~ N(0, s^2): exact velocity v = (y*(g s^2 + g - 1)... computed from E[eps - x0 | y]
    s2 = 0.25
    def fn(y, g, state):
        g = g.view(-1, 1)
        var = g ** 2 * s2 + (1 - g) ** 2
        x0_hat = y * g * s2 / var
        eps_hat = y * (1 - g) / var
        return eps_hat - x0_hat, state
    noise = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))
    errs = {}
    for solver in ("euler", "heun"):
        out = solve(fn, noise, gamma_grid(6), solver)
        errs[solver] = abs(out.std().item() - s2 ** 0.5)
    fine = solve(fn, noise, gamma_grid(400), "euler")
    assert abs(fine.std().item() - 0.5) < 0.02
    assert errs["heun"] < errs["euler"]


def test_grid_and_errors():
    grid = gamma_grid(4)
    assert grid[0] == 1e-9 and grid[-1] == 1 and len(grid) == 5
    with pytest.raises(ValueError, match="unknown solver"):
        solve(point_mass_velocity(torch.zeros(1, 1)), torch.zeros(1, 1), grid, "rk4")
    with pytest.raises(ValueError, match="both"):
        guided_velocity(lambda *a, **k: None, {}, {}, scale=1.0, text_scale=1.0)


def _branches(n):
    cond = make_conditions(n, seed=1)
    uncond = dict(make_conditions(n, seed=2), rewards=torch.zeros(n, 2))
    text_only = dict(cond, rewards=torch.zeros(n, 2))
    return cond, uncond, text_only


def _batching_noise(model, branches, y, g) -> float:
    """How far the model's output for a branch moves when it runs stacked with the others (as guidance runs
    it) instead of alone: float noise of the batched kernels, which differ between CPUs (avx2, avx512, ...)."""
    stacked = {k: torch.cat([b[k] for b in branches]) for k in branches[0]}
    n = len(branches)
    together = model(y.repeat(n, 1, 1, 1), g.repeat(n), **stacked).velocity.chunk(n)
    alone = [model(y, g, **b).velocity for b in branches]
    scale = max(a.abs().max().item() for a in alone)
    return max(max((t - a).abs().max().item() for t, a in zip(together, alone)), 4 * torch.finfo().eps * scale)


def test_guidance_formulas_on_a_real_model(tiny_generator_config):
    """Each formula is checked to the float noise it can carry: the batching noise measured here, times the
    sum of the formula's |coefficients| (a coefficient scales its branch's noise)."""
    torch.manual_seed(0)
    model = MiroGenerator(tiny_generator_config).eval()
    cond, uncond, text_only = _branches(2)
    y, g = torch.randn(2, 3, 16, 16), torch.rand(2)
    with torch.no_grad():
        d_c = model(y, g, **cond).velocity
        d_u = model(y, g, **uncond).velocity
        d_t = model(y, g, **text_only).velocity
        noise = _batching_noise(model, [cond, text_only, uncond], y, g)
        assert noise < 1e-3 * d_c.abs().max()  # float noise, not a different computation
        v0, state = guided_velocity(model, cond, uncond, scale=0.0)(y, g, None)
        assert torch.equal(v0, d_c)  # w = 0 is exactly the conditional branch
        assert state.shape[0] == 2
        v, state = guided_velocity(model, cond, uncond, scale=3.0)(y, g, None)
        torch.testing.assert_close(v, d_c * 4 - d_u * 3, atol=(4 + 3) * noise, rtol=0)
        assert state.shape[0] == 4  # one self-conditioning state per branch
        sep = guided_velocity(model, cond, uncond, scale=7.0, text_scale=3.0, reward_scale=3.0, text_only=text_only)
        torch.testing.assert_close(sep(y, g, None)[0], v, atol=2 * (4 + 3 + 3) * noise, rtol=0)
        sep2 = guided_velocity(model, cond, uncond, scale=7.0, text_scale=1.0, reward_scale=5.0, text_only=text_only)
        expected = d_c + 1.0 * (d_t - d_u) + 5.0 * (d_c - d_t)  # = 6 d_c - 4 d_t - d_u
        torch.testing.assert_close(sep2(y, g, None)[0], expected, atol=(6 + 4 + 1) * noise, rtol=0)
        wrong = d_c + 5.0 * (d_t - d_u) + 1.0 * (d_c - d_t)  # the scales swapped: must not pass
        assert (sep2(y, g, None)[0] - wrong).abs().max() > 100 * (6 + 4 + 1) * noise
