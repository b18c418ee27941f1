"""Feed the training step: a torch DataLoader over a `TrainDataset`, with the (seed, step) order.

Step s of a run uses the stream positions [s·B, (s+1)·B) of `EpochShuffle(len(dataset), seed)`
(B = global batch); a rank reads only its rows of that window. The loader is built for the steps
still to run, so a resumed run reads exactly what an uninterrupted one would have read, with any
number of workers. Decoding happens in worker processes while the step computes; batches are
collated, optionally pinned, and prefetched.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mirokit.data.batch import Batch, DataError, collate
from mirokit.data.sampler import EpochShuffle


@dataclass(kw_only=True)
class LoaderConfig:
    """How batches reach the training step (a torch DataLoader)."""

    num_workers: int = 2
    """worker processes that read and decode samples while the step runs (0 = in the training process)"""
    prefetch_factor: int = 2
    """batches each worker prepares ahead"""
    pin_memory: bool | None = None
    """copy batches into page-locked memory for fast host-to-GPU transfer (None = when training on CUDA)"""

    def __post_init__(self):
        if self.num_workers < 0 or self.prefetch_factor < 1:
            raise ValueError("loader.num_workers must be >= 0 and loader.prefetch_factor >= 1")


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """For each step in [start_step, end_step): (stream position, dataset index) of rows [lo, hi) of that
    step's global batch (a pure function of (seed, step))."""

    def __init__(self, order: EpochShuffle, *, global_batch: int, rows: tuple[int, int], start_step: int,
                 end_step: int):
        lo, hi = rows
        if not 0 <= lo < hi <= global_batch:
            raise ValueError(f"rows {rows} are not inside a global batch of {global_batch}")
        self.order = order
        self.global_batch = global_batch
        self.rows = (lo, hi)
        self.start_step = start_step
        self.end_step = max(start_step, end_step)

    def __len__(self) -> int:
        """Number of steps (batches) left."""
        return self.end_step - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        lo, hi = self.rows
        for step in range(self.start_step, self.end_step):
            start = step * self.global_batch + lo
            yield list(enumerate(self.order.indices(start, hi - lo), start=start))


class DrawnSamples(Dataset):
    """The loader's view of a dataset: item (position, index) -> `dataset.draw(index, generator)` with a
    generator seeded by (seed, position) when the dataset draws randomness, else `dataset[index]`."""

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.draws = callable(getattr(dataset, "draw", None))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        position, index = item
        if not self.draws:
            return self.dataset[index]
        return self.dataset.draw(index, torch.Generator().manual_seed(self.seed * 1_000_003 + position))


def pin_memory_for(cfg: LoaderConfig, device: torch.device) -> bool:
    """Whether batches are copied into page-locked memory: only for a CUDA device (pinning helps only the
    host-to-GPU copy), unless `loader.pin_memory: false`."""
    return device.type == "cuda" and cfg.pin_memory is not False


def build_loader(dataset, sampler: StepBatchSampler, reward_keys: list[str], cfg: LoaderConfig,
                 device: torch.device) -> DataLoader:
    """A DataLoader yielding one `Batch` per step: images (b, C, H, W), b captions, rewards (b, K)."""
    workers = cfg.num_workers
    return DataLoader(DrawnSamples(dataset, sampler.order.seed), batch_sampler=sampler, num_workers=workers,
                      collate_fn=functools.partial(collate, reward_keys=list(reward_keys)),
                      pin_memory=pin_memory_for(cfg, device) and torch.cuda.is_available(),
                      prefetch_factor=cfg.prefetch_factor if workers > 0 else None)


def batches(loader: DataLoader) -> Iterator[Batch]:
    """Iterate `loader`; a data error raised in a worker is re-raised as one line naming the item.

    (torch re-raises worker errors as "Caught DataError in DataLoader worker process 0." followed by
    the traceback; the item's own message is the traceback's last line.)
    """
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (DataError, ValueError, OSError) as err:
            text = str(err)
            if not text.startswith("Caught "):
                raise
            message = [line for line in text.splitlines() if line.strip()][-1].split(": ", 1)[-1]
            try:
                again = type(err)(message)
            except TypeError:  # an error type that takes other arguments
                again = DataError(message)
            raise again from None
        yield batch
