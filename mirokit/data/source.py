"""Build the training dataset named by a config (built-in toy world or image folder + JSONL)."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

DATA_KINDS = ("toy", "jsonl")


@dataclass(kw_only=True)
class DataConfig:
    """Where training samples come from. Each sample is (image in [-1,1], caption, {reward: value})."""

    kind: str = "toy"
    """toy (built-in procedural shapes, no files) | jsonl (image folder + captions/scores JSONL)"""
    path: str | None = None
    """jsonl: the JSONL file ({"image": path, "caption": str, "scores": {key: float}} per line)"""
    root: str | None = None
    """jsonl: folder that image paths are relative to (default: the JSONL's folder)"""
    num_samples: int = 4096
    """toy: number of procedural samples"""
    seed: int = 0
    """toy: generation seed"""
    verify_images: bool = False
    """jsonl: open every image up front and skip (and report) corrupt ones"""

    def __post_init__(self):
        if self.kind not in DATA_KINDS:
            raise ValueError(f"unknown data kind {self.kind!r}; known: {', '.join(DATA_KINDS)}")
        if self.kind == "jsonl" and not self.path:
            raise ValueError("data.kind=jsonl needs data.path (the captions/scores JSONL file)")


def build_dataset(cfg: DataConfig, *, image_size: int, channels: int) -> Dataset:
    """Instantiate the dataset; items are (image (C, H, W) in [-1, 1], caption, scores dict)."""
    if cfg.kind == "toy":
        from mirokit.data.toy import ToyShapesDataset

        if channels != 3:
            raise ValueError(f"the toy dataset is RGB; model.image_channels is {channels}")
        return ToyShapesDataset(cfg.num_samples, image_size=image_size, seed=cfg.seed)
    from mirokit.data.jsonl import JsonlImageDataset

    return JsonlImageDataset(cfg.path, image_size=image_size, channels=channels, root=cfg.root,
                             verify_images=cfg.verify_images)


class SubsetDataset(Dataset):
    """A view of `base` restricted to `indices` (e.g. the top-25% filtered baseline); keeps the batch() fast path."""

    def __init__(self, base: Dataset, indices):
        self.base = base
        self.indices = [int(i) for i in indices]
        if not self.indices:
            raise ValueError("subset is empty")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]

    def batch(self, indices, reward_keys):
        """Batch of subset positions `indices` (see the base dataset's batch())."""
        mapped = [self.indices[i] for i in indices]
        if hasattr(self.base, "batch"):
            return self.base.batch(mapped, reward_keys)
        from mirokit.data.batch import collate

        return collate([self.base[i] for i in mapped], reward_keys)
