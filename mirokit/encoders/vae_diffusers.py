"""The latent space of a diffusers pipeline's own autoencoder (kind "diffusers_vae"), normalised as that pipeline
does: Sana's DC-AE (`AutoencoderDC`: 32 channels, 32x down, `scaling_factor`) and SD3's VAE (`AutoencoderKL`:
16 channels, 8x down, `scaling_factor` and `shift_factor`).

The model space is x = (z - shift_factor) * scaling_factor (SD3's pipeline; Sana's has no shift: 0), and `decode`
runs the autoencoder on z = x / scaling_factor + shift_factor, as the pipelines decode. Both factors are read from
the autoencoder's config.json unless given. Dataset samples hold latent moments ((2C, h, w): the mean, then the std,
as `mirokit encode` writes them; the std of the deterministic DC-AE is 0) or pixels in [-1, 1] encoded in the
training step (`input: pixels`). With `sample: true` a KL latent is drawn as mean + std * noise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from mirokit.dtypes import dtype_name, dtype_named
from mirokit.encoders.autoencoder_space import FrozenAutoencoderSpace
from mirokit.encoders.hub import check_part, load_pretrained
from mirokit.encoders.pixel import IMAGE_SPACES, ImageSpaceConfig
from mirokit.sources import locate

AUTOENCODERS = ("AutoencoderKL", "AutoencoderDC")
INPUTS = ("moments", "pixels")


@dataclass(kw_only=True)
class DiffusersVAEConfig(ImageSpaceConfig):
    """A diffusers pipeline's autoencoder, normalised as its pipeline does (kind: diffusers_vae)."""

    name_or_path: str = "stabilityai/stable-diffusion-3.5-medium"
    """pipeline (or autoencoder) hub id or local folder"""
    subfolder: str = "vae"
    """the autoencoder's folder inside name_or_path ("" = name_or_path itself)"""
    scaling_factor: float | None = None
    """x = (z - shift_factor) * scaling_factor; null: the autoencoder config's"""
    shift_factor: float | None = None
    """null: the autoencoder config's (SD3's VAE has one; 0 when it has none, as Sana's DC-AE)"""
    input: str = "moments"
    """what dataset samples hold: moments ((2C, h, w): mean then std) | pixels (encoded in the training step)"""
    sample: bool = False
    """train on z ~ N(mean, std) drawn from the moments; false: on the mean (DC-AE's std is 0 either way)"""
    dtype: str = "fp32"
    """autoencoder weights dtype: fp32 | bf16 | fp16"""
    batch_size: int = 16
    """images per encode / decode call"""

    def __post_init__(self):
        if self.input not in INPUTS:
            raise ValueError(f"unknown image_space.input {self.input!r}; known: {', '.join(INPUTS)}")
        self.dtype = dtype_name(self.dtype, "image_space.dtype")
        if self.scaling_factor is not None and not self.scaling_factor > 0:
            raise ValueError(f"image_space.scaling_factor must be positive, got {self.scaling_factor}")


@IMAGE_SPACES.register("diffusers_vae", config=DiffusersVAEConfig,
                       description="a diffusers pipeline's autoencoder (SD3's KL VAE, Sana's DC-AE), as its pipeline")
