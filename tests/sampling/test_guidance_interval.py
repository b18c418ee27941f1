"""Guidance applied only within a signal-level interval (SamplingSettings.guidance_interval)."""

import pytest
import torch
from conftest import make_conditions

from mirokit.models import MiroGenerator
from mirokit.sampling import SamplingSettings, gamma_grid, guided_velocity, resolve, solve
from mirokit.sampling.presets import load_preset, save_preset


class CountingModel(torch.nn.Module):
    """Wraps a generator; records the batch size and the signal level of every call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, y, gamma, **kwargs):
        self.calls.append((y.shape[0], round(float(gamma[0]), 6)))
        return self.model(y, gamma, **kwargs)


def _branches(n):
    cond = make_conditions(n, seed=1)
    uncond = dict(make_conditions(n, seed=2), rewards=torch.zeros(n, 2))
    return cond, uncond


def _sample(model, interval, solver="euler", steps=6, scale=3.0):
    cond, uncond = _branches(2)
    fn = guided_velocity(model, cond, uncond, scale=scale, interval=interval)
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return solve(fn, noise, gamma_grid(steps), solver)


@pytest.mark.parametrize("solver", ["euler", "heun", "dpm++2m"])
def test_interval_runs_the_guided_branches_only_inside_it(tiny_generator_config, solver):
    torch.manual_seed(0)
    model = CountingModel(MiroGenerator(tiny_generator_config).eval())
    full = _sample(model, None, solver)
    assert {b for b, _ in model.calls} == {4}  # both branches at every call
    model.calls.clear()
    assert torch.equal(_sample(model, (0.0, 1.0), solver), full)  # the whole range is plain guidance, bit for bit
    model.calls.clear()
    part = _sample(model, (0.3, 0.7), solver)
    assert all((b == 4) == (0.3 <= g <= 0.7) for b, g in model.calls), model.calls
    assert {b for b, _ in model.calls} == {2, 4}  # both kinds of call happened: the self-conditioning state moved
    assert (part - full).abs().max() > 1e-3  # and the samples differ


def test_an_interval_that_no_step_reaches_is_the_unguided_model(tiny_generator_config):
    torch.manual_seed(0)
    model = MiroGenerator(tiny_generator_config).eval()
    unguided = _sample(model, None, scale=0.0, steps=4)  # levels 0, 0.25, 0.5, 0.75
    assert torch.equal(_sample(model, (0.3, 0.4), steps=4), unguided)
    assert not torch.equal(_sample(model, (0.2, 0.3), steps=4), unguided)  # 0.25 is inside: guided once


def test_the_setting_is_checked_and_kept_by_presets(tmp_path):
    assert SamplingSettings(guidance_interval=[0.2, 0.8]).guidance_interval == (0.2, 0.8)
    for bad, message in (((0.8, 0.2), "0 <= lo < hi <= 1"), ((0.0, 1.5), "0 <= lo < hi <= 1"),
                         ("0.2:0.8", r"must be \[lo, hi\]"), ((0.1, float("nan")), r"must be \[lo, hi\]")):
        with pytest.raises(ValueError, match=message):
            SamplingSettings(guidance_interval=bad)
    settings = resolve({"guidance_interval": (0.25, 0.75)})
    path = save_preset(settings, tmp_path / "preset.json")
    assert load_preset(path)["guidance_interval"] == [0.25, 0.75]
    assert resolve(preset=load_preset(path)) == settings
    assert "guidance_interval" not in SamplingSettings().to_preset()  # unset: not written
    assert resolve({"steps": 3}, {"guidance_interval": (0.1, 0.9)}).guidance_interval == (0.1, 0.9)
