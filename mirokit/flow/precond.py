"""EDM-style preconditioning of the velocity network at signal level gamma."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def input_scale(gamma: Tensor, sigma_data: float) -> Tensor:
    """c_in = 1 / sqrt((gamma*sigma_data)^2 + (1-gamma)^2): unit-variance network input. (B,) -> (B,)."""
    return torch.rsqrt((gamma * sigma_data) ** 2 + (1 - gamma) ** 2)


def output_scale(sigma_data: float) -> float:
    """c_out = sqrt(1 + sigma_data^2): the std of the velocity target eps - x0."""
    return math.sqrt(1 + sigma_data ** 2)
