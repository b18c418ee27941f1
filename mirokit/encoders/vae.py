"""The VAE latent image space (kind "vae"): the generator models normalised SDXL-VAE latents.

Dataset samples hold either the VAE's latent moments (`input: moments`, a (2C, h, w) tensor: the
mean then the std, as `mirokit encode` writes them) or pixels in [-1, 1] that are encoded inside the
training step (`input: pixels`, the on-the-fly mode for small datasets). A latent z (the mean, or
a draw mean + std * noise with `sample: true`, as the official training does) is normalised per
channel to x = z * scale + bias; `decode` inverts that and runs the VAE decoder.

Normalisation (official MIRO: channel-wise to std 0.5):
  sdxl_channel_wise  scale = 0.5 / std_c, bias = -mean_c * scale with the SDXL constants below;
  stats              the same from a JSON {"mean": [...], "std": [...]} estimated on your data;
  explicit           `scale` and `bias` given per channel (what a saved model folder stores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from mirokit.atomic import SOLE_WRITER, write_json_atomic
from mirokit.config import ConfigError
from mirokit.dtypes import dtype_name, dtype_named
from mirokit.encoders.autoencoder_space import FrozenAutoencoderSpace
from mirokit.encoders.hub import load_pretrained
from mirokit.encoders.pixel import IMAGE_SPACES, ImageSpaceConfig
from mirokit.sources import locate

SDXL_LATENT_MEAN = (-0.3480, 0.3754, 0.0419, 2.4331)
"""Channel means of SDXL-VAE latents (official MIRO constants)."""
SDXL_LATENT_STD = (7.8518, 5.8465, 6.8716, 5.3140)
"""Channel standard deviations of SDXL-VAE latents (official MIRO constants)."""
TARGET_STD = 0.5
"""Normalised latents have this std per channel (= sigma_data)."""
NORMALISATIONS = ("sdxl_channel_wise", "stats", "explicit")
INPUTS = ("moments", "pixels")


@dataclass(kw_only=True)
class VAESpaceConfig(ImageSpaceConfig):
    """A diffusers AutoencoderKL latent space (kind: vae)."""

    name_or_path: str = "stabilityai/sdxl-vae"
    """VAE hub id or local folder (diffusers layout: config.json + weights)"""
    normalisation: str = "sdxl_channel_wise"
    """sdxl_channel_wise (official constants) | stats (from `stats`) | explicit (`scale`, `bias`)"""
    stats: str | None = None
    """normalisation=stats: JSON with per-channel "mean" and "std" of the latents (`mirokit encode` writes
    `latent_stats.json`; `--no-stats` skips it)"""
    scale: list[float] = field(default_factory=list)
    """normalisation=explicit: per-channel scale (x = z * scale + bias)"""
    bias: list[float] = field(default_factory=list)
    """normalisation=explicit: per-channel bias"""
    input: str = "moments"
    """what dataset samples hold: moments ((2C, h, w): mean then std) | pixels (encoded in the training step)"""
    sample: bool = True
    """train on z ~ N(mean, std) drawn from the moments (official); false: on the mean"""
    dtype: str = "fp32"
    """VAE weights dtype: fp32 | bf16 | fp16"""
    batch_size: int = 16
    """images per VAE encode / decode call"""

    def __post_init__(self):
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown image_space.normalisation {self.normalisation!r}; "
                             f"known: {', '.join(NORMALISATIONS)}")
        if self.input not in INPUTS:
            raise ValueError(f"unknown image_space.input {self.input!r}; known: {', '.join(INPUTS)}")
        self.dtype = dtype_name(self.dtype, "image_space.dtype")
        if self.normalisation == "stats" and not self.stats:
            raise ValueError("image_space.normalisation=stats needs image_space.stats (a JSON file)")
        if self.normalisation == "explicit" and (not self.scale or len(self.scale) != len(self.bias)):
            raise ValueError("image_space.normalisation=explicit needs scale and bias lists of equal length")


def read_latent_stats(path: str | Path) -> tuple[list[float], list[float]]:
    """(mean, std) per channel from a stats JSON; a missing or malformed file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latent statistics file not found: {path}")
    try:
        data = json.loads(path.read_text())
        mean, std = [float(v) for v in data["mean"]], [float(v) for v in data["std"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: not a latent statistics file ({type(err).__name__}: {err})") from None
    if len(mean) != len(std) or not all(s > 0 for s in std):
        raise ConfigError(f"{path}: mean and std must have one positive std per channel")
    return mean, std


class LatentStats:
    """Running per-channel mean and std of VAE latents (the means of the moments), in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: Tensor | None = None
        self.sum_sq: Tensor | None = None

    def update(self, moments: Tensor) -> None:
        """moments: (B, 2C, h, w) -> accumulate the statistics of their means (B, C, h, w)."""
        mean = moments.double().chunk(2, dim=1)[0].transpose(0, 1).reshape(moments.shape[1] // 2, -1)
        s, sq = mean.sum(1).cpu(), mean.pow(2).sum(1).cpu()
        self.sum = s if self.sum is None else self.sum + s
        self.sum_sq = sq if self.sum_sq is None else self.sum_sq + sq
        self.count += mean.shape[1]

    def sums(self) -> dict:
        """{"count", "sum", "sum_sq"}: what `add_sums` takes (to merge statistics of several parts)."""
        return {"count": self.count, "sum": self.sum.tolist(), "sum_sq": self.sum_sq.tolist()}

    def add_sums(self, sums: dict) -> None:
        """Merge the `sums()` of another part."""
        s, sq = torch.tensor(sums["sum"], dtype=torch.float64), torch.tensor(sums["sum_sq"], dtype=torch.float64)
        self.sum = s if self.sum is None else self.sum + s
        self.sum_sq = sq if self.sum_sq is None else self.sum_sq + sq
        self.count += int(sums["count"])

    def result(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel."""
        if not self.count:
            raise ValueError("no latents were seen: cannot estimate statistics")
        mean = self.sum / self.count
        std = (self.sum_sq / self.count - mean.pow(2)).clamp(min=1e-12).sqrt()
        return mean.tolist(), std.tolist()

    def save(self, path: str | Path) -> Path:
        """Write {"mean", "std", "count"} as JSON (the `stats` file of `normalisation: stats`)."""
        mean, std = self.result()
        return write_json_atomic(path, {"mean": mean, "std": std, "count": self.count}, SOLE_WRITER)


def normalisation_of(cfg: VAESpaceConfig) -> tuple[list[float], list[float]]:
    """(scale, bias) per channel for a config (x = z * scale + bias)."""
    if cfg.normalisation == "explicit":
        return list(cfg.scale), list(cfg.bias)
    mean, std = (SDXL_LATENT_MEAN, SDXL_LATENT_STD) if cfg.normalisation == "sdxl_channel_wise" \
        else read_latent_stats(cfg.stats)
    scale = [TARGET_STD / s for s in std]
    return scale, [-m * k for m, k in zip(mean, scale)]


@IMAGE_SPACES.register("vae", config=VAESpaceConfig, description="normalised VAE latents (diffusers AutoencoderKL)")
class VAESpace(FrozenAutoencoderSpace):
    """Normalised latents of a frozen VAE; the VAE loads on first use and follows `.to(device)`."""

    memory_format = torch.channels_last
    round_pixels = False  # truncated to uint8 as the official code does

    def __init__(self, config: VAESpaceConfig | None = None):
        config = config or VAESpaceConfig()
        name, self.local = locate(config.name_or_path, "VAE")
        scale, bias = normalisation_of(config)
        # stored resolved: a saved model keeps its constants even if the stats file goes away
        self.config = replace(config, name_or_path=name, normalisation="explicit", stats=None, scale=scale, bias=bias)
        self.scale = torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1)
        self.bias = torch.tensor(bias, dtype=torch.float32).view(1, -1, 1, 1)
        super().__init__()

    @property
    def channels(self) -> int:
        """Latent channels C."""
        return self.scale.shape[1]

    @property
    def vae(self):
        """The frozen diffusers AutoencoderKL (loaded on first access)."""
        if self._vae is None:
            from diffusers import AutoencoderKL

            vae = load_pretrained(AutoencoderKL, self.config.name_or_path, self.local, "VAE",
                                  torch_dtype=self.weights_dtype or dtype_named(self.config.dtype),
                                  low_cpu_mem_usage=False)
            if vae.config.latent_channels != self.channels:
                raise ValueError(f"VAE {self.config.name_or_path} has {vae.config.latent_channels} latent channels; "
                                 f"the normalisation has {self.channels}")
            self._vae = vae.eval().requires_grad_(False).to(self.device)
        return self._vae

    def downsample(self) -> int:
        """Pixels per latent along each side (8 for the SDXL VAE), from the VAE's config."""
        if self._vae is not None:
            blocks = self._vae.config.block_out_channels
        elif self.local and (Path(self.config.name_or_path) / "config.json").is_file():
            blocks = json.loads((Path(self.config.name_or_path) / "config.json").read_text())["block_out_channels"]
        else:
            blocks = self.vae.config.block_out_channels
        return 2 ** (len(blocks) - 1)

    def moments(self, chunk: Tensor) -> Tensor:
        """chunk: (b, 3, H, W) pixels (channels_last: oneDNN's convolutions on CPU run ~25% faster on it, and
        cuDNN's in bf16) -> (b, 2C, h, w) mean and std of the latent distribution."""
        dist = self.vae.encode(chunk).latent_dist
        return torch.cat([dist.mean, dist.std], dim=1)

    def to_model(self, data: Tensor, noise: Tensor | None = None) -> Tensor:
        """data: (B, 2C, h, w) moments or (B, 3, H, W) pixels -> normalised latents (B, C, h, w);
        `noise` (B, C, h, w) standard normal is required when `needs_noise`."""
        moments = self.encode_moments(data) if self.config.input == "pixels" else data.float()
        if moments.shape[1] != 2 * self.channels:
            raise ValueError(f"latent moments have {moments.shape[1]} channels, expected {2 * self.channels} "
                             f"(mean and std of {self.channels})")
        mean, std = moments.chunk(2, dim=1)
        if self.config.sample:
            if noise is None:
                raise ValueError("image space vae with sample=true needs noise to draw latents")
            mean = mean + std * noise.to(mean)
        return mean * self.scale.to(mean.device) + self.bias.to(mean.device)

    def latents(self, x: Tensor) -> Tensor:
        """x: (B, C, h, w) model space -> the VAE's latents z = (x - bias) / scale."""
        return (x - self.bias.to(x.device)) / self.scale.to(x.device)


def init_tiny_vae(out: str | Path, *, widths: tuple[int, ...] = (16, 32), latent_channels: int = 4,
                  image_size: int = 32, samples: int = 512, seed: int = 0) -> dict:
    """Write a small diffusers AutoencoderKL with random weights in hub layout to OUT, and the per-channel
    statistics of its latents on `samples` built-in toy images (OUT/latent_stats.json, for
    `normalisation: stats`) -> {"parameters", "downsampling", "mean", "std", "stats"}. For CPU latent-space
    runs and tests: a random VAE is not a good image codec."""
    from diffusers import AutoencoderKL

    from mirokit.data.toy import ToyShapesDataset

    if not widths or min(widths) < 4 or any(w % 4 for w in widths):
        raise ValueError("--channels: every width must be a multiple of 4 (GroupNorm with 4 groups)")
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(widths),
                        up_block_types=("UpDecoderBlock2D",) * len(widths), block_out_channels=tuple(widths),
                        latent_channels=latent_channels, norm_num_groups=4, layers_per_block=1,
                        sample_size=image_size)
    vae.save_pretrained(str(out))
    space = VAESpace(VAESpaceConfig(name_or_path=str(out), normalisation="explicit", scale=[1.0] * latent_channels,
                                    bias=[0.0] * latent_channels, sample=False))
    images = ToyShapesDataset(samples, image_size=image_size, seed=seed).images(range(samples))
    stats = LatentStats()
    stats.update(space.encode_moments(images))
    path = stats.save(f"{out}/latent_stats.json")
    mean, std = stats.result()
    return {"parameters": sum(p.numel() for p in vae.parameters()), "downsampling": 2 ** (len(widths) - 1),
            "mean": mean, "std": std, "stats": str(path)}


def describe_tiny_vae(made: dict, out: str | Path) -> str:
    """The line `mirokit vae init` prints for what init_tiny_vae made in OUT (statistics rounded to 3 digits)."""
    return (f"wrote a {made['parameters']:,}-parameter VAE (x{made['downsampling']} down) to {out}; latent mean "
            f"{[round(m, 3) for m in made['mean']]}, std {[round(s, 3) for s in made['std']]} in {made['stats']}")
