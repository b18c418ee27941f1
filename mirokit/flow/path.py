"""The straight path y = gamma * x0 + (1 - gamma) * eps (gamma = 1 clean, 0 pure noise)."""

from __future__ import annotations

from torch import Tensor


def _expand(gamma: Tensor, like: Tensor) -> Tensor:
    return gamma.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def interpolate(x0: Tensor, noise: Tensor, gamma: Tensor) -> Tensor:
    """x0, noise: (B, ...); gamma: (B,) -> y = gamma*x0 + (1-gamma)*noise, (B, ...)."""
    g = _expand(gamma, x0)
    return g * x0 + (1 - g) * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The regression target eps - x0 (B, ...); note dy/dgamma = -(eps - x0)."""
    return noise - x0


def x0_from_velocity(y: Tensor, velocity: Tensor, gamma: Tensor) -> Tensor:
    """Clean estimate x0 = y - (1 - gamma) * velocity; y, velocity: (B, ...); gamma: (B,)."""
    return y - (1 - _expand(gamma, y)) * velocity
