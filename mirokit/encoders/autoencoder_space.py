"""What every image space over a frozen diffusers autoencoder shares (`vae` for SDXL's, `diffusers_vae` for
SD3's and Sana's): the autoencoder loads on first use, follows `.to(device)` and `.to_dtype(dtype)`, and decodes
model-space samples in batches to images in [0, 1]. A subclass says how model space maps to the autoencoder's
latents (`latents`), holds `config` (with `kind`, `sample`, `batch_size`) and loads `vae`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from mirokit.config import to_dict


class FrozenAutoencoderSpace:
    """The shared half of an image space over a frozen diffusers autoencoder (see the module docstring)."""

    memory_format: ClassVar[torch.memory_format] = torch.contiguous_format
    """the layout of what the encoder and the decoder get"""
    round_pixels: ClassVar[bool] = True
    """to_pil rounds to uint8 (diffusers' image processor); False truncates (the official MIRO code)"""

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.weights_dtype: torch.dtype | None = None  # set by to_dtype: replaces config.dtype for this session
        self._vae = None

    @property
    def kind(self) -> str:
        """The registered kind of the space."""
        return self.config.kind

    @property
    def needs_noise(self) -> bool:
        """True when `to_model` draws latents from their moments (it then needs `noise`)."""
        return self.config.sample

    def spec(self) -> dict:
        """JSON description stored in checkpoints (`build_image_space(spec)` rebuilds the space)."""
        return to_dict(self.config)

    def to(self, device: torch.device | str) -> FrozenAutoencoderSpace:
        """Move the autoencoder (when loaded, and from then on) to `device`; returns self."""
        self.device = torch.device(device)
        if self._vae is not None:
            self._vae.to(self.device)
        return self

    def to_dtype(self, dtype: torch.dtype) -> FrozenAutoencoderSpace:
        """Hold the autoencoder's weights in `dtype` (when loaded, and from then on; the stored spec is unchanged:
        a choice of the session); decoded images stay float32. Returns self."""
        self.weights_dtype = dtype
        if self._vae is not None:
            self._vae.to(dtype)
        return self

    def data_shape(self, channels: int, size: int) -> tuple[int, int]:
        """(channels, side) of what a dataset sample holds for a model of `channels` x `size` x `size`: latent
        moments (2C, size), or pixels (3, size * downsample) when the space encodes them itself."""
        if channels != self.channels:
            raise ValueError(f"model.image_channels is {channels} but the VAE latent space of "
                             f"{self.config.name_or_path} has {self.channels} channels")
        if self.config.input == "moments":
            return 2 * channels, size
        return 3, size * self.downsample()

    def moments(self, chunk: Tensor) -> Tensor:
        """chunk: (b, 3, H, W) pixels in the autoencoder's dtype and layout -> (b, 2C, h, w) moments (mean, std)."""
        raise NotImplementedError

    @torch.no_grad()
    def encode_moments(self, pixels: Tensor) -> Tensor:
        """pixels: (B, 3, H, W) in [-1, 1] -> latent moments (B, 2C, H/f, W/f) float32 (mean then std), in
        batches of config.batch_size."""
        out = []
        for start in range(0, pixels.shape[0], self.config.batch_size):
            chunk = pixels[start:start + self.config.batch_size].to(self.device, self.vae.dtype)
            out.append(self.moments(chunk.contiguous(memory_format=self.memory_format)).float())
        return torch.cat(out)

    def latents(self, x: Tensor) -> Tensor:
        """x: (B, C, h, w) float32 model space on the space's device -> the autoencoder's latents (B, C, h, w)."""
        raise NotImplementedError

    @torch.no_grad()
    def decode(self, x: Tensor) -> Tensor:
        """x: (B, C, h, w) model space -> (B, 3, H, W) images in [0, 1], float32."""
        out = []
        for start in range(0, x.shape[0], self.config.batch_size):
            z = self.latents(x[start:start + self.config.batch_size].float().to(self.device))
            image = self.vae.decode(z.to(self.vae.dtype).contiguous(memory_format=self.memory_format)).sample.float()
            out.append((image * 0.5 + 0.5).clamp(0, 1))
        return torch.cat(out)

    def to_pil(self, x: Tensor) -> list:
        """x: (B, C, h, w) model space -> B RGB PIL images (uint8: rounded, or truncated; see `round_pixels`)."""
        from PIL import Image

        pixels = self.decode(x) * 255
        arr = (pixels.round() if self.round_pixels else pixels).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]
