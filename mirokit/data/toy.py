"""A procedural shapes dataset with two known rewards, for the CPU demo and tests.

Each image is one coloured shape on a grey background. The rewards are exact functions of the
drawing parameters, so a model conditioned on them can be checked from pixels alone
(`measure_brightness`). Everything is a pure function of (seed, index): no files, no downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mirokit.data.batch import Batch, DataError
from mirokit.data.source import DATA_SOURCES, DataConfig, DatasetInfo, Sample

TOY_REWARD_KEYS = ["brightness", "size"]
TOY_SHAPES = ["circle", "square", "triangle"]
TOY_COLOURS = {
    "red": (0.95, 0.10, 0.10),
    "green": (0.10, 0.85, 0.15),
    "blue": (0.15, 0.35, 1.00),
    "yellow": (1.00, 0.90, 0.10),
    "purple": (0.65, 0.15, 0.90),
    "white": (1.00, 1.00, 1.00),
}
BACKGROUND_RANGE = (0.1, 0.6)
"""Grey level of the background in [0, 1] pixel units; mapped linearly to the brightness reward."""
RADIUS_RANGE_32 = (5.0, 9.0)
"""Shape radius in pixels at image_size 32 (scaled with image_size); mapped linearly to size."""
_LUMA = (0.299, 0.587, 0.114)
_CHUNK = 256  # samples drawn per vectorised numpy call: bounds memory at large image sizes


def toy_caption_list() -> list[str]:
    """All 18 captions `"a {colour} {shape}"`, colour-major, in TOY_COLOURS × TOY_SHAPES order."""
    return [f"a {colour} {shape}" for colour in TOY_COLOURS for shape in TOY_SHAPES]


def measure_brightness(images: Tensor) -> Tensor:
    """Brightness reward read from pixels: images (B, C, H, W) in [-1, 1] -> (B,) in [0, 1].

    The median luminance of the 1-pixel border (where toy shapes never reach) is mapped with the
    same linear map as the dataset's "brightness" reward and clamped to [0, 1]. C is 1 or 3.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"measure_brightness: expected (B, 1|3, H, W) images, got {tuple(images.shape)}")
    pixels = (images.float().clamp(-1, 1) + 1) / 2
    if pixels.shape[1] == 3:
        weights = torch.tensor(_LUMA, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
        luma = (pixels * weights).sum(dim=1)
    else:
        luma = pixels[:, 0]
    border = torch.cat([luma[:, 0, :], luma[:, -1, :], luma[:, 1:-1, 0], luma[:, 1:-1, -1]], dim=1)
    low, high = BACKGROUND_RANGE
    return ((border.median(dim=1).values - low) / (high - low)).clamp(0, 1)


def _draw(params: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Render samples from their parameters: -> (N, 3, size, size) uint8."""
    n = len(params["shape"])
    centre = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    dx = centre[None, None, :] - params["cx"][:, None, None]
    dy = centre[None, :, None] - params["cy"][:, None, None]
    r = params["radius"][:, None, None]
    circle = dx * dx + dy * dy <= r * r
    square = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    # Upward equilateral triangle inscribed in the circle of radius r: apex (0, -r), base at y = r/2.
    slope = np.sqrt(3.0).astype(np.float32)
    triangle = (dy <= r / 2) & (slope * dx - dy <= r) & (-slope * dx - dy <= r)
    shape = params["shape"][:, None, None]
    mask = np.where(shape == 0, circle, np.where(shape == 1, square, triangle))
    colours = np.asarray(list(TOY_COLOURS.values()), dtype=np.float32)[params["colour"]]  # (N, 3)
    background = np.broadcast_to(params["background"][:, None], (n, 3))
    pixels = np.where(mask[:, None], colours[:, :, None, None], background[:, :, None, None])
    return np.rint(pixels * 255.0).astype(np.uint8)


class ToyShapesDataset(Dataset):
    """Deterministic procedural shapes: one shape of one colour on a grey background.

    `self[i]` returns `(image (3, image_size, image_size) float32 in [-1, 1], "a {colour} {shape}",
    {"brightness": b, "size": s})` with b, s in [0, 1]: b maps the background grey level
    [0.1, 0.6] linearly to [0, 1]; s maps the shape radius (5–9 px at 32 px, scaled with
    image_size; circumradius for triangles, half-side for squares) linearly to [0, 1].
    Parameters come from `numpy.random.default_rng(seed)`; pixels are drawn lazily in chunks and
    cached as uint8 (about 3·image_size² bytes per sample).
    """

    def __init__(self, num_samples: int, *, image_size: int = 32, seed: int = 0) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise DataError(f"ToyShapesDataset: num_samples must be a positive int, got {num_samples!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
            raise DataError(f"ToyShapesDataset: image_size must be an int >= 16, got {image_size!r}")
        self.num_samples = num_samples
        self.image_size = image_size
        self.seed = seed
        rng = np.random.default_rng(seed)
        scale = image_size / 32.0
        r_low, r_high = RADIUS_RANGE_32[0] * scale, RADIUS_RANGE_32[1] * scale
        radius = rng.uniform(r_low, r_high, num_samples)
        # Keep at least 2 px (at 32 px) between the shape and the image edge, so the border
        # ring read by `measure_brightness` is pure background.
        margin = radius + 2.0 * scale
        cx = rng.uniform(margin, image_size - margin)
        cy = rng.uniform(margin, image_size - margin)
        background = rng.uniform(*BACKGROUND_RANGE, num_samples)
        self.params = {
            "colour": rng.integers(0, len(TOY_COLOURS), num_samples),
            "shape": rng.integers(0, len(TOY_SHAPES), num_samples),
            "radius": radius.astype(np.float32),
            "cx": cx.astype(np.float32),
            "cy": cy.astype(np.float32),
            "background": background.astype(np.float32),
        }
        low, high = BACKGROUND_RANGE
        self.rewards = torch.from_numpy(
            np.stack([(background - low) / (high - low), (radius - r_low) / (r_high - r_low)], axis=1)
        ).float().clamp_(0, 1)
        """(N, 2) float32 rewards in TOY_REWARD_KEYS order."""
        names = list(TOY_COLOURS)
        self.captions = [
            f"a {names[c]} {TOY_SHAPES[s]}" for c, s in zip(self.params["colour"], self.params["shape"])
        ]
        self._pixels = torch.empty((num_samples, 3, image_size, image_size), dtype=torch.uint8)
        self._drawn = np.zeros((num_samples + _CHUNK - 1) // _CHUNK, dtype=bool)

    info = DatasetInfo(reward_keys=tuple(TOY_REWARD_KEYS))
    """both toy rewards are exact (no calibration)"""

    def __len__(self) -> int:
        """Number of samples N."""
        return self.num_samples

    def _ensure_drawn(self, indices: np.ndarray) -> None:
        for chunk in np.unique(indices // _CHUNK):
            if self._drawn[chunk]:
                continue
            sl = slice(chunk * _CHUNK, min((chunk + 1) * _CHUNK, self.num_samples))
            params = {key: value[sl] for key, value in self.params.items()}
            self._pixels[sl] = torch.from_numpy(_draw(params, self.image_size))
            self._drawn[chunk] = True

    def _check_index(self, index: int) -> int:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"ToyShapesDataset: index {index} out of range for {self.num_samples} samples")
        return index % self.num_samples

    def images(self, indices: list[int] | Tensor) -> Tensor:
        """Images for `indices` (B,): -> (B, 3, image_size, image_size) float32 in [-1, 1]."""
        idx = np.asarray([self._check_index(int(i)) for i in indices], dtype=np.int64)
        self._ensure_drawn(idx)
        return self._pixels[torch.from_numpy(idx)].float().div_(127.5).sub_(1.0)

    def __getitem__(self, index: int) -> Sample:
        """Sample `index`: (image (3, H, W) float32 in [-1, 1], caption, {"brightness", "size"})."""
        index = self._check_index(int(index))
        brightness, size = self.rewards[index].tolist()
        return Sample(self.images([index])[0], self.captions[index], {"brightness": brightness, "size": size})

    def batch(self, indices: list[int] | Tensor, reward_keys: list[str] | None = None) -> Batch:
        """A `Batch` for `indices` (B,) without per-sample collation: images (B, 3, H, W),
        rewards (B, K) for `reward_keys` (default TOY_REWARD_KEYS; unknown keys raise DataError)."""
        keys = TOY_REWARD_KEYS if reward_keys is None else list(reward_keys)
        unknown = [k for k in keys if k not in TOY_REWARD_KEYS]
        if unknown:
            raise DataError(f"ToyShapesDataset has no reward {unknown[0]!r}; known: {TOY_REWARD_KEYS}")
        images = self.images(indices)
        idx = torch.as_tensor([int(i) % self.num_samples for i in indices], dtype=torch.long)
        columns = [TOY_REWARD_KEYS.index(k) for k in keys]
        rewards = self.rewards[idx][:, columns]
        return Batch(images=images, captions=[self.captions[i] for i in idx.tolist()], rewards=rewards)

    @property
    def reward_keys_seen(self) -> list[str]:
        """The reward keys every sample carries (TOY_REWARD_KEYS)."""
        return list(TOY_REWARD_KEYS)


@dataclass(kw_only=True)
class ToyDataConfig(DataConfig):
    """The built-in toy world: one shape per image, rewards brightness and size (no files)."""

    num_samples: int = 4096
    """number of procedural samples"""
    seed: int = 0
    """generation seed"""


@DATA_SOURCES.register("toy", config=ToyDataConfig, description="one shape per image, rewards brightness and size")
def toy_source(cfg: ToyDataConfig, *, image_size: int, channels: int) -> ToyShapesDataset:
    """The toy dataset at `image_size` (RGB only)."""
    if channels != 3:
        raise ValueError(f"the toy dataset is RGB; model.image_channels is {channels}")
    return ToyShapesDataset(cfg.num_samples, image_size=image_size, seed=cfg.seed)
