import math

import torch
from conftest import make_conditions

from mirokit.flow import (
    FlowLossConfig,
    draw_flow_noise,
    flow_matching_loss,
    input_scale,
    interpolate,
    logit_normal_gamma,
    shift_gamma,
    velocity_target,
    x0_from_velocity,
)
from mirokit.models import MiroGenerator


def test_path_endpoints_and_x0_recovery():
    x0, eps = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    assert torch.equal(interpolate(x0, eps, torch.ones(4)), x0)
    assert torch.equal(interpolate(x0, eps, torch.zeros(4)), eps)
    g = torch.rand(4)
    y = interpolate(x0, eps, g)
    torch.testing.assert_close(x0_from_velocity(y, velocity_target(x0, eps), g), x0)
    # dy/dgamma = -(eps - x0): finite difference along the path
    dy = (interpolate(x0, eps, g + 1e-3) - interpolate(x0, eps, g - 1e-3)) / 2e-3
    torch.testing.assert_close(dy, -velocity_target(x0, eps), atol=1e-3, rtol=1e-3)


def test_logit_normal_gamma_statistics():
    g = logit_normal_gamma(200_000, generator=torch.Generator().manual_seed(0))
    logit_t = torch.logit(1 - g)
    assert abs(logit_t.mean().item()) < 0.01 and abs(logit_t.std().item() - 1) < 0.01
    shifted = logit_normal_gamma(200_000, mean=1.0, generator=torch.Generator().manual_seed(0))
    assert shifted.mean() < g.mean()  # larger t = noisier


def test_input_scale_gives_unit_variance():
    x0 = torch.randn(100_000) * 0.5
    eps = torch.randn(100_000)
    for gv in (0.0, 0.3, 0.7, 1.0):
        g = torch.full((1,), gv)
        y = interpolate(x0, eps, g.expand(100_000))
        assert abs((y * input_scale(g, 0.5)).std().item() - 1) < 0.02


def test_shift_is_identity_at_one_and_moves_mass_towards_data():
    grid = torch.linspace(0, 1, 11)
    assert torch.equal(shift_gamma(grid, 1.0), grid)
    shifted = shift_gamma(grid, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1 and (shifted[1:-1] > grid[1:-1]).all()


def test_uncertainty_weighting_and_self_conditioning_pass(tiny_generator_config):
    torch.manual_seed(0)
    model = MiroGenerator(tiny_generator_config)
    x0 = torch.rand(4, 3, 16, 16) * 2 - 1
    cond = make_conditions(4)
    gen = torch.Generator().manual_seed(1)
    cfg = FlowLossConfig(self_cond_prob=0.5)
    draw = draw_flow_noise(x0.shape, cfg, gen)
    loss, stats = flow_matching_loss(model, x0, cond, draw, cfg)
    # at init u(gamma) is a random linear map of Fourier features: loss = mean(mse/e^u + u)
    out = model(interpolate(x0, draw.noise, draw.gamma), draw.gamma, **cond)
    assert stats["logvar"].item() == out.logvar.mean().item()
    loss.backward()
    assert model.preconditioning.logvar_proj[1].weight.grad.abs().sum() > 0
    plain_cfg = FlowLossConfig(self_cond_prob=0.0, uncertainty_weighting=False)
    plain, pstats = flow_matching_loss(model, x0, cond, draw, plain_cfg)
    torch.testing.assert_close(plain, pstats["mse"])
    mse = (out.velocity - velocity_target(x0, draw.noise)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(plain, mse.mean())


def test_flow_draw_slices_are_consistent():
    cfg = FlowLossConfig()
    draw = draw_flow_noise((6, 3, 4, 4), cfg, torch.Generator().manual_seed(0))
    part = draw.slice(2, 4)
    assert torch.equal(part.noise, draw.noise[2:4]) and torch.equal(part.gamma, draw.gamma[2:4])
    assert 0 < draw.gamma.min() and draw.gamma.max() < 1
    assert math.isclose(cfg.self_cond_prob, 0.9)
