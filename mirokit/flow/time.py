"""Signal-level sampling for training and the shift that reshapes sampling grids."""

from __future__ import annotations

import torch
from torch import Tensor


def logit_normal_gamma(batch_size: int, *, mean: float = 0.0, std: float = 1.0,
                       generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """t ~ sigmoid(N(mean, std)), returns gamma = 1 - t, shape (batch_size,)."""
    normal = torch.randn(batch_size, generator=generator, device=device) * std + mean
    return 1.0 - torch.sigmoid(normal)


def shift_gamma(gamma: Tensor, shift: float) -> Tensor:
    """Time shift of a signal-level grid: s*g / (1 + (s-1)*g); shift 1 is the identity; > 1 spends
    more steps at high signal level (the official LinearScheduler convention)."""
    if shift == 1.0:
        return gamma
    return shift * gamma / (1 + (shift - 1) * gamma)
