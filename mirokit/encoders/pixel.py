"""Image spaces: where the generator models images (pixels here; the VAE latent space has the same
contract), their config base and registry.

An image space maps what a dataset sample holds (`Sample.image`) to the model space the generator
is trained in (`to_model`), and model-space samples back to pictures (`decode`, `to_pil`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from mirokit.config import KindConfig, from_dict, to_dict
from mirokit.registry import Registry

IMAGE_SPACES: Registry = Registry("image space", "mirokit.encoders")
"""kind -> image space class, called as `cls(cfg)`."""


@dataclass(kw_only=True)
class ImageSpaceConfig(KindConfig):
    """Config of an image space; `kind` selects the registered class (pixels, ...)."""

    registry: ClassVar[Any] = IMAGE_SPACES


class ImageSpace(Protocol):
    """What training and sampling need from an image space."""

    config: ImageSpaceConfig

    def spec(self) -> dict:
        """JSON description stored in checkpoints (`build_image_space(spec)` rebuilds the space)."""
        ...

    @property
    def needs_noise(self) -> bool:
        """True if `to_model` draws random numbers (it then takes `noise` of the model-space shape)."""
        ...

    def data_shape(self, channels: int, size: int) -> tuple[int, int]:
        """(channels, side) of a dataset sample for a model of `channels` x `size` x `size`; a model this
        space cannot serve (e.g. the wrong number of latent channels) is a one-line ValueError."""
        ...

    def to(self, device: torch.device | str) -> ImageSpace:
        """Move any weights the space holds to `device`; returns self."""
        ...

    def to_model(self, data: Tensor, noise: Tensor | None = None) -> Tensor:
        """A batch of dataset images (B, C, H, W), on the training device -> model space (B, C', H', W')."""
        ...

    def decode(self, x: Tensor) -> Tensor:
        """x: (B, C', H', W') model space -> (B, C, H, W) images in [0, 1]."""
        ...

    def to_pil(self, x: Tensor) -> list:
        """x: model space -> list of B PIL images."""
        ...


@dataclass(kw_only=True)
class PixelSpaceConfig(ImageSpaceConfig):
    """Pixels in [-1, 1] are the model space (std ~0.5 = sigma_data); no options."""


@IMAGE_SPACES.register("pixels", config=PixelSpaceConfig, description="pixels in [-1, 1] (CPU runs)")
class PixelSpace:
    """The identity-like image space of CPU runs: datasets already yield pixels in [-1, 1]."""

    def __init__(self, config: PixelSpaceConfig | None = None):
        self.config = config or PixelSpaceConfig()

    @property
    def kind(self) -> str:
        """The registered kind ("pixels")."""
        return self.config.kind

    def spec(self) -> dict:
        """JSON description stored in checkpoints."""
        return to_dict(self.config)

    needs_noise = False

    def data_shape(self, channels: int, size: int) -> tuple[int, int]:
        """Pixels: the model's own shape."""
        return channels, size

    def to(self, device: torch.device | str) -> PixelSpace:
        """Nothing to move; returns self."""
        return self

    def to_model(self, data: Tensor, noise: Tensor | None = None) -> Tensor:
        """data: (B, C, H, W) pixels in [-1, 1] -> the same tensor (pixels are the model space)."""
        return data

    def encode(self, images: Tensor) -> Tensor:
        """images: (B, C, H, W) in [0, 1] -> (B, C, H, W) in [-1, 1]."""
        return images * 2 - 1

    def decode(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) model space -> (B, C, H, W) images in [0, 1] (clamped)."""
        return ((x.float() + 1) / 2).clamp(0, 1)

    def to_pil(self, x: Tensor) -> list:
        """x: (B, C, H, W) model space -> list of B PIL images (RGB or L)."""
        from PIL import Image

        arr = (self.decode(x).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]


def build_image_space(cfg: ImageSpaceConfig | dict) -> ImageSpace:
    """Build an image space from its config or spec dict; unknown kinds give a one-line error."""
    if isinstance(cfg, dict):
        cfg = from_dict(ImageSpaceConfig, cfg, where="image_space.")
    return IMAGE_SPACES.build(cfg)
