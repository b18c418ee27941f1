"""Prompts + reward targets -> images, with multi-reward guidance, batched and seeded."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mirokit.encoders.text import pad_tokens
from mirokit.sampling.guidance import GuidanceConfig, guided_velocity
from mirokit.sampling.solvers import SOLVERS, gamma_grid, solve


@dataclass(kw_only=True)
class SampleConfig:
    """Sampler settings (official: Euler, 50 steps, joint guidance 7, no shift)."""

    steps: int = 50
    """ODE steps over the signal-level grid"""
    solver: str = "euler"
    """euler | heun"""
    shift: float = 1.0
    """time shift of the grid (> 1 spends more steps near the data)"""
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    """guidance scales"""
    seed: int = 0
    """noise seed: image i gets the same noise whatever the batch size"""
    batch_size: int = 16
    """images per forward batch (each guided branch multiplies it)"""

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; known: {', '.join(SOLVERS)}")


def _rewards(generator, values: dict | Tensor | None, n: int, default: float, device) -> Tensor | None:
    if not generator.reward_keys:
        if values:
            generator.rewards_tensor(dict(values), n, default)  # raises the unknown-key error
        return None
    if isinstance(values, Tensor):
        return values.to(device)
    return generator.rewards_tensor(dict(values or {}), n, default, device)


@torch.no_grad()
def generate(pipe, prompts: list[str], *, rewards: dict[str, float | None] | Tensor | None = None,
             negative_rewards: dict[str, float | None] | Tensor | None = None,
             cfg: SampleConfig | None = None, progress: bool = False, noise: Tensor | None = None) -> Tensor:
    """Sample one image per prompt; returns (N, C, H, W) in model space (decode with pipe.image_space).

    The unconditional branch gets `pipe.encode_uncond()` (the stored empty-prompt embedding of
    official models, else "" encoded) and the negative targets.

    rewards: positive targets {key: value} (missing keys default to 1.0) or an (N, K) tensor;
    negative_rewards: targets of the guidance's negative branch (missing keys default to 0.0).
    noise: (N, C, H, W) starting noise (e.g. drawn per image from (seed, prompt, image) by the caller);
    default: one draw of N images from cfg.seed.
    A key the model was not trained with raises a one-line ValueError listing the known keys.
    """
    cfg = cfg or SampleConfig()
    model = pipe.generator
    device = pipe.device
    n = len(prompts)
    pos = _rewards(model, rewards, n, 1.0, device)
    neg = _rewards(model, negative_rewards, n, 0.0, device)
    mc = model.config
    shape = (n, mc.image_channels, mc.image_size, mc.image_size)
    if noise is None:
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(cfg.seed))
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
    grid = gamma_grid(cfg.steps, cfg.shift, device)
    empty_text, empty_mask = pipe.encode_uncond()
    was_training = model.training
    model.eval()
    outputs = []
    starts = range(0, n, cfg.batch_size)
    for start in tqdm(starts, desc="generating", disable=not progress or len(starts) == 1):
        stop = min(start + cfg.batch_size, n)
        b = stop - start
        text, mask = pipe.encode_text(prompts[start:stop])
        length = max(text.shape[1], empty_text.shape[1])  # both branches run as one batch: pad to one length
        cond = {"text": pad_tokens(text, length), "text_mask": pad_tokens(mask, length)}
        uncond = {"text": pad_tokens(empty_text, length).expand(b, -1, -1),
                  "text_mask": pad_tokens(empty_mask, length).expand(b, -1)}
        text_only = dict(cond)
        if pos is not None:
            cond["rewards"] = pos[start:stop]
            uncond["rewards"] = text_only["rewards"] = neg[start:stop]
        fn = guided_velocity(model, cond, uncond, cfg.guidance, text_only)
        outputs.append(solve(fn, noise[start:stop].to(device), grid, cfg.solver, progress=progress and len(starts) == 1))
    model.train(was_training)
    return torch.cat(outputs, dim=0)
