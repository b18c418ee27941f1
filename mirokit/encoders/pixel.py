"""Pixel image space: images in [0, 1] <-> model space in [-1, 1] (std ~0.5 = sigma_data)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class PixelSpace:
    """The identity-like image space used by CPU runs; the VAE latent space has the same interface."""

    kind = "pixels"

    def spec(self) -> dict:
        """JSON description stored in checkpoints."""
        return {"kind": self.kind}

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


def build_image_space(spec: dict) -> PixelSpace:
    """Rebuild an image space from its spec; unknown kinds give a one-line error."""
    kind = spec.get("kind")
    if kind == "pixels":
        return PixelSpace()
    raise ValueError(f"unknown image space {kind!r}; known: pixels")


def pil_to_tensor(image, channels: int = 3) -> Tensor:
    """PIL image -> (C, H, W) float tensor in [0, 1]."""
    image = image.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(image, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