class DiffusersVAESpace(FrozenAutoencoderSpace):
    """Latents of a frozen diffusers AutoencoderKL / AutoencoderDC; it loads on first use and follows `.to(device)`."""

    def __init__(self, config: DiffusersVAEConfig | None = None):
        config = config or DiffusersVAEConfig()
        name, self.local = locate(config.name_or_path, "VAE")
        self.config = replace(config, name_or_path=name)
        super().__init__()
        self._vae_config: dict | None = None

    def vae_config(self) -> dict:
        """The autoencoder's config.json (read without the weights), checked to be one of AUTOENCODERS."""
        if self._vae_config is None:
            check_part(self.config.name_or_path, self.local, self.config.subfolder, "VAE")
            config = self._load_config()
            if config.get("_class_name") not in AUTOENCODERS:
                raise ValueError(f"VAE {self.config.name_or_path}/{self.config.subfolder} holds a "
                                 f"{config.get('_class_name')}, not {' or '.join(AUTOENCODERS)}")
            self._vae_config = dict(config)
        return self._vae_config

    def _load_config(self) -> dict:
        from diffusers import AutoencoderKL

        from mirokit.sources import one_line

        try:
            return AutoencoderKL.load_config(self.config.name_or_path, subfolder=self.config.subfolder or None,
                                             local_files_only=self.local)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot load VAE {self.config.name_or_path}: {one_line(err)}") from None

    @property
    def is_dc(self) -> bool:
        """True for a DC-AE (deterministic latents)."""
        return self.vae_config()["_class_name"] == "AutoencoderDC"

    @property
    def scaling_factor(self) -> float:
        """The scale of the model space (given, else the autoencoder's)."""
        given = self.config.scaling_factor
        return float(given if given is not None else self.vae_config().get("scaling_factor") or 1.0)

    @property
    def shift_factor(self) -> float:
        """The shift of the model space (given, else the autoencoder's, else 0)."""
        given = self.config.shift_factor
        return float(given if given is not None else self.vae_config().get("shift_factor") or 0.0)

    @property
    def channels(self) -> int:
        """Latent channels C."""
        return int(self.vae_config()["latent_channels"])

    def downsample(self) -> int:
        """Pixels per latent along each side (32 for Sana's DC-AE, 8 for SD3's VAE), as the pipelines compute it."""
        config = self.vae_config()
        blocks = config["encoder_block_out_channels"] if self.is_dc else config["block_out_channels"]
        return 2 ** (len(blocks) - 1)

    @property
    def vae(self):
        """The frozen diffusers autoencoder (loaded on first access)."""
        if self._vae is None:
            import diffusers

            cls = getattr(diffusers, self.vae_config()["_class_name"])
            vae = load_pretrained(cls, self.config.name_or_path, self.local, "VAE",
                                  subfolder=self.config.subfolder or None,
                                  torch_dtype=self.weights_dtype or dtype_named(self.config.dtype))
            self._vae = vae.eval().requires_grad_(False).to(self.device)
        return self._vae

    def moments(self, chunk: Tensor) -> Tensor:
        """chunk: (b, 3, H, W) pixels -> (b, 2C, h, w) mean and std (a DC-AE is deterministic: std 0)."""
        encoded = self.vae.encode(chunk)
        if self.is_dc:
            return torch.cat([encoded.latent, torch.zeros_like(encoded.latent)], dim=1)
        return torch.cat([encoded.latent_dist.mean, encoded.latent_dist.std], dim=1)

    def to_model(self, data: Tensor, noise: Tensor | None = None) -> Tensor:
        """data: (B, 2C, h, w) moments or (B, 3, H, W) pixels -> model space (B, C, h, w); `noise` (B, C, h, w)
        standard normal is required when `needs_noise`."""
        moments = self.encode_moments(data) if self.config.input == "pixels" else data.float()
        if moments.shape[1] != 2 * self.channels:
            raise ValueError(f"latent moments have {moments.shape[1]} channels, expected {2 * self.channels} "
                             f"(mean and std of {self.channels})")
        mean, std = moments.chunk(2, dim=1)
        if self.config.sample:
            if noise is None:
                raise ValueError("image space diffusers_vae with sample=true needs noise to draw latents")
            mean = mean + std * noise.to(mean)
        return (mean - self.shift_factor) * self.scaling_factor

    def latents(self, x: Tensor) -> Tensor:
        """x: (B, C, h, w) model space -> the autoencoder's latents z = x / scaling_factor + shift_factor."""
        return x / self.scaling_factor + self.shift_factor
