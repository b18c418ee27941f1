"""Training data: the dataset contract, data sources, batches, sample order and the loader.

- `TrainDataset` / `Sample` / `DatasetInfo`: what a source returns; `DATA_SOURCES` / `build_dataset`.
- built-in sources: `toy` (`ToyShapesDataset`, procedural shapes with known rewards) and `jsonl`
  (`JsonlImageDataset`: images + captions + reward scores listed in a JSONL file).
- `collate` / `Batch`: samples -> (images (B, C, H, W), captions, rewards (B, K)).
- `EpochShuffle`: deterministic, resumable index stream; `build_loader`: the DataLoader of a run.
- `Calibration`: raw reward scores -> 64 quantile bins on the 1/63 grid.
"""

from mirokit.data.batch import Batch, DataError, collate
from mirokit.data.calibration import Calibration
from mirokit.data.jsonl import JsonlDataConfig, JsonlImageDataset, load_image
from mirokit.data.loader import LoaderConfig, StepBatchSampler, build_loader
from mirokit.data.sampler import EpochShuffle
from mirokit.data.source import DATA_SOURCES, DataConfig, DatasetInfo, Sample, TrainDataset, build_dataset
from mirokit.data.toy import (
    TOY_COLOURS,
    TOY_REWARD_KEYS,
    TOY_SHAPES,
    ToyDataConfig,
    ToyShapesDataset,
    measure_brightness,
    toy_caption_list,
)

__all__ = [
    "Batch", "Calibration", "DATA_SOURCES", "DataConfig", "DataError", "DatasetInfo", "EpochShuffle",
    "JsonlDataConfig", "JsonlImageDataset", "LoaderConfig", "Sample", "StepBatchSampler", "TOY_COLOURS",
    "TOY_REWARD_KEYS", "TOY_SHAPES", "ToyDataConfig", "ToyShapesDataset", "TrainDataset", "build_dataset",
    "build_loader", "collate", "load_image", "measure_brightness", "toy_caption_list",
]
