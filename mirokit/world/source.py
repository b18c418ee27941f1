"""The shapes world as training data: generate, score with the built-in rewards, calibrate.

Registers the `world` data source (`data: {kind: world, num_samples: ..., world: {...}}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.data.calibration import Calibration
from mirokit.data.caption_mix import CaptionMixConfig
from mirokit.data.source import DATA_SOURCES, DataConfig
from mirokit.world.dataset import WorldDataset
from mirokit.world.sampling import WorldConfig

WORLD_REWARDS = ["world_alignment", "world_quality", "world_composition"]


def _score_chunk(images_u8: np.ndarray, captions: list[str], keys: list[str]) -> dict[str, np.ndarray]:
    from mirokit.rewards import build_scorer

    return {k: build_scorer(k).score(list(images_u8), list(captions)) for k in keys}


def score_images(images_u8: np.ndarray, captions: list[str], keys: list[str], *, batch: int = 512,
                 progress: bool = False, workers: int = 1) -> dict[str, np.ndarray]:
    """Raw scores of (N, H, W, 3) uint8 images with registered scorers: {key: (N,) float32}; `workers` > 1
    scores batches in that many processes (the world's scorers are numpy: one core each)."""
    starts = range(0, len(captions), batch)
    parts = [(images_u8[s:s + batch], list(captions[s:s + batch]), keys) for s in starts]
    bar = tqdm(total=len(parts), desc="scoring", disable=not progress, leave=False)
    if workers > 1 and len(parts) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = []
            for result in pool.map(_score_chunk, *zip(*parts)):
                results.append(result)
                bar.update(1)
    else:
        results = []
        for part in parts:
            results.append(_score_chunk(*part))
            bar.update(1)
    bar.close()
    return {k: np.concatenate([r[k] for r in results]) if results else np.zeros(0, np.float32) for k in keys}


def scored_world(num_samples: int, world_cfg: WorldConfig | None = None, *, keys: list[str] | None = None,
                 progress: bool = False, workers: int = 1) -> tuple[WorldDataset, dict[str, np.ndarray]]:
    """A WorldDataset whose samples carry calibrated built-in rewards (calibration in `dataset.info`),
    and the raw scores {key: (N,) float32} (computed by `workers` processes)."""
    keys = list(keys or WORLD_REWARDS)
    dataset = WorldDataset(num_samples, world_cfg)
    pixels = dataset.pixels(list(range(len(dataset)))).permute(0, 2, 3, 1).numpy()
    raw = score_images(pixels, list(dataset.captions), keys, progress=progress, workers=workers)
    calibration = Calibration.fit(raw)
    dataset.set_scores(keys, calibration.apply_all(raw, keys), calibration=calibration)
    return dataset, raw


def save_scores(dataset: WorldDataset, path) -> None:
    """Write the dataset's calibrated scores as parquet: one float32 column per reward, row i = sample i."""
    import pyarrow as pa

    from mirokit.atomic import write_parquet_atomic

    keys = list(dataset.info.reward_keys)
    batch = dataset.batch(list(range(len(dataset))), keys)
    table = pa.table({k: pa.array(batch.rewards[:, j].numpy(), pa.float32()) for j, k in enumerate(keys)})
    write_parquet_atomic(path, table)


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
class WorldDataConfig(CaptionMixConfig, DataConfig):
    """The noisy shapes world, scored with the built-in world_* rewards and calibrated at start-up."""

    num_samples: int = 4096
    """number of procedural samples"""
    seed: int = 0
    """generation seed (overrides world.seed)"""
    world: WorldConfig = field(default_factory=WorldConfig)
    """how scenes, captions and noise are sampled (world.image_size is set from model.image_size)"""
    rewards: list[str] = field(default_factory=list)
    """the registered rewards scored at start-up (empty: world_alignment, world_quality, world_composition); name
    every key of model.reward_keys, e.g. [world_alignment, world_quality, world_composition, world_brightness]"""
    scores: str | None = None
    """parquet of already calibrated scores (one column per reward, row i = sample i) to use instead of
    scoring at start-up; written by `mirokit demo` as OUT/runs/world_scores.parquet"""
    calibration: str | None = None
    """calibration JSON to attach to the checkpoint when `scores` is given"""
    latents: str | None = None
    """safetensors file whose tensor "latents" (N, C, h, w) replaces the pixels of sample i (the world
    autoencoder's encodings, for image_space.kind world_ae with input latents; written by `mirokit demo`)"""
    synthetic: str | None = None
    """parquet of a synthetic caption per sample (column "caption", row i = sample i) and its calibrated scores
    (one column per reward), drawn by the caption mix (caption_mix, caption_weights, caption_rewards); written by
    bench/convergence.py from the world's detector captioner"""


@DATA_SOURCES.register("world", config=WorldDataConfig, description="the noisy shapes world (plugin)")
def world_source(cfg: WorldDataConfig, *, image_size: int, channels: int) -> WorldDataset:
    """The scored world at `image_size` (RGB), or its precomputed latents (`latents`)."""
    if cfg.latents:
        from safetensors.torch import load_file

        if not Path(cfg.latents).is_file():
            raise FileNotFoundError(f"latents file not found: {cfg.latents}")
        latents = load_file(cfg.latents)["latents"]
        if latents.shape[1] != channels or latents.shape[-1] != image_size:
            raise ValueError(f"{cfg.latents} holds {tuple(latents.shape[1:])} latents; the image space expects "
                             f"({channels}, {image_size}, {image_size})")
        image_size = cfg.world.image_size  # the world renders (and is scored) at its own size
    elif channels != 3:
        raise ValueError(f"the shapes world is RGB; model.image_channels is {channels}")
    world_cfg = replace(cfg.world, image_size=image_size, seed=cfg.seed)
    if cfg.scores:
        dataset = world_with_scores(cfg.num_samples, world_cfg, cfg.scores, cfg.calibration)
    else:
        dataset = scored_world(cfg.num_samples, world_cfg, keys=list(cfg.rewards) or None, progress=True)[0]
    if cfg.latents:
        dataset.set_latents(latents)
    if cfg.synthetic:
        import pyarrow.parquet as pq

        if not Path(cfg.synthetic).is_file():
            raise FileNotFoundError(f"synthetic captions file not found: {cfg.synthetic}")
        table = pq.read_table(cfg.synthetic)
        keys = dataset.reward_keys_seen
        missing = [k for k in ["caption", *keys] if k not in table.column_names]
        if missing or table.num_rows != len(dataset):
            raise ValueError(f"{cfg.synthetic} must hold {len(dataset)} rows with columns caption, "
                             f"{', '.join(keys)}; missing {missing}, {table.num_rows} rows")
        dataset.set_synthetic(table.column("caption").to_pylist(),
                              np.stack([table.column(k).to_numpy() for k in keys], 1), CaptionMixConfig.of(cfg))
    return dataset
