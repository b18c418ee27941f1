"""The training batch and the function that builds it from per-sample tuples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor


class DataError(ValueError):
    """A one-line, user-facing data error that names the offending item (file, line, sample)."""


@dataclass
class Batch:
    """One batch of training pairs with their reward vectors."""

    images: Tensor
    """(B, C, H, W) float32 in [-1, 1]."""
    captions: list[str]
    """B captions, in the same order as `images`."""
    rewards: Tensor
    """(B, K) float32; each value in [0, 1], or NaN where the reward is missing."""

    def __len__(self) -> int:
        """Number of samples B."""
        return len(self.captions)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Copy of the batch with `images` (B, C, H, W) and `rewards` (B, K) moved to `device`."""
        return Batch(self.images.to(device, non_blocking=non_blocking), list(self.captions),
                     self.rewards.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Copy in page-locked memory (the DataLoader calls this when `pin_memory=True`)."""
        return Batch(self.images.pin_memory(), list(self.captions), self.rewards.pin_memory())


def _score_value(value: object, *, sample: int, key: str) -> float:
    """A score as float in [0, 1] or NaN (None/NaN = missing); anything else raises `DataError`."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (Real, Tensor)):
        raise DataError(f"sample {sample}: score {key!r} is not a number ({value!r})")
    number = float(value)
    if not math.isnan(number) and not 0.0 <= number <= 1.0:
        raise DataError(f"sample {sample}: score {key!r}={number} is outside [0, 1]")
    return number


def collate(samples: list[tuple[Tensor, str, dict[str, float]]], reward_keys: list[str]) -> Batch:
    """Stack `(image (C, H, W), caption, scores)` samples into a `Batch`.

    `rewards[b, k]` is `samples[b][2][reward_keys[k]]`; a key absent from a sample's dict (or
    None/NaN there) becomes NaN, i.e. "missing". Keys of a sample's dict that are not in
    `reward_keys` are not used (selecting rewards is the caller's choice). Returns images
    (B, C, H, W) float32, B captions, rewards (B, K) float32 with K = len(reward_keys).
    Raises `DataError` naming the sample for mismatched image shapes or bad scores.
    """
    if len(samples) == 0:
        raise DataError("collate: got an empty list of samples")
    if len(set(reward_keys)) != len(reward_keys):
        raise DataError(f"collate: reward_keys has duplicates: {list(reward_keys)}")
    images, captions, rows = [], [], []
    first_shape = None
    for i, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 3:
            raise DataError(f"sample {i}: expected (image, caption, scores), got {type(sample).__name__}")
        image, caption, scores = sample
        if not isinstance(image, Tensor) or image.dim() != 3:
            raise DataError(f"sample {i}: image must be a (C, H, W) tensor")
        if first_shape is None:
            first_shape = tuple(image.shape)
        elif tuple(image.shape) != first_shape:
            raise DataError(f"sample {i}: image shape {tuple(image.shape)} differs from sample 0's {first_shape}")
        if not isinstance(caption, str):
            raise DataError(f"sample {i}: caption is not a string ({type(caption).__name__})")
        if not isinstance(scores, dict):
            raise DataError(f"sample {i}: scores must be a dict, got {type(scores).__name__}")
        images.append(image.to(torch.float32))
        captions.append(caption)
        rows.append([_score_value(scores.get(key), sample=i, key=key) for key in reward_keys])
    rewards = torch.tensor(rows, dtype=torch.float32).reshape(len(samples), len(reward_keys))
    return Batch(images=torch.stack(images), captions=captions, rewards=rewards)
