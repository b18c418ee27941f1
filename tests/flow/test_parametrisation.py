"""The parametrisation choice: edm_precond is the EDM scalings as before, rectified_flow a diffusers transformer's
own convention; configs without the key stay edm_precond."""

import json

import pytest
import torch

from mirokit.config import ConfigError, from_dict
from mirokit.flow import parametrisation
from mirokit.flow.path import interpolate
from mirokit.flow.precond import input_scale, output_scale
from mirokit.models import GeneratorConfig, MiroGenerator, cpu_tiny_rin_config


def test_edm_precond_is_the_edm_scalings_and_the_signal_level():
    p = parametrisation("edm_precond", sigma_data=0.5)
    y, gamma = torch.randn(3, 4, 8, 8), torch.tensor([0.1, 0.5, 0.9])
    assert torch.equal(p.network_input(y, gamma), y * input_scale(gamma, 0.5).view(-1, 1, 1, 1))
    assert torch.equal(p.network_time(gamma, torch.float32), gamma)
    assert torch.equal(p.velocity(y), y * output_scale(0.5))
    assert p.learns_logvar and not parametrisation("edm_precond", learned_uncertainty=False).learns_logvar


def test_rectified_flow_is_the_diffusers_flow_matching_convention():
    p = parametrisation("rectified_flow")
    x0, eps, gamma = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([0.25, 0.75])
    sigma = 1 - gamma
    y = interpolate(x0, eps, gamma)
    assert torch.allclose(y, (1 - sigma).view(-1, 1, 1, 1) * x0 + sigma.view(-1, 1, 1, 1) * eps)  # the same point
    assert torch.equal(p.network_input(y, gamma), y) and torch.equal(p.velocity(y), y)
    assert torch.equal(p.network_time(gamma, torch.float32), sigma * 1000)
    level = torch.tensor([0.1237])
    time = p.network_time(level.to(torch.bfloat16), torch.bfloat16)
    assert time.dtype == torch.float32 and abs(time.item() - 876.3) < 0.5  # not rounded to bf16's steps of 4
    assert not p.learns_logvar and not parametrisation("rectified_flow", learned_uncertainty=True).learns_logvar
    with pytest.raises(ValueError, match="unknown parametrisation 'ddpm'; known: edm_precond, rectified_flow"):
        parametrisation("ddpm")


def test_a_config_without_the_key_is_edm_precond_and_loads_unchanged(tmp_path):
    torch.manual_seed(0)
    model = MiroGenerator(cpu_tiny_rin_config(["a"], text_dim=12)).eval()
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data.pop("parametrisation") == "edm_precond"
    (tmp_path / "config.json").write_text(json.dumps(data))  # a config.json written before the choice existed
    again = MiroGenerator.from_pretrained(tmp_path)
    assert again.config.parametrisation == "edm_precond"
    y, g = torch.randn(2, 3, 32, 32), torch.tensor([0.3, 0.8])
    cond = {"text": torch.randn(2, 4, 12), "text_mask": torch.ones(2, 4, dtype=torch.bool),
            "rewards": torch.tensor([[0.2], [float("nan")]])}
    with torch.no_grad():
        assert torch.equal(again(y, g, **cond).velocity, model(y, g, **cond).velocity)
    with pytest.raises(ConfigError, match="unknown parametrisation 'ddpm'"):
        from_dict(GeneratorConfig, {"parametrisation": "ddpm"})


def test_rectified_flow_learns_no_log_variance():
    cfg = cpu_tiny_rin_config(["a"], text_dim=12)
    cfg.parametrisation = "rectified_flow"
    model = MiroGenerator(cfg)
    assert model.preconditioning.logvar_proj is None
    assert torch.equal(model.logvar(torch.rand(3)), torch.zeros(3))
