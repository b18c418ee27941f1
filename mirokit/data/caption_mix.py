"""Which of a sample's captions trains at a step, and which reward vector comes with it.

A sample may carry several captions (the original, a synthetic one, ...), each with its own scores. At each
step the loader's generator (seeded by (seed, stream position)) picks one: with `caption_weights`, by weight over
the captions the sample has; otherwise another caption than the original with probability `caption_mix`,
uniformly among the others (the official rule, 0.5). The sample's reward vector is that caption's own scores
(`caption_rewards: own`, the paper's intent) or always the original caption's (`original`: the released code,
where only the text embedding swaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CAPTION_REWARDS = ("own", "original")


@dataclass(kw_only=True)
class CaptionMixConfig:
    """The caption choice of a data source whose samples carry several captions (mixed into its config)."""

    caption_mix: float = 0.5
    """probability of training a sample on one of its other captions (e.g. synthetic) at a step, uniformly among
    them (official 0.5); ignored when caption_weights is set"""
    caption_weights: dict[str, float] | None = None
    """weights of the caption sources by name, e.g. {original: 1, synthetic: 3}; each sample draws among the
    captions it has, by weight (a source not named weighs 0)"""
    caption_rewards: str = "own"
    """own: a caption trains with its own scores (the paper); original: always with the original caption's scores
    (the released code's behaviour: only the text swaps)"""

    def __post_init__(self):
        super_post = getattr(super(), "__post_init__", None)
        if super_post is not None:
            super_post()
        check_caption_mix(self.caption_mix, self.caption_weights, self.caption_rewards)

    def choose(self, names: list[str], generator: torch.Generator | None) -> int:
        """Index into `names` (a sample's captions, the original first) of the caption to train on (choose_caption)."""
        return choose_caption(names, generator, mix=self.caption_mix, weights=self.caption_weights)

    @property
    def own_rewards(self) -> bool:
        """True when a caption trains with its own scores (caption_rewards own)."""
        return self.caption_rewards == "own"

    @classmethod
    def of(cls, config) -> CaptionMixConfig:
        """The caption-mix part of a data config that mixes it in."""
        return cls(caption_mix=config.caption_mix, caption_weights=config.caption_weights,
                   caption_rewards=config.caption_rewards)


def check_caption_mix(mix: float, weights: dict | None, rewards: str) -> None:
    """One-line ValueErrors for a bad mix probability, weight table or rewards rule."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"data.caption_mix must be in [0, 1], got {mix}")
    if weights is not None:
        if not isinstance(weights, dict) or not weights:
            raise ValueError(f"data.caption_weights must be a non-empty {{name: weight}} mapping, got {weights!r}")
        bad = {k: v for k, v in weights.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0}
        if bad:
            raise ValueError(f"data.caption_weights: weights must be numbers >= 0, got {bad}")
        if sum(weights.values()) <= 0:
            raise ValueError("data.caption_weights: at least one weight must be > 0")
    if rewards not in CAPTION_REWARDS:
        raise ValueError(f"data.caption_rewards must be one of {', '.join(CAPTION_REWARDS)}, got {rewards!r}")


def choose_caption(names: list[str], generator: torch.Generator | None, *, mix: float,
                   weights: dict[str, float] | None) -> int:
    """Index into `names` (the sample's captions, the original first) of the caption to train on; 0 without a
    generator or another caption. Always draws two numbers from `generator`, so the stream stays aligned."""
    if generator is None or len(names) < 2:
        return 0
    first, second = torch.rand(2, generator=generator).tolist()
    if weights is None:
        return 1 + int(second * (len(names) - 1)) if first < mix else 0
    w = [float(weights.get(name, 0.0)) for name in names]
    total = sum(w)
    if total <= 0:
        return 0
    target, acc = second * total, 0.0
    for i, wi in enumerate(w):
        acc += wi
        if target < acc:
            return i
    return max(i for i, wi in enumerate(w) if wi > 0)
