"""The shapes world as training data: generate, score with the built-in rewards, calibrate.

Registers the `world` data source (`data: {kind: world, num_samples: ..., world: {...}}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.data.calibration import Calibration
from mirokit.data.source import DATA_SOURCES, DataConfig
from mirokit.world.dataset import WorldDataset
from mirokit.world.sampling import WorldConfig

WORLD_REWARDS = ["world_alignment", "world_quality", "world_composition"]


def score_images(images_u8: np.ndarray, captions: list[str], keys: list[str], *, batch: int = 512,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """Raw scores of (N, H, W, 3) uint8 images with registered scorers: {key: (N,) float32}."""
    from PIL import Image

    from mirokit.rewards import build_scorer

    scorers = {k: build_scorer(k) for k in keys}
    out: dict[str, list] = {k: [] for k in keys}
    for start in tqdm(range(0, len(captions), batch), desc="scoring", disable=not progress, leave=False):
        pils = [Image.fromarray(a) for a in images_u8[start:start + batch]]
        caps = list(captions[start:start + batch])
        for k, scorer in scorers.items():
            out[k].append(scorer.score(pils, caps))
    return {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in out.items()}


def scored_world(num_samples: int, world_cfg: WorldConfig | None = None, *, keys: list[str] | None = None,
                 progress: bool = False) -> tuple[WorldDataset, dict[str, np.ndarray]]:
    """A WorldDataset whose samples carry calibrated built-in rewards (calibration in `dataset.info`),
    and the raw scores {key: (N,) float32}."""
    keys = list(keys or WORLD_REWARDS)
    dataset = WorldDataset(num_samples, world_cfg)
    pixels = dataset.pixels(list(range(len(dataset)))).permute(0, 2, 3, 1).numpy()
    raw = score_images(pixels, list(dataset.captions), keys, progress=progress)
    calibration = Calibration.fit(raw)
    dataset.set_scores(keys, calibration.apply_all(raw, keys), calibration=calibration)
    return dataset, raw


def save_scores(dataset: WorldDataset, path) -> None:
    """Write the dataset's calibrated scores as parquet: one float32 column per reward, row i = sample i."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = list(dataset.info.reward_keys)
    batch = dataset.batch(list(range(len(dataset))), keys)
    table = pa.table({k: pa.array(batch.rewards[:, j].numpy(), pa.float32()) for j, k in enumerate(keys)})
    pq.write_table(table, path)


def world_with_scores(num_samples: int, world_cfg: WorldConfig, scores_path, calibration_path=None) -> WorldDataset:
    """A WorldDataset with calibrated scores read from `save_scores`' parquet (row count must match)."""
    import pyarrow.parquet as pq

    if not Path(scores_path).is_file():
        raise FileNotFoundError(f"scores file not found: {scores_path}")
    table = pq.read_table(scores_path)
    if table.num_rows != num_samples:
        raise ValueError(f"{scores_path} has {table.num_rows} rows but data.num_samples is {num_samples}")
    dataset = WorldDataset(num_samples, world_cfg)
    calibration = Calibration.load(calibration_path) if calibration_path else None
    dataset.set_scores(table.column_names, np.stack([table.column(k).to_numpy() for k in table.column_names], 1),
                       calibration=calibration)
    return dataset


@dataclass(kw_only=True)
class WorldDataConfig(DataConfig):
    """The noisy shapes world, scored with the built-in world_* rewards and calibrated at start-up."""

    num_samples: int = 4096
    """number of procedural samples"""
    seed: int = 0
    """generation seed (overrides world.seed)"""
    world: WorldConfig = field(default_factory=WorldConfig)
    """how scenes, captions and noise are sampled (world.image_size is set from model.image_size)"""
    scores: str | None = None
    """parquet of already calibrated scores (one column per reward, row i = sample i) to use instead of
    scoring at start-up; written by `mirokit demo` as OUT/runs/world_scores.parquet"""
    calibration: str | None = None
    """calibration JSON to attach to the checkpoint when `scores` is given"""


@DATA_SOURCES.register("world", config=WorldDataConfig, description="the noisy shapes world (plugin)")
def world_source(cfg: WorldDataConfig, *, image_size: int, channels: int) -> WorldDataset:
    """The scored world at `image_size` (RGB only)."""
    if channels != 3:
        raise ValueError(f"the shapes world is RGB; model.image_channels is {channels}")
    world_cfg = replace(cfg.world, image_size=image_size, seed=cfg.seed)
    if cfg.scores:
        return world_with_scores(cfg.num_samples, world_cfg, cfg.scores, cfg.calibration)
    return scored_world(cfg.num_samples, world_cfg, progress=True)[0]
