"""RIN (Recurrent Interface Network) trunk with conditioning cross-attention (docs/METHOD.md §3).

Data tokens (patches) and a smaller set of latent tokens; each block: latents read the
conditioning tokens, latents read the data, latents self-attend, data read the latents back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mirokit.models.backbone import BACKBONES, BackboneConfig
from mirokit.models.conditioning import Conditioning
from mirokit.models.layers import CrossAttentionBlock, GeluMLP, RMSNorm, SelfAttentionBlock, linear_flops


@dataclass(kw_only=True)
class RINConfig(BackboneConfig):
    """RIN trunk sizes; defaults are the official ~360M configuration (4x32x32 SDXL latents)."""

    patch_size: int = 2
    """side of the square patches that become data tokens"""
    data_dim: int = 512
    """width of the data (patch) tokens"""
    latents_dim: int = 1024
    """width of the latent tokens, the time/reward embeddings and the conditioning tokens"""
    num_latents: int = 256
    """number of learned latent tokens"""
    num_blocks: int = 4
    """read/process/write blocks"""
    num_processing_layers: int = 4
    """self-attention layers on the latents inside each block"""
    read_write_heads: int = 16
    """heads of the cross-attentions (conditioning, read, write)"""
    compute_heads: int = 32
    """heads of the latent self-attention"""
    mlp_multiplier: int = 4
    """SwiGLU hidden width multiplier"""
    hidden_multiple: int = 256
    """SwiGLU hidden width is rounded up to this multiple (official 256; use 8 for tiny models)"""
    self_conditioning: bool = True
    """feed the previous call's latents back in (official: on)"""


class RINBlock(nn.Module):
    """latents <- conditioning, latents <- data, latents self-attend, data <- latents."""

    def __init__(self, cfg: RINConfig):
        super().__init__()
        d, z = cfg.data_dim, cfg.latents_dim
        common = dict(mlp_multiplier=cfg.mlp_multiplier, hidden_multiple=cfg.hidden_multiple)
        self.retrieve_cond = CrossAttentionBlock(z, z, cfg.read_write_heads, **common)
        self.retriever_ca = CrossAttentionBlock(z, d, cfg.read_write_heads, **common)
        self.processer_sa = nn.ModuleList(
            SelfAttentionBlock(z, cfg.compute_heads, **common) for _ in range(cfg.num_processing_layers)
        )
        self.writer_ca = CrossAttentionBlock(d, z, cfg.read_write_heads, **common)

    def forward(self, data: Tensor, latents: Tensor, cond: Tensor, cond_mask: Tensor) -> tuple[Tensor, Tensor]:
        """data: (B, N, D); latents: (B, M, Z); cond: (B, T, Z); cond_mask: (B, T) -> (data, latents)."""
        latents = self.retrieve_cond(latents, cond, cond_mask)
        latents = self.retriever_ca(latents, data)
        for layer in self.processer_sa:
            latents = layer(latents)
        data = self.writer_ca(data, latents)
        return data, latents

    def flops(self, n_data: int, n_latents: int, n_cond: int) -> int:
        """Forward FLOPs for one sample with n_data data, n_latents latent and n_cond conditioning tokens."""
        return (self.retrieve_cond.flops(n_latents, n_cond) + self.retriever_ca.flops(n_latents, n_data)
                + sum(layer.flops(n_latents) for layer in self.processer_sa) + self.writer_ca.flops(n_data, n_latents))


@BACKBONES.register("rin", config=RINConfig, description="Recurrent Interface Network (the official MIRO trunk)")
class RINTrunk(nn.Module):
    """Image trunk: (B, C, H, W) noisy input + conditioning -> (B, C, H, W) output and final latents."""

    def __init__(self, cfg: RINConfig, *, channels: int, image_size: int):
        super().__init__()
        if image_size % cfg.patch_size:
            raise ValueError(f"image_size {image_size} is not divisible by patch_size {cfg.patch_size}")
        self.cfg = cfg
        p = cfg.patch_size
        n_patches = (image_size // p) ** 2
        self.patch_extractor = nn.Linear(channels * p * p, cfg.data_dim)
        self.data_ln = RMSNorm(cfg.data_dim)
        self.data_pos_embedding = nn.Parameter(torch.empty(n_patches, cfg.data_dim))
        self.latents = nn.Parameter(torch.empty(cfg.num_latents, cfg.latents_dim))
        for param in (self.data_pos_embedding, self.latents):
            nn.init.trunc_normal_(param, std=0.02, a=-0.04, b=0.04)
        if cfg.self_conditioning:
            self.ln_previous_1 = nn.LayerNorm(cfg.latents_dim, eps=1e-6)
            self.linear_previous = GeluMLP(cfg.latents_dim, cfg.mlp_multiplier)
            self.ln_previous_2 = nn.LayerNorm(cfg.latents_dim, eps=1e-6)
        self.rin_blocks = nn.ModuleList(RINBlock(cfg) for _ in range(cfg.num_blocks))
        self.map_tokens_to_patches = nn.Sequential(RMSNorm(cfg.data_dim), nn.Linear(cfg.data_dim, channels * p * p))

    def reset_self_conditioning(self) -> None:
        """Zero the last LayerNorm of the self-conditioning path so it starts as a no-op (call after init)."""
        if self.cfg.self_conditioning:
            nn.init.zeros_(self.ln_previous_2.weight)
            nn.init.zeros_(self.ln_previous_2.bias)

    @property
    def cond_width(self) -> int:
        """Width of the conditioning tokens this trunk reads (= latents_dim)."""
        return self.cfg.latents_dim

    def blocks(self) -> list[nn.Module]:
        """The read/process/write blocks, in order."""
        return list(self.rin_blocks)

    def flops_per_image(self, num_cond_tokens: int) -> int:
        """Forward FLOPs for one image given T conditioning tokens (patchify, blocks, self-cond MLP, unpatchify),
        with a self-conditioning state (a call without one computes the self-cond MLP on one token only)."""
        n_data, n_latents = self.data_pos_embedding.shape[0], self.cfg.num_latents
        total = linear_flops(self.patch_extractor, n_data) + linear_flops(self.map_tokens_to_patches[1], n_data)
        if self.cfg.self_conditioning:
            total += self.linear_previous.flops(n_latents)
        return total + sum(block.flops(n_data, n_latents, num_cond_tokens) for block in self.rin_blocks)

    def forward(self, x: Tensor, cond: Conditioning, self_cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W); self_cond: (B, M, Z) latents of a previous call or None -> ((B, C, H, W), (B, M, Z))."""
        b, c, h, w = x.shape
        p = self.cfg.patch_size
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * c)
        data = self.data_ln(self.patch_extractor(patches)) + self.data_pos_embedding.unsqueeze(0)
        latents = self.latents.unsqueeze(0) + cond.time.unsqueeze(1)
        if self.cfg.self_conditioning:
            # The official network always runs this path, with zeros when there is no previous call. Every
            # token of a zero state maps to the same vector, so that case is computed on one token.
            prev = self_cond if self_cond is not None else latents.new_zeros(1, 1, latents.shape[-1])
            latents = latents + self.ln_previous_2(prev + self.linear_previous(self.ln_previous_1(prev)))
        for block in self.rin_blocks:
            data, latents = block(data, latents, cond.tokens, cond.mask)
        out = self.map_tokens_to_patches(data)
        out = out.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        return out, latents
