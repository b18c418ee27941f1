"""The shapes world's autoencoder and its latent image space (kind `world_ae`).

MIRO trains on SDXL-VAE latents; the demo does the same on the shapes world with a small convolutional
autoencoder: a 32x32 image becomes a (C, 32/f, 32/f) latent (f = 2 ** len(widths)). A trained one ships
with mirokit (`mirokit/world/world_ae/`, made by `mirokit world autoencoder --out DIR`, see there for its
recipe), so the demo spends its minutes on the generators, as MIRO spends none on training SDXL's VAE.

Encoder: a 3x3 stem at full resolution, then per width a stride-2 4x4 conv and a residual block; a 1x1 conv to
the latent. Decoder: the mirror (residual blocks, 4x4 transposed convs), a 3x3 conv to RGB in [-1, 1].
Trained with L1 + MSE on reconstructions of latents perturbed by Gaussian noise (std `latent_noise`) and a
small L2 penalty on the latents, so that nearby latents decode to nearby images (what a generator needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mirokit.config import ConfigError
from mirokit.pretrained import WEIGHTS_NAME, PretrainedMixin

BUILTIN = Path(__file__).with_name("world_ae")
"""the autoencoder that ships with mirokit (`name_or_path: builtin`)"""


@dataclass(kw_only=True)
class WorldAEConfig:
    """Shape of a WorldAutoencoder."""

    widths: list[int] = field(default_factory=lambda: [48, 96])
    """channels after each stride-2 level (f = 2 ** len(widths)); multiples of 8"""
    latent_channels: int = 4
    """latent channels C"""
    image_size: int = 32
    """side of the images it was trained on (any multiple of f works)"""

    def __post_init__(self):
        if not self.widths or any(w < 8 or w % 8 for w in self.widths):
            raise ConfigError(f"widths must be multiples of 8, got {self.widths}")
        if self.latent_channels < 1 or self.image_size % self.downsampling:
            raise ConfigError(f"latent_channels must be >= 1 and image_size a multiple of {self.downsampling}")

    @property
    def downsampling(self) -> int:
        """Pixels per latent along each side."""
        return 2 ** len(self.widths)


class _Res(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class WorldAutoencoder(PretrainedMixin, nn.Module):
    """(B, 3, H, W) in [-1, 1] <-> (B, C, H/f, W/f) latents; persisted by mirokit.pretrained."""

    config_class = WorldAEConfig
    pretrained_name = "world autoencoder"

    def __init__(self, cfg: WorldAEConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or WorldAEConfig()
        w = cfg.widths
        enc: list[nn.Module] = [nn.Conv2d(3, w[0], 3, padding=1)]
        for prev, ch in zip([w[0], *w[:-1]], w):
            enc += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), _Res(ch)]
        enc += [nn.GroupNorm(8, w[-1]), nn.SiLU(), nn.Conv2d(w[-1], cfg.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, w[-1], 3, padding=1), _Res(w[-1])]
        rev = [*w[::-1], w[0]]
        for ch, nxt in zip(rev[:-1], rev[1:]):
            dec += [_Res(ch), nn.GroupNorm(8, ch), nn.SiLU(), nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1)]
        dec += [nn.GroupNorm(8, w[0]), nn.SiLU(), nn.Conv2d(w[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: Tensor) -> Tensor:
        """x: (B, 3, H, W) in [-1, 1] -> latents (B, C, H/f, W/f)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """z: (B, C, h, w) latents -> (B, 3, h*f, w*f) images, about [-1, 1] (not clamped)."""
        return self.decoder(z)

    @classmethod
    def resolve_folder(cls, name_or_path: str | Path) -> Path:
        """"builtin" -> the autoencoder shipped with mirokit; anything else is a folder."""
        return BUILTIN if str(name_or_path) == "builtin" else Path(name_or_path).expanduser()

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "builtin", *, device="cpu") -> WorldAutoencoder:
        """A folder written by save_pretrained ("builtin": the one shipped with mirokit), frozen, in eval mode."""
        return super().from_pretrained(name_or_path, device=device).requires_grad_(False)


