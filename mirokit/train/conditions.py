"""Condition dropout for classifier-free guidance and reward-subset training (pure tensor ops)."""

from __future__ import annotations

import torch
from torch import Tensor


def drop_conditions(captions: list[str], rewards: Tensor, *, text_p: float, reward_p: float,
                    generator: torch.Generator) -> tuple[list[str], Tensor, Tensor]:
    """captions: B strings; rewards: (B, K) with NaN = missing. Returns dropped copies and the (B,) bool
    mask of the samples whose caption was dropped.

    Text dropout replaces a caption by "" and marks all its rewards missing (the unconditional
    branch). Reward dropout marks each reward missing independently with probability reward_p,
    but keeps at least one of the present rewards per sample (the official "binomial" strategy).
    """
    b, k = rewards.shape
    drop_text = torch.rand(b, generator=generator) < text_p
    drop_reward = torch.rand(b, k, generator=generator) < reward_p
    if k > 0:
        all_dropped = drop_reward.all(dim=1)
        rescue = torch.randint(0, k, (b,), generator=generator)
        drop_reward[all_dropped, rescue[all_dropped]] = False
    drop = drop_reward.to(rewards.device) | drop_text.to(rewards.device).unsqueeze(1)
    rewards = torch.where(drop, torch.full_like(rewards, float("nan")), rewards)
    captions = ["" if d else c for c, d in zip(captions, drop_text.tolist())]
    return captions, rewards, drop_text
