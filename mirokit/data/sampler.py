"""Deterministic, resumable sample order.

The order is an infinite stream: epoch 0's permutation, then epoch 1's, and so on. Position p of
the stream depends only on (seed, p), so a run resumed at image count p continues exactly, and
DDP ranks can each take their slice of one global batch by asking for different positions.
"""

from __future__ import annotations

import operator
from collections import OrderedDict

import torch
from torch import Tensor

_SEED_STRIDE = 1_000_003
_MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed range we stay inside
_CACHE_SIZE = 4  # permutations kept; a step touches at most two epochs


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"EpochShuffle: {name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"EpochShuffle: {name} must be an int, got {value!r}") from None


class EpochShuffle:
    """Infinite stream of indices into `num_items` items, one fresh permutation per epoch.

    Epoch e's permutation is `torch.randperm(num_items)` drawn from a `torch.Generator`
    seeded with `seed * 1000003 + e`.
    """

    def __init__(self, num_items: int, seed: int) -> None:
        num_items = _as_int(num_items, "num_items")
        seed = _as_int(seed, "seed")
        if num_items <= 0:
            raise ValueError(f"EpochShuffle: num_items must be > 0, got {num_items}")
        if not 0 <= seed < _MAX_SEED // _SEED_STRIDE:
            raise ValueError(f"EpochShuffle: seed must be in [0, {_MAX_SEED // _SEED_STRIDE}), got {seed}")
        self.num_items = num_items
        self.seed = seed
        self._cache: OrderedDict[int, Tensor] = OrderedDict()

    def permutation(self, epoch: int) -> Tensor:
        """Epoch `epoch`'s order: (num_items,) int64, a permutation of range(num_items)."""
        epoch = _as_int(epoch, "epoch")
        if epoch < 0:
            raise ValueError(f"EpochShuffle: epoch must be >= 0, got {epoch}")
        perm = self._cache.get(epoch)
        if perm is None:
            generator = torch.Generator().manual_seed(self.seed * _SEED_STRIDE + epoch)
            perm = torch.randperm(self.num_items, generator=generator)
            self._cache[epoch] = perm
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(epoch)
        return perm

    def indices(self, start: int, count: int) -> list[int]:
        """Items at stream positions [start, start + count): a list of `count` ints in [0, num_items).

        A pure function of (seed, start, count): `indices(s, a + b) == indices(s, a) + indices(s + a, b)`.
        """
        start, count = _as_int(start, "start"), _as_int(count, "count")
        if start < 0 or count < 0:
            raise ValueError(f"EpochShuffle.indices: start and count must be >= 0, got {start}, {count}")
        out: list[int] = []
        position, end = start, start + count
        while position < end:
            epoch, offset = divmod(position, self.num_items)
            take = min(end - position, self.num_items - offset)
            out.extend(self.permutation(epoch)[offset : offset + take].tolist())
            position += take
        return out
