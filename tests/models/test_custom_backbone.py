"""A backbone defined only here (a small conv net) trains, saves and reloads through the public config.

Nothing in the mirokit package knows about it: registering the class is the whole integration.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from conftest import make_conditions
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mirokit.config import ConfigError, from_dict
from mirokit.models import BACKBONES, BackboneConfig, GeneratorConfig, MiroGenerator
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, generate
from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics


@dataclass(kw_only=True)
class TinyConvConfig(BackboneConfig):
    """A conv net modulated by the mean conditioning token."""

    width: int = 16
    """feature channels (divisible by 4: the conditioner's width)"""
    depth: int = 2
    """residual conv blocks"""


class ConvBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h, scale, shift):
        return h + self.conv(F.silu(h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]))


@BACKBONES.register("test_tiny_conv", config=TinyConvConfig, description="defined in a test file")
class TinyConv(nn.Module):
    def __init__(self, cfg: TinyConvConfig, *, channels: int, image_size: int):
        super().__init__()
        self.cond_width = cfg.width
        self.image_size = image_size
        self.inp = nn.Conv2d(channels, cfg.width, 3, padding=1)
        self.film = nn.Linear(cfg.width, 2 * cfg.width)
        self.layers = nn.ModuleList(ConvBlock(cfg.width) for _ in range(cfg.depth))
        self.out = nn.Conv2d(cfg.width, channels, 3, padding=1)

    def forward(self, x, cond, self_cond=None):
        mask = cond.mask.unsqueeze(-1).to(cond.tokens.dtype)
        context = (cond.tokens * mask).sum(1) / mask.sum(1)
        scale, shift = self.film(context + cond.time).chunk(2, dim=-1)
        h = self.inp(x)
        for layer in self.layers:
            h = layer(h, scale, shift)
        return self.out(h), None  # no self-conditioning state

    def reset_self_conditioning(self):
        pass

    def flops_per_image(self, num_cond_tokens):
        pixels = self.image_size ** 2
        convs = [self.inp, self.out, *(layer.conv for layer in self.layers)]
        return (sum(2 * c.out_channels * c.in_channels * 9 * pixels for c in convs)
                + 2 * self.film.in_features * self.film.out_features)

    def blocks(self):
        return list(self.layers)


OPTIONS = ["train.precision=fp32", "model.image_channels=3", "model.image_size=16",
           "model.reward_keys=[brightness,size]",
           "model.backbone={kind: test_tiny_conv, width: 16, depth: 2}",
           "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
           "text_encoder={kind: tokens, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}",
           "train.progress=false", "data={kind: toy, num_samples: 256}", "train.threads=1", "loader.num_workers=0",
           "train.batch_size=16", "train.log_every=1", "optim.lr=3e-3", "optim.warmup_steps=5"]


def test_trains_saves_and_reloads_through_the_public_config(tmp_path):
    from mirokit.train.config import load_run_config

    cfg = load_run_config(None, [*OPTIONS, f"out_dir={tmp_path}", "train.steps=40", "optim.total_steps=40",
                                 "train.checkpoint_every=20", "flow.self_cond_prob=0.5"])
    assert isinstance(cfg.model.backbone, TinyConvConfig) and cfg.model.backbone.width == 16
    model_dir = train(cfg)
    rows = read_metrics(tmp_path)
    assert sum(r["mse"] for r in rows[-5:]) < sum(r["mse"] for r in rows[:5])  # it learns
    assert rows[-1]["gflops_per_s"] > 0  # FLOPs per image come from the backbone's own count

    pipe = MiroPipeline.from_pretrained(model_dir)  # rebuilt from config.json alone
    assert isinstance(pipe.generator.network.trunk, TinyConv)
    images = generate(pipe, ["a red circle", "a blue square"], SamplingSettings(steps=3))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    again = MiroPipeline.from_pretrained(tmp_path / "checkpoints" / "step_0000020")  # intermediate export
    assert isinstance(again.generator.network.trunk, TinyConv)


def test_its_flop_count_and_config_errors():
    cfg = from_dict(GeneratorConfig, {"image_channels": 3, "image_size": 8, "reward_keys": ["a", "b"], "text_dim": 12,
                                      "backbone": {"kind": "test_tiny_conv", "width": 16},
                                      "conditioning": {"num_registers": 2, "mixer_layers": 1, "mixer_heads": 4}})
    model = MiroGenerator(cfg).eval()
    conditions = make_conditions(1)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), counter:
        model(torch.randn(1, 3, 8, 8), torch.rand(1), **conditions)
    assert model.flops_per_image(conditions["text"].shape[1]) == counter.get_total_flops()
    try:
        from_dict(GeneratorConfig, {"backbone": {"kind": "test_tiny_conv", "channels": 3}})
    except ConfigError as err:
        assert "unknown config key(s) backbone.channels; known keys of backbone.: depth, width" in str(err)
    else:
        raise AssertionError("an unknown key of the custom backbone must be an error")
