"""The names and return types of `MiroPipeline`'s call: mirokit's own, the official package's (`miro.MiroPipeline`)
and the diffusers habits, mapped onto one `mirokit.sampling` call.

| official (miro-t2i)        | diffusers                 | mirokit            |
|----------------------------|---------------------------|--------------------|
| `reward_targets`           |                           | `rewards`          |
| `negative_reward_targets`  |                           | `negative_rewards` |
| `num_inference_steps`      | `num_inference_steps`     | `steps`            |
| `guidance_scale`           | `guidance_scale`          | `guidance`         |
| `num_images_per_prompt`    | `num_images_per_prompt`   | `num_images`       |
| `generator`                | `generator`               | `seed`             |

Both names of a pair may not be given at once. The return value is what the official package returns (a list of
PIL images, or a (B, H, W, 3) uint8 array for output_type="numpy") that also carries diffusers' `.images` and
mirokit's `.settings`, `.prompts`, `.indices`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

OFFICIAL_NAMES = {"reward_targets": "rewards", "negative_reward_targets": "negative_rewards",
                  "num_inference_steps": "steps", "guidance_scale": "guidance", "num_images_per_prompt": "num_images"}
"""official / diffusers keyword -> mirokit keyword"""
OUTPUT_TYPES = ("pil", "numpy", "np", "pt", "latent")
"""pil: PIL images (official, diffusers); numpy: (B, H, W, 3) uint8 (official); np: (B, H, W, C) float32 in [0, 1]
(diffusers); pt: (B, C, H, W) float32 in [0, 1] (diffusers); latent: (B, C', H', W') model-space samples"""


def merge_names(official: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """{official name: value} + {mirokit name: value} -> {mirokit name: value} (None = not given). A pair given
    twice is a one-line ValueError naming both."""
    merged = dict(own)
    for name, value in official.items():
        ours = OFFICIAL_NAMES[name]
        if value is None:
            continue
        if merged.get(ours) is not None:
            raise ValueError(f"give {name}= or {ours}=, not both (they are the same setting)")
        merged[ours] = value
    return merged


def parse_to(*args, **kwargs) -> tuple[torch.device | None, torch.dtype | None]:
    """The arguments of `nn.Module.to` in any of torch's forms (`to("cuda")`, `to(torch.bfloat16)`,
    `to("cpu", torch.float16)`, `to(device=..., dtype=...)`, `to(tensor)`) -> (device or None, dtype or None)."""
    try:
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"MiroPipeline.to: {str(err).splitlines()[0]}") from None
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"MiroPipeline.to: dtype must be a floating point type, got {dtype}")
    return device, dtype


def generator_noise(generator, shape: tuple[int, ...], count: int) -> Tensor:
    """(count, *shape) float32 standard normal noise drawn as the official package draws it: one
    `torch.randn((count, *shape), generator=generator)` on the generator's device; or, for a list of `count`
    generators (diffusers), image k from generator k."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != count:
            raise ValueError(f"got {len(generator)} generators for {count} images; give one, or one per image")
        return torch.cat([generator_noise(g, shape, 1) for g in generator])
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator (or a list of them), got {type(generator).__name__}")
    return torch.randn((count, *shape), generator=generator, device=generator.device, dtype=torch.float32)


def step_end_callback(pipe, callback_on_step_end: Callable, tensor_inputs) -> Callable:
    """A diffusers `callback_on_step_end(pipe, step_index, timestep, callback_kwargs) -> dict` as a mirokit
    step callback. callback_kwargs = {"latents": (B, C, H, W) state after the step} (of the batch being sampled);
    `timestep` is the noise level t = 1 - gamma reached (1 = noise, 0 = data). A returned dict with "latents"
    replaces the state; `pipe.interrupt = True` (diffusers' flag) stops sampling (SamplingCancelled)."""
    names = list(tensor_inputs or ["latents"])
    if set(names) - {"latents"}:
        raise ValueError(f"callback_on_step_end_tensor_inputs: only 'latents' is available, got {names}")

    def on_step(progress) -> bool:
        returned = callback_on_step_end(pipe, progress.step - 1, 1.0 - progress.gamma, {"latents": progress.sample})
        latents = (returned or {}).get("latents") if isinstance(returned, dict) else None
        if latents is not None and latents is not progress.sample:
            progress.sample.copy_(latents)
        return not getattr(pipe, "interrupt", False)

    return on_step


def chain(*callbacks: Callable | None) -> Callable | None:
    """Several step callbacks as one (each runs; any returning False cancels)."""
    present = [c for c in callbacks if c is not None]
    if len(present) < 2:
        return present[0] if present else None
    return lambda progress: all([c(progress) is not False for c in present])


class MiroPipelineOutput(list):
    """What `MiroPipeline.__call__` returns: a list with one item per image, prompt-major (every image of prompt 0,
    then prompt 1, ...) — PIL images by default, as the official package returns — that also carries:

    - `images`: the images as diffusers returns them (the list of PIL images; a stacked array or tensor for the
      array output types);
    - `prompts`: the prompt of each image; `indices`: (prompt index, image index) of each;
    - `settings`: every sampling setting used (mirokit.sampling.SamplingSettings);
    - `noise`: "seed" (image j of prompt i seeded by (settings.seed, i, j)) or "generator" (drawn from the
      `generator` given, the official way).
    """

    def __init__(self, images, *, prompts: list[str], indices: list[tuple[int, int]], settings, noise: str = "seed",
                 stacked=None):
        super().__init__(images)
        self.images = list(self) if stacked is None else stacked
        self.prompts = prompts
        self.indices = indices
        self.settings = settings
        self.noise = noise


class MiroArrayOutput(np.ndarray):
    """output_type="numpy": the official package's (B, H, W, 3) uint8 array, with `images` (itself), `prompts`,
    `indices`, `settings` and `noise` as on MiroPipelineOutput."""

    def __array_finalize__(self, obj):
        for name in ("prompts", "indices", "settings", "noise"):
            setattr(self, name, getattr(obj, name, None))

    @property
    def images(self) -> np.ndarray:
        """The array itself (diffusers' `.images`)."""
        return self


def format_output(image_space, samples: Tensor, output_type: str, **about) -> MiroPipelineOutput | MiroArrayOutput:
    """samples (B, C', H', W') in model space -> the call's return value for `output_type` (OUTPUT_TYPES); `about`:
    prompts, indices, settings, noise."""
    if output_type == "latent":
        return MiroPipelineOutput(list(samples), stacked=samples, **about)
    if output_type in ("pt", "np"):
        images = image_space.decode(samples).float().clamp(0, 1)
        if output_type == "np":
            images = images.permute(0, 2, 3, 1).cpu().numpy()
        return MiroPipelineOutput(list(images), stacked=images, **about)
    pil = image_space.to_pil(samples)
    if output_type == "pil":
        return MiroPipelineOutput(pil, **about)
    array = np.stack([np.asarray(image) for image in pil]).view(MiroArrayOutput)
    for name, value in about.items():
        setattr(array, name, value)
    return array


def check_output_type(output_type: str) -> str:
    """A known output type, or a one-line ValueError listing them."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"unknown output_type {output_type!r}; known: {', '.join(OUTPUT_TYPES)}")
    return output_type
