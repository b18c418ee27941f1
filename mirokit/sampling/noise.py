"""The starting noise of every image: a pure function of (seed, prompt index, image index).

So an image does not depend on the batch it was drawn in, on sharding or on resuming; `mirokit sample`, the
Python call `MiroPipeline(...)`, `mirokit generate` and every evaluation give the same pixels for the same
(seed, prompt, image); and two models (or two settings) compared on one prompt set start from the same noise
(common random numbers: their difference has less variance).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def image_seed(seed: int, prompt_index: int, image_index: int) -> int:
    """A 63-bit seed from (seed, prompt index, image index) via numpy's SeedSequence hash."""
    a, b = np.random.SeedSequence([seed, prompt_index, image_index]).generate_state(2)
    return (int(a) << 31 ^ int(b)) & (2 ** 63 - 1)


def initial_noise(shape: tuple[int, ...], seed: int, pairs: list[tuple[int, int]]) -> Tensor:
    """(N, *shape) standard normal noise (CPU, float32), row k seeded by (seed, *pairs[k]) where pairs[k] =
    (prompt index, image index)."""
    if not pairs:
        return torch.zeros((0, *shape))
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(image_seed(seed, i, j)))
                        for i, j in pairs])


def prompt_major_pairs(num_prompts: int, images_per_prompt: int) -> list[tuple[int, int]]:
    """[(prompt i, image j)] with every image of prompt 0 first, then prompt 1, ..."""
    return [(i, j) for i in range(num_prompts) for j in range(images_per_prompt)]
