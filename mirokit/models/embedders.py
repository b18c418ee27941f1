"""Scalar embedders: random Fourier features of a scalar (signal level or reward), then an MLP."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FourierFeatures(nn.Module):
    """cos(2*pi*(f*x) + phase)*sqrt(2) with fixed random frequencies f ~ N(0,1) and phases ~ U(0,1).

    Frequencies and phases are buffers (saved with the weights), as in the official network.
    """

    def __init__(self, num_channels: int, bandwidth: float = 1.0):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,) -> (B, num_channels), computed in float32."""
        y = torch.outer(x.float().reshape(-1), self.freqs.float()) + self.phases.float()
        return y.cos() * math.sqrt(2.0)


class ScalarEmbedder(nn.Module):
    """Fourier features of a scalar, standardised per sample, then Linear -> SiLU -> Linear.

    `dim` Fourier channels map to `dim * expansion` output channels.
    """

    def __init__(self, dim: int, expansion: int = 4):
        super().__init__()
        self.encode = FourierFeatures(dim)
        self.map_input = nn.Linear(dim, dim * expansion)
        self.map_output = nn.Linear(dim * expansion, dim * expansion)

    @property
    def out_dim(self) -> int:
        """Output width (dim * expansion)."""
        return self.map_output.out_features

    def flops(self) -> int:
        """Forward FLOPs for one scalar (the two Linear layers)."""
        return 2 * (self.map_input.in_features * self.map_input.out_features
                    + self.map_output.in_features * self.map_output.out_features)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,) scalar per sample -> (B, dim * expansion)."""
        feats = self.encode(x)
        feats = (feats - feats.mean(-1, keepdim=True)) / feats.std(-1, keepdim=True)
        feats = feats.to(self.map_input.weight.dtype)
        return self.map_output(torch.nn.functional.silu(self.map_input(feats)))
