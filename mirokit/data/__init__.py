"""Datasets, batches and sample order for mirokit training.

- `JsonlImageDataset`: images + captions + reward scores listed in a JSONL file.
- `ToyShapesDataset`: procedural shapes with known rewards (CPU demo, tests).
- `collate` / `Batch`: per-sample tuples -> (images (B, C, H, W), captions, rewards (B, K)).
- `EpochShuffle`: deterministic, resumable index stream.
"""

from mirokit.data.batch import Batch, DataError, collate
from mirokit.data.jsonl import JsonlImageDataset, load_image
from mirokit.data.sampler import EpochShuffle
from mirokit.data.toy import (
    TOY_COLOURS,
    TOY_REWARD_KEYS,
    TOY_SHAPES,
    ToyShapesDataset,
    measure_brightness,
    toy_caption_list,
)

__all__ = [
    "Batch",
    "DataError",
    "EpochShuffle",
    "JsonlImageDataset",
    "TOY_COLOURS",
    "TOY_REWARD_KEYS",
    "TOY_SHAPES",
    "ToyShapesDataset",
    "collate",
    "load_image",
    "measure_brightness",
    "toy_caption_list",
]
