"""Reward scorers behind one registry (see registry.py)."""

from mirokit.rewards.registry import RewardScorer, available_scorers, build_scorer, register_scorer

__all__ = ["RewardScorer", "available_scorers", "build_scorer", "register_scorer"]
