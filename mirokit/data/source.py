"""Build the training dataset named by a config (built-in toy world or image folder + JSONL)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch.utils.data import Dataset

DATA_KINDS = ("toy", "world", "jsonl")


@dataclass(kw_only=True)
class DataConfig:
    """Where training samples come from. Each sample is (image in [-1,1], caption, {reward: value})."""

    kind: str = "toy"
    """toy (one shape, rewards brightness/size) | world (the noisy shapes world, scored with the built-in
    world_* rewards and calibrated at start-up) | jsonl (image folder + captions/scores JSONL)"""
    path: str | None = None
    """jsonl: the JSONL file ({"image": path, "caption": str, "scores": {key: float}} per line)"""
    root: str | None = None
    """jsonl: folder that image paths are relative to (default: the JSONL's folder)"""
    num_samples: int = 4096
    """toy/world: number of procedural samples"""
    seed: int = 0
    """toy/world: generation seed"""
    world: dict = field(default_factory=dict)
    """world: overrides of the WorldConfig (noise rates, sizes...; see mirokit/world/sampling.py)"""
    scores: str | None = None
    """world: parquet of already calibrated scores (one column per reward, row i = sample i) to use
    instead of scoring at start-up; written by `mirokit demo` as OUT/world_scores.parquet"""
    calibration: str | None = None
    """world: calibration JSON to attach to the checkpoint when `scores` is given"""
    subset: str | None = None
    """optional JSON file with a list of sample indices to train on (e.g. a top-25% filtered baseline)"""
    verify_images: bool = False
    """jsonl: open every image up front and skip (and report) corrupt ones"""

    def __post_init__(self):
        if self.kind not in DATA_KINDS:
            raise ValueError(f"unknown data kind {self.kind!r}; known: {', '.join(DATA_KINDS)}")
        if self.kind == "jsonl" and not self.path:
            raise ValueError("data.kind=jsonl needs data.path (the captions/scores JSONL file)")


def build_dataset(cfg: DataConfig, *, image_size: int, channels: int) -> Dataset:
    """Instantiate the dataset; items are (image (C, H, W) in [-1, 1], caption, scores dict)."""
    dataset = _build_full(cfg, image_size=image_size, channels=channels)
    if cfg.subset is None:
        return dataset
    import json
    from pathlib import Path

    if not Path(cfg.subset).is_file():
        raise FileNotFoundError(f"subset file not found: {cfg.subset}")
    indices = json.loads(Path(cfg.subset).read_text())
    bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"{cfg.subset}: index {bad[0]!r} is not a sample index of a {len(dataset)}-sample dataset")
    subset = SubsetDataset(dataset, indices)
    subset.calibration = getattr(dataset, "calibration", None)
    return subset


def _build_full(cfg: DataConfig, *, image_size: int, channels: int) -> Dataset:
    if cfg.kind == "toy":
        from mirokit.data.toy import ToyShapesDataset

        if channels != 3:
            raise ValueError(f"the toy dataset is RGB; model.image_channels is {channels}")
        return ToyShapesDataset(cfg.num_samples, image_size=image_size, seed=cfg.seed)
    if cfg.kind == "world":
        from mirokit.config import from_dict
        from mirokit.data.world_source import scored_world
        from mirokit.world.sampling import WorldConfig

        if channels != 3:
            raise ValueError(f"the shapes world is RGB; model.image_channels is {channels}")
        world_cfg = from_dict(WorldConfig, {**cfg.world, "image_size": image_size, "seed": cfg.seed}, where="data.world.")
        if cfg.scores:
            from mirokit.data.world_source import world_with_scores

            return world_with_scores(cfg.num_samples, world_cfg, cfg.scores, cfg.calibration)
        return scored_world(cfg.num_samples, world_cfg, progress=True)
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
