"""Prompts + SamplingSettings -> samples in model space, with multi-reward guidance, batched and seeded."""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mirokit.encoders.text import pad_tokens
from mirokit.sampling.guidance import guided_velocity
from mirokit.sampling.noise import initial_noise
from mirokit.sampling.settings import SamplingSettings
from mirokit.sampling.solvers import Callback, StepProgress, gamma_grid, solve


def _targets(generator, values: dict, n: int, default: float, device) -> Tensor | None:
    """{key: value} -> (n, K) targets (None for a model without rewards; an unknown key is a one-line error)."""
    if not generator.reward_keys:
        if values:
            generator.rewards_tensor(dict(values), n, default)  # raises the unknown-key error
        return None
    return generator.rewards_tensor(dict(values), n, default, device)


def _offset(callback: Callback | None, done: int, total: int) -> Callback | None:
    """A callback for one batch that reports steps counted over every batch."""
    if callback is None:
        return None
    return lambda p: callback(StepProgress(step=done + p.step, total=total, gamma=p.gamma, sample=p.sample,
                                           estimate=p.estimate))


def generate_pairs(pipe, prompts: list[str], pairs: list[tuple[int, int]], settings: SamplingSettings | None = None,
                   *, noise: Tensor | None = None, progress: bool = False, callback: Callback | None = None) -> Tensor:
    """Sample prompts[k] from the noise of pairs[k] = (prompt index, image index), seeded by (settings.seed, i, j)
    (mirokit.sampling.noise; or `noise` (N, C, H, W) given) -> (N, C, H, W) float32 in model space. The rule
    `MiroPipeline(...)`, `mirokit sample` and every evaluation share: the same pair gives the same image."""
    if len(prompts) != len(pairs):
        raise ValueError(f"{len(prompts)} prompts but {len(pairs)} noise indices")
    settings = settings or SamplingSettings()
    if noise is None:
        mc = pipe.generator.config
        noise = initial_noise((mc.image_channels, mc.image_size, mc.image_size), settings.seed, pairs)
    return generate(pipe, list(prompts), settings, noise=noise, progress=progress, callback=callback)


@torch.no_grad()
def generate(pipe, prompts: list[str], settings: SamplingSettings | None = None, *, noise: Tensor | None = None,
             progress: bool = False, callback: Callback | None = None) -> Tensor:
    """Sample one image per prompt; returns (N, C, H, W) float32 in model space (decode with pipe.image_space).

    settings: targets, solver, steps, shift, guidance (and its interval), seed, batch size (default: the official
    sampler). The conditional branch gets the prompt and `settings.rewards` (unnamed keys 1.0); the unconditional one
    `pipe.encode_uncond()` (the stored empty-prompt embedding, else "" encoded) and `settings.negative_rewards`
    (unnamed keys 0.0). A key the model was not trained with is a one-line ValueError listing its keys.
    noise: (N, C, H, W) starting noise; default: row k from (settings.seed, k, 0) (mirokit.sampling.noise).
    callback: called after every step with StepProgress (steps counted over all batches); False cancels.
    """
    settings = settings or SamplingSettings()
    model = pipe.generator
    device = pipe.device
    dtype = next(model.parameters()).dtype
    n = len(prompts)
    pos = _targets(model, settings.rewards, n, 1.0, device)
    neg = _targets(model, settings.negative_rewards, n, 0.0, device)
    mc = model.config
    shape = (n, mc.image_channels, mc.image_size, mc.image_size)
    if noise is None:
        noise = initial_noise(shape[1:], settings.seed, [(k, 0) for k in range(n)])
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
    grid = gamma_grid(settings.steps, settings.shift)  # on the host: the solver reads its levels as numbers
    empty_text, empty_mask = pipe.encode_uncond()
    was_training = model.training
    model.eval()
    outputs = []
    starts = range(0, n, settings.batch_size)
    one = len(starts) == 1
    try:
        for b_index, start in enumerate(tqdm(starts, desc="generating", disable=not progress or one)):
            stop = min(start + settings.batch_size, n)
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
            fn = guided_velocity(model, cond, uncond, scale=settings.guidance, text_scale=settings.text_guidance,
                                 reward_scale=settings.reward_guidance, text_only=text_only,
                                 dtype=None if dtype == torch.float32 else dtype,
                                 interval=settings.guidance_interval)
            step_callback = _offset(callback, b_index * settings.steps, len(starts) * settings.steps)
            outputs.append(solve(fn, noise[start:stop].to(device), grid, settings.solver,
                                 progress=progress and one, callback=step_callback))
    finally:
        model.train(was_training)
    return torch.cat(outputs, dim=0)
