"""One registry for every reward scorer: real reward models and the shapes world's built-in ones.

A scorer turns (images, captions) into one raw float32 score per image:
`scorer.score(images: list[PIL.Image], captions: list[str]) -> np.ndarray (N,)`.
Scorers are built lazily by key: `build_scorer("world_quality")`, `build_scorer("clip_score",
model="path/or/hub-id", device="cuda")`.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np


class RewardScorer(Protocol):
    """What every scorer provides."""

    key: str

    def score(self, images: list, captions: list[str]) -> np.ndarray:
        """images: N PIL images; captions: N strings -> (N,) float32 raw scores (NaN = could not score)."""


_FACTORIES: dict[str, tuple[Callable[..., RewardScorer], str]] = {}


def register_scorer(key: str, description: str = "") -> Callable:
    """Decorator registering a scorer factory (a class or function taking keyword options) under `key`."""

    def wrap(factory: Callable[..., RewardScorer]) -> Callable[..., RewardScorer]:
        if key in _FACTORIES and _FACTORIES[key][0] is not factory:
            raise ValueError(f"reward key {key!r} is already registered")
        _FACTORIES[key] = (factory, description)
        return factory

    return wrap


# Importing these modules registers their scorers (imports are lazy: no model is loaded).
_BUILTIN_MODULES = (
    "mirokit.world.rewards",
    "mirokit.rewards.clip_family",
    "mirokit.rewards.image_reward",
    "mirokit.rewards.vqa_score",
)


def _load_builtin() -> None:
    import importlib

    for name in _BUILTIN_MODULES:
        importlib.import_module(name)


def available_scorers() -> dict[str, str]:
    """{key: one-line description} of every registered scorer."""
    _load_builtin()
    return {k: d for k, (_, d) in sorted(_FACTORIES.items())}


def scorer_factory(key: str) -> Callable[..., RewardScorer]:
    """The class or function registered under `key` (one-line error for unknown keys)."""
    _load_builtin()
    if key not in _FACTORIES:
        raise ValueError(f"unknown reward key {key!r}; known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[key][0]


def build_scorer(key: str, **options: Any) -> RewardScorer:
    """Instantiate the scorer registered under `key`; unknown keys raise a one-line error listing known ones."""
    return scorer_factory(key)(**options)
