"""One registry for every reward scorer: the real reward models and any plugin's (e.g. the shapes world's).

A scorer turns (images, captions) into one raw float32 score per image:
`scorer.score(images: list[PIL.Image], captions: list[str]) -> np.ndarray (N,)`.
Scorers are built lazily by key: `build_scorer("clip_score", model="path/or/hub-id", device="cuda")`.
A new scorer is one module in `mirokit/rewards/` (or a plugin module, see `mirokit.registry`) with
`@register_scorer("my_key", "description")` on a class or factory taking keyword options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from mirokit.registry import Registry


class RewardScorer(Protocol):
    """What every scorer provides."""

    key: str

    def score(self, images: list, captions: list[str]) -> np.ndarray:
        """images: N PIL images; captions: N strings -> (N,) float32 raw scores (NaN = could not score)."""


SCORERS: Registry = Registry("reward key", "mirokit.rewards")
"""reward key -> scorer class or factory, called with keyword options."""


def register_scorer(key: str, description: str = "") -> Callable:
    """Decorator registering a scorer factory (a class or function taking keyword options) under `key`."""
    return SCORERS.register(key, description=description)


def available_scorers() -> dict[str, str]:
    """{key: one-line description} of every registered scorer."""
    return {e.kind: e.description for e in SCORERS.entries()}


def scorer_factory(key: str) -> Callable[..., RewardScorer]:
    """The class or function registered under `key` (one-line error for unknown keys)."""
    return SCORERS.get(key)


def build_scorer(key: str, **options: Any) -> RewardScorer:
    """Instantiate the scorer registered under `key`; unknown keys raise a one-line error listing known ones."""
    return scorer_factory(key)(**options)
