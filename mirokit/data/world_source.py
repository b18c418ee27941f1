"""The shapes world as training data: generate, score with the built-in rewards, calibrate, attach."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

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


def scored_world(num_samples: int, world_cfg=None, *, keys: list[str] | None = None, progress: bool = False):
    """A WorldDataset whose samples carry calibrated built-in rewards.

    Returns the dataset with two extra attributes: `raw_scores` {key: (N,)} and `calibration`.
    """
    from mirokit.data.calibration import Calibration
    from mirokit.world.dataset import WorldDataset

    keys = list(keys or WORLD_REWARDS)
    dataset = WorldDataset(num_samples, world_cfg)
    pixels = dataset.pixels(list(range(len(dataset)))).permute(0, 2, 3, 1).numpy()
    raw = score_images(pixels, list(dataset.captions), keys, progress=progress)
    calibration = Calibration.fit(raw)
    dataset.set_scores(keys, calibration.apply_all(raw, keys))
    dataset.raw_scores = raw
    dataset.calibration = calibration
    return dataset


def save_scores(dataset, path) -> None:
    """Write the dataset's calibrated scores as parquet: one float32 column per reward, row i = sample i."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch = dataset.batch(list(range(len(dataset))), dataset.reward_keys_seen)
    table = pa.table({k: pa.array(batch.rewards[:, j].numpy(), pa.float32())
                      for j, k in enumerate(dataset.reward_keys_seen)})
    pq.write_table(table, path)


def world_with_scores(num_samples: int, world_cfg, scores_path, calibration_path=None):
    """A WorldDataset with calibrated scores read from `save_scores`' parquet (row count must match)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from mirokit.data.calibration import Calibration
    from mirokit.world.dataset import WorldDataset

    if not Path(scores_path).is_file():
        raise FileNotFoundError(f"scores file not found: {scores_path}")
    table = pq.read_table(scores_path)
    if table.num_rows != num_samples:
        raise ValueError(f"{scores_path} has {table.num_rows} rows but data.num_samples is {num_samples}")
    dataset = WorldDataset(num_samples, world_cfg)
    dataset.set_scores(table.column_names, np.stack([table.column(k).to_numpy() for k in table.column_names], 1))
    dataset.calibration = Calibration.load(calibration_path) if calibration_path else None
    return dataset
