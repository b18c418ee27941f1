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
    text: Tensor | None = None
    """(B, L, D) precomputed text states, zero-padded to the longest caption (None: captions are encoded)."""
    text_mask: Tensor | None = None
    """(B, L) bool, True on valid text tokens."""
    skipped: int = 0
    """unreadable samples replaced in this batch."""

    def __len__(self) -> int:
        """Number of samples B."""
        return len(self.captions)

    def _map(self, fn) -> Batch:
        text = None if self.text is None else fn(self.text)
        mask = None if self.text_mask is None else fn(self.text_mask)
        return Batch(fn(self.images), list(self.captions), fn(self.rewards), text, mask, self.skipped)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Copy of the batch with its tensors moved to `device`."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Copy in page-locked memory (the DataLoader calls this when `pin_memory=True`)."""
        return self._map(lambda t: t.pin_memory())


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


def collate(samples: list, reward_keys: list[str]) -> Batch:
    """Stack `(image (C, H, W), caption, scores[, text (L, D)[, skipped]])` samples into a `Batch`.

    `rewards[b, k]` is `samples[b][2][reward_keys[k]]`; a key absent from a sample's dict (or
    None/NaN there) becomes NaN, i.e. "missing". Keys of a sample's dict that are not in
    `reward_keys` are not used (selecting rewards is the caller's choice). Returns images
    (B, C, H, W) float32, B captions, rewards (B, K) float32 with K = len(reward_keys), and, when the
    samples carry text states, text (B, L, D) zero-padded to the longest with its (B, L) mask.
    Raises `DataError` naming the sample for mismatched image shapes, bad scores or mixed text.
    """
    if len(samples) == 0:
        raise DataError("collate: got an empty list of samples")
    if len(set(reward_keys)) != len(reward_keys):
        raise DataError(f"collate: reward_keys has duplicates: {list(reward_keys)}")
    images, captions, rows, texts, skipped = [], [], [], [], 0
    first_shape = None
    for i, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or not 3 <= len(sample) <= 5:
            raise DataError(f"sample {i}: expected (image, caption, scores), got {type(sample).__name__}")
        image, caption, scores = sample[:3]
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
        texts.append(sample[3] if len(sample) > 3 else None)
        skipped += int(sample[4]) if len(sample) > 4 else 0
    rewards = torch.tensor(rows, dtype=torch.float32).reshape(len(samples), len(reward_keys))
    text, mask = _stack_text(texts)
    return Batch(images=torch.stack(images), captions=captions, rewards=rewards, text=text, text_mask=mask,
                 skipped=skipped)


def _stack_text(texts: list[Tensor | None]) -> tuple[Tensor | None, Tensor | None]:
    """[(L_i, D) or None] -> ((B, max L, D) zero-padded, (B, max L) mask), or (None, None) if none has text."""
    if all(t is None for t in texts):
        return None, None
    if any(t is None for t in texts):
        raise DataError("collate: some samples carry precomputed text states and others do not")
    dims = {t.shape[-1] for t in texts}
    if len(dims) != 1 or any(t.dim() != 2 for t in texts):
        raise DataError(f"collate: text states must all be (L, D) with one D, got {[tuple(t.shape) for t in texts]}")
    length = max(max(t.shape[0] for t in texts), 1)
    text = torch.zeros(len(texts), length, dims.pop())
    mask = torch.zeros(len(texts), length, dtype=torch.bool)
    for i, t in enumerate(texts):
        text[i, :t.shape[0]] = t.float()
        mask[i, :t.shape[0]] = True
    return text, mask
