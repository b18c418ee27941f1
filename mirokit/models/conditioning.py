"""Multi-reward + text conditioning shared by every backbone (docs/METHOD.md §3).

Each reward scalar gets its own Fourier+MLP embedder -> one token per reward, plus a learned
per-reward position embedding. A missing or dropped reward (NaN) is the position embedding alone, except for
the keys of `ConditioningConfig.masked_when_missing`, whose token is then masked out (attended by nothing): a key
that a fine-tune adds to its parent (`train.init_from`) is one, so that with it missing the fine-tuned model sees
exactly its parent's tokens. The sequence [K reward tokens | registers | projected text tokens] is mixed by small
self-attention blocks, then the signal-level (time) token is prepended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mirokit.models.embedders import ScalarEmbedder
from mirokit.models.layers import SelfAttentionBlock, linear_flops


@dataclass(kw_only=True)
class ConditioningConfig:
    """Conditioning mixer settings (official: 16 registers, 2 mixer blocks, 16 heads)."""

    num_registers: int = 16
    """learned register tokens placed between the reward and text tokens"""
    mixer_layers: int = 2
    """self-attention blocks that mix reward, register and text tokens"""
    mixer_heads: int = 16
    """attention heads in the mixer (the official code hard-codes 16)"""
    mlp_multiplier: int = 4
    """hidden width of the mixer's GELU MLPs, as a multiple of the width"""
    masked_when_missing: list[str] = field(default_factory=list)
    """reward keys whose token is masked out (not attended) when the reward is missing or dropped, instead of being
    the position embedding alone (the official rule, kept for every other key). `train.init_from` adds here the keys
    a fine-tune adds to its parent: with them missing, the new model gives its parent's outputs"""


@dataclass
class Conditioning:
    """Output of the conditioner.

    time: (B, W) signal-level embedding; tokens: (B, 1+K+R+L, W) with the time token first;
    mask: (B, 1+K+R+L) bool, False for text padding (and for the missing rewards of `masked_when_missing` keys).
    """

    time: Tensor
    tokens: Tensor
    mask: Tensor


def _trunc_normal_param(*shape: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*shape))
    nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
    return p


class RewardTextConditioner(nn.Module):
    """Turns (signal level, text embeddings, reward vector) into conditioning tokens of width W."""

    def __init__(self, width: int, reward_keys: list[str], text_dim: int, cfg: ConditioningConfig):
        super().__init__()
        if width % 4:
            raise ValueError(f"conditioning width {width} must be divisible by 4")
        if len(set(reward_keys)) != len(reward_keys):
            raise ValueError(f"duplicate reward keys in {reward_keys}")
        self.reward_keys = list(reward_keys)
        unknown = [k for k in cfg.masked_when_missing if k not in self.reward_keys]
        if unknown:
            raise ValueError(f"conditioning.masked_when_missing names {unknown[0]!r}, which is not one of the reward "
                             f"keys {self.reward_keys}")
        self.masked_when_missing = [k in cfg.masked_when_missing for k in self.reward_keys]
        self.time_embedder = ScalarEmbedder(width // 4)
        self.reward_embedders = nn.ModuleDict({k: ScalarEmbedder(width // 4) for k in reward_keys})
        self.reward_position = _trunc_normal_param(len(reward_keys), width) if reward_keys else None
        self.registers = _trunc_normal_param(cfg.num_registers, width)
        self.text_proj = nn.Linear(text_dim, width)
        self.mixer = nn.ModuleList(
            SelfAttentionBlock(width, cfg.mixer_heads, mlp_multiplier=cfg.mlp_multiplier, norm="layer",
                               qk_norm=False, swiglu=False, qkv_bias=True, layer_scale=0.1)
            for _ in range(cfg.mixer_layers)
        )

    def blocks(self) -> list[nn.Module]:
        """The mixer's self-attention blocks (units for sharding / activation checkpointing / compile)."""
        return list(self.mixer)

    def num_tokens(self, text_len: int) -> int:
        """Conditioning tokens T = 1 (time) + K (rewards) + R (registers) + L (text)."""
        return 1 + len(self.reward_keys) + self.registers.shape[0] + text_len

    def flops_per_image(self, text_len: int) -> int:
        """Forward FLOPs for one sample with L text tokens: scalar embedders, text projection, mixer."""
        mixed = self.num_tokens(text_len) - 1
        embedders = self.time_embedder.flops() + sum(e.flops() for e in self.reward_embedders.values())
        return embedders + linear_flops(self.text_proj, text_len) + sum(block.flops(mixed) for block in self.mixer)

    def reward_tokens(self, rewards: Tensor) -> Tensor:
        """rewards: (B, K) in [0,1], NaN = missing/dropped -> (B, K, W); NaN gives the position embedding alone."""
        present = ~torch.isnan(rewards)
        values = torch.nan_to_num(rewards, nan=0.0)
        emb = torch.stack([self.reward_embedders[k](values[:, i]) for i, k in enumerate(self.reward_keys)], dim=1)
        return emb * present.unsqueeze(-1).to(emb.dtype) + self.reward_position.unsqueeze(0)

    def forward(self, gamma: Tensor, text: Tensor, text_mask: Tensor, rewards: Tensor | None) -> Conditioning:
        """gamma: (B,); text: (B, L, text_dim); text_mask: (B, L) bool; rewards: (B, K) or None when K=0."""
        b = gamma.shape[0]
        time = self.time_embedder(gamma)
        parts = []
        if self.reward_keys:
            if rewards is None or rewards.shape != (b, len(self.reward_keys)):
                got = None if rewards is None else tuple(rewards.shape)
                raise ValueError(f"rewards must have shape ({b}, {len(self.reward_keys)}) for keys "
                                 f"{self.reward_keys}, got {got}")
            parts.append(self.reward_tokens(rewards.to(time.dtype)))
        parts.append(self.registers.unsqueeze(0).expand(b, -1, -1))
        parts.append(self.text_proj(text.to(self.text_proj.weight.dtype)))
        tokens = torch.cat(parts, dim=1)
        n_fixed = tokens.shape[1] - text.shape[1]
        mask = torch.cat([torch.ones(b, n_fixed, dtype=torch.bool, device=text_mask.device), text_mask.bool()], 1)
        if any(self.masked_when_missing):  # these keys' missing rewards are left out, not position embeddings
            masked = torch.tensor(self.masked_when_missing, device=mask.device) & torch.isnan(rewards).to(mask.device)
            mask = torch.cat([~masked, mask[:, len(self.reward_keys):]], dim=1)
        for block in self.mixer:
            tokens = block(tokens, token_mask=mask)
        tokens = torch.cat([time.unsqueeze(1), tokens], dim=1)
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        return Conditioning(time=time, tokens=tokens, mask=mask)
