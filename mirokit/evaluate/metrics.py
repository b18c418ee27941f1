"""Prompt-set metrics: what `mirokit eval tune-targets --metric NAME` (and the sweeps) maximise.

A metric owns a prompt set and scores images generated for it::

    metric = METRICS.get("geneval")(**options)        # a class registered under its name
    records = metric.prompts()                         # [{"prompt": str, ...}] (GenEval records for geneval/shapes)
    per_image = metric.score(images, records)          # images: (N, H, W, 3) uint8 -> (N,) float64
    value = metric.summarize(per_image, records)       # one number, higher is better

Built-in: `reward` (mean raw score of one registered reward scorer, `--metric reward:KEY`), `geneval`
(mirokit.evaluate.geneval_*). Plugins register more (the shapes world registers `shapes`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mirokit.registry import Registry

METRICS: Registry = Registry("metric", "mirokit.evaluate")
"""name -> metric class (constructed with keyword options)"""


class PromptMetric(Protocol):
    """The contract of a registered metric."""

    name: str

    def prompts(self) -> list[dict]:
        """The metric's prompt records, each with at least "prompt" (str)."""

    def score(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images: (N, H, W, 3) uint8, records: N prompt records -> (N,) float64 per-image scores."""

    def summarize(self, per_image: np.ndarray, records: list[dict]) -> float:
        """(N,) per-image scores of `score` -> the metric's value (higher is better)."""


def tag_mean(per_image: np.ndarray, records: list[dict]) -> float:
    """GenEval's overall: per_image (N,) scores (NaN = not evaluated) and N records with "tag" -> the mean over
    tags of each tag's mean score (NaN if nothing was evaluated)."""
    per_tag: dict[str, list[float]] = {}
    for value, record in zip(np.asarray(per_image, dtype=np.float64), records):
        if np.isfinite(value):
            per_tag.setdefault(record["tag"], []).append(value)
    return float(np.mean([np.mean(v) for v in per_tag.values()])) if per_tag else float("nan")


def parse_metric(spec: str, **options) -> PromptMetric:
    """"geneval", "shapes" or "reward:KEY" -> a constructed metric; unknown names list the known ones."""
    name, _, arg = spec.partition(":")
    cls = METRICS.get(name)
    return cls(arg, **options) if arg else cls(**options)


@METRICS.register("reward", description="mean raw score of one registered reward scorer (reward:KEY)")
class RewardMetric:
    """`reward:KEY`: the mean raw score of the registered scorer KEY over a prompt set.

    key: a registered reward scorer; prompts: a prompt set for mirokit.evaluate.samples.load_prompts
    (default the built-in parti-style list); options: the scorer's keyword options.
    """

    def __init__(self, key: str = "", *, prompts: str | None = None, **options):
        from mirokit.rewards.registry import scorer_factory

        if not key:
            raise ValueError("the reward metric needs a scorer key: reward:KEY")
        scorer_factory(key)  # an unknown key is a one-line error listing the registered ones, before any sampling
        self.key = key
        self.name = f"reward:{key}"
        self.prompt_set = prompts or "parti-style"
        self.options = options
        self._scorer = None

    def prompts(self) -> list[dict]:
        """The prompt set's records."""
        from mirokit.evaluate.samples import load_prompts

        return load_prompts(self.prompt_set)

    def score(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images: (N, H, W, 3) uint8, records: N prompt records -> (N,) float64 raw scores (NaN = unscored)."""
        from mirokit.evaluate.samples import build_scorers, score_images

        if self._scorer is None:
            self._scorer = build_scorers([self.key], {self.key: self.options} if self.options else None)
        return score_images(self._scorer, images, [r["prompt"] for r in records])[self.key]

    def summarize(self, per_image: np.ndarray, records: list[dict]) -> float:
        """The mean of the scored images (NaN when none was scored)."""
        finite = np.asarray(per_image, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        return float(finite.mean()) if len(finite) else float("nan")
