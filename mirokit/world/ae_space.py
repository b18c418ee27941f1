"""The `world_ae` image space: the generator models normalised latents of the world autoencoder.

Like the `vae` space of real runs (SDXL-VAE latents, channel-wise normalised to std 0.5), a latent z is
normalised per channel to x = z * scale + bias; `decode` inverts that and runs the autoencoder's decoder.
Dataset samples hold either latents (`input: latents`, what the demo precomputes once) or pixels in
[-1, 1] (`input: pixels`, encoded inside the training step).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from mirokit.config import to_dict
from mirokit.encoders.pixel import IMAGE_SPACES, ImageSpaceConfig
from mirokit.world.autoencoder import WorldAutoencoder, weights_fingerprint

INPUTS = ("latents", "pixels")
TARGET_STD = 0.5
"""normalised latents have this std per channel (sigma_data), as in MIRO"""
CPU_CHUNK = 64
"""images per autoencoder call on the CPU: with channels-last tensors, 64 at a time encoded 2.2x and decoded
1.75x faster than 512 in the default layout (the activations stay in cache; BENCHMARKS.md)"""


@dataclass(kw_only=True)
class WorldAESpaceConfig(ImageSpaceConfig):
    """Normalised latents of the world autoencoder (kind: world_ae)."""

    name_or_path: str = "builtin"
    """autoencoder folder (config.json + model.safetensors), or builtin: the one shipped with mirokit"""
    scale: list[float] = field(default_factory=list)
    """per-channel scale (x = z * scale + bias); empty: 1"""
    bias: list[float] = field(default_factory=list)
    """per-channel bias; empty: 0"""
    input: str = "latents"
    """what dataset samples hold: latents (C, h, w) | pixels (3, H, W) in [-1, 1], encoded in the training step"""
    fingerprint: str = ""
    """sha256 (first 16 hex digits) of the autoencoder's weights the latents were made with; a different
    autoencoder at name_or_path is then a one-line error instead of silently wrong images ("" = unchecked)"""

    def __post_init__(self):
        if self.input not in INPUTS:
            raise ValueError(f"unknown image_space.input {self.input!r}; known: {', '.join(INPUTS)}")
        if len(self.scale) != len(self.bias):
            raise ValueError("image_space.scale and image_space.bias need one value per latent channel each")


def normalisation(latents: Tensor) -> tuple[list[float], list[float]]:
    """latents (N, C, h, w) -> per-channel (scale, bias) giving mean 0 and std TARGET_STD."""
    mean = latents.double().mean(dim=(0, 2, 3))
    std = latents.double().std(dim=(0, 2, 3)).clamp(min=1e-6)
    scale = TARGET_STD / std
    return scale.tolist(), (-mean * scale).tolist()


@IMAGE_SPACES.register("world_ae", config=WorldAESpaceConfig,
                       description="normalised world-autoencoder latents (plugin)")
class WorldAESpace:
    """Latents of a frozen WorldAutoencoder, loaded on first use."""

    needs_noise = False

    def __init__(self, config: WorldAESpaceConfig | None = None):
        self.config = config or WorldAESpaceConfig()
        self.device = torch.device("cpu")
        self._ae: WorldAutoencoder | None = None

    @property
    def kind(self) -> str:
        """The registered kind ("world_ae")."""
        return self.config.kind

    @property
    def ae(self) -> WorldAutoencoder:
        """The frozen autoencoder (loaded on first access; missing weights are a one-line error)."""
        if self._ae is None:
            expected, found = self.config.fingerprint, weights_fingerprint(self.config.name_or_path)
            if expected and expected != found:
                raise ValueError(f"world autoencoder {self.config.name_or_path} has fingerprint {found}, but these "
                                 f"latents were made with {expected}: use the autoencoder the model was trained with")
            ae = WorldAutoencoder.from_pretrained(self.config.name_or_path)
            if self.config.scale and len(self.config.scale) != ae.config.latent_channels:
                raise ValueError(f"world autoencoder {self.config.name_or_path} has {ae.config.latent_channels} latent "
                                 f"channels; the normalisation has {len(self.config.scale)}")
            self._ae = self._place(ae)
        return self._ae

    def _place(self, ae: WorldAutoencoder) -> WorldAutoencoder:
        ae.to(self.device)
        return ae.to(memory_format=torch.channels_last) if self.device.type == "cpu" else ae

    def _run(self, fn, x: Tensor, batch_size: int) -> Tensor:
        """fn over (B, ...) x in chunks (CPU: CPU_CHUNK at most, channels-last) -> (B, ...) contiguous."""
        if self.device.type == "cpu":
            batch_size = min(batch_size, CPU_CHUNK)
        out = [] if len(x) else [fn(x.to(self.device).float())]
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size].to(self.device).float()
            if self.device.type == "cpu":
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            out.append(fn(chunk).contiguous())
        return torch.cat(out)

    def _affine(self, channels: int, device) -> tuple[Tensor, Tensor]:
        scale = self.config.scale or [1.0] * channels
        bias = self.config.bias or [0.0] * channels
        return (torch.tensor(scale, device=device).view(1, -1, 1, 1),
                torch.tensor(bias, device=device).view(1, -1, 1, 1))

    def spec(self) -> dict:
        """JSON description stored in checkpoints."""
        return to_dict(self.config)

    def with_normalisation(self, latents: Tensor) -> WorldAESpace:
        """A copy of this space normalised to the statistics of `latents` (N, C, h, w), with the fingerprint of
        its autoencoder."""
        scale, bias = normalisation(latents)
        fingerprint = weights_fingerprint(self.config.name_or_path)
        return WorldAESpace(replace(self.config, scale=scale, bias=bias, fingerprint=fingerprint))

    def to(self, device: torch.device | str) -> WorldAESpace:
        """Move the autoencoder (when loaded, and from then on) to `device`; returns self."""
        self.device = torch.device(device)
        if self._ae is not None:
            self._place(self._ae)
        return self

    def data_shape(self, channels: int, size: int) -> tuple[int, int]:
        """(channels, side) of a dataset sample for a model of `channels` x `size` x `size`."""
        ae = self.ae.config
        if channels != ae.latent_channels:
            raise ValueError(f"model.image_channels is {channels} but the world autoencoder has {ae.latent_channels} "
                             f"latent channels")
        return (channels, size) if self.config.input == "latents" else (3, size * ae.downsampling)

    @torch.no_grad()
    def encode(self, pixels: Tensor, batch_size: int = 256) -> Tensor:
        """pixels: (B, 3, H, W) in [-1, 1] -> raw latents (B, C, H/f, W/f) float32 (not normalised)."""
        return self._run(self.ae.encode, pixels, batch_size)

    def to_model(self, data: Tensor, noise: Tensor | None = None) -> Tensor:
        """data: (B, C, h, w) latents or (B, 3, H, W) pixels -> normalised latents (B, C, h, w)."""
        z = self.encode(data) if self.config.input == "pixels" else data.float()
        scale, bias = self._affine(z.shape[1], z.device)
        return z * scale + bias

    @torch.no_grad()
    def decode(self, x: Tensor) -> Tensor:
        """x: (B, C, h, w) model space -> (B, 3, H, W) images in [0, 1]."""
        scale, bias = self._affine(x.shape[1], self.device)
        z = (x.float().to(self.device) - bias) / scale
        return ((self._run(self.ae.decode, z, 256) + 1) / 2).clamp(0, 1)

    def to_pil(self, x: Tensor) -> list:
        """x: model space -> list of B RGB PIL images."""
        from PIL import Image

        arr = (self.decode(x) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]