def weights_fingerprint(name_or_path: str | Path = "builtin") -> str:
    """The first 16 hex digits of the sha256 of an autoencoder folder's model.safetensors."""
    import hashlib

    directory = WorldAutoencoder.resolve_folder(name_or_path)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"world autoencoder weights not found: {directory} (missing {WEIGHTS_NAME})")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass(kw_only=True)
class AETrainConfig:
    """How `train_autoencoder` trains."""

    steps: int = 3000
    """optimizer steps"""
    batch_size: int = 64
    """images per step"""
    lr: float = 2e-3
    """peak AdamW learning rate (30-step warm-up, cosine to 0)"""
    latent_noise: float = 0.1
    """std of the Gaussian noise added to latents before decoding"""
    latent_penalty: float = 1e-3
    """weight of the mean squared latent"""
    seed: int = 0
    """initialisation and batch-order seed"""


def train_autoencoder(images: Tensor, cfg: WorldAEConfig, train: AETrainConfig, *,
                      progress: bool = True) -> tuple[WorldAutoencoder, list[float]]:
    """images: (N, 3, H, W) in [-1, 1] -> (trained autoencoder in eval mode, loss per step)."""
    torch.manual_seed(train.seed)
    model = WorldAutoencoder(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(train.seed)
    losses = []
    for step in tqdm(range(train.steps), desc="training the world autoencoder", disable=not progress):
        x = images[torch.randint(0, len(images), (train.batch_size,), generator=order)]
        z = model.encode(x)
        rec = model.decode(z + train.latent_noise * torch.randn(z.shape, generator=order))
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + train.latent_penalty * z.pow(2).mean()
        for group in opt.param_groups:
            group["lr"] = train.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / train.steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval().requires_grad_(False), losses


def train_world_autoencoder(out: str | Path, *, samples: int = 8000, steps: int = 3000, batch_size: int = 64,
                            widths: list[int] | None = None, latent_channels: int = 4, seed: int = 0,
                            half: bool = False) -> dict:
    """Train a WorldAutoencoder on `samples` images of the demo's world, save it to OUT (float16 weights with
    `half`) and check it: the world rewards of 500 clean images and of their reconstructions -> {"out",
    "final_loss", "originals": {reward: mean}, "reconstructions": {reward: mean}}."""
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.sampling import demo_world_config
    from mirokit.world.source import WORLD_REWARDS, score_images

    if samples < 1 or steps < 1 or batch_size < 1:
        raise ValueError("--samples, --steps and --batch-size must be >= 1")
    cfg = WorldAEConfig(widths=list(widths or [48, 96]), latent_channels=latent_channels, image_size=32)
    images = WorldDataset(samples, demo_world_config(seed)).images(list(range(samples)))
    ae, losses = train_autoencoder(images, cfg, AETrainConfig(steps=steps, batch_size=batch_size, seed=seed))
    if half:
        ae.half()
    report = {"out": str(ae.save_pretrained(out)), "final_loss": sum(losses[-50:]) / min(50, len(losses))}
    clean = WorldDataset(500, demo_world_config(seed + 1).clean())
    x = clean.images(list(range(500)))
    with torch.no_grad():
        rec = ae.float().decode(ae.float().encode(x)).clamp(-1, 1)
    for name, batch in (("originals", x), ("reconstructions", rec)):
        u8 = ((batch + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        report[name] = {k: float(v.mean()) for k, v in score_images(u8, clean.captions, WORLD_REWARDS).items()}
    return report


def describe_training(report: dict) -> str:
    """What `mirokit world autoencoder` prints for train_world_autoencoder's report: the rewards of the originals
    and of their reconstructions, the final loss and the folder written."""
    return "\n".join([*(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in report[name].items())
                        for name in ("originals", "reconstructions")),
                      f"final loss {report['final_loss']:.4f}; wrote {report['out']}"])
