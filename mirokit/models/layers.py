"""Transformer building blocks of the RIN: RMSNorm, attention with QK-norm, SwiGLU/GELU MLPs, blocks.

The decomposition (attention op with fused `qkv` or `q`+`kv`, `out`; blocks with `initial_ln`,
`middle_ln`, `ffn`) mirrors the official MIRO network so that its checkpoints map onto ours by
renaming keys only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cpu_bf16_autocast(t: Tensor) -> bool:
    """True inside a CPU bf16 autocast region for a CPU tensor: where the ops below run in fp32 instead."""
    return t.device.type == "cpu" and torch.is_autocast_enabled("cpu")


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """SDPA (B, H, N, d) -> (B, H, N_q, d). Under CPU bf16 autocast it runs in fp32: the CPU flash-attention
    kernel's bf16 backward is ~10x slower than its fp32 one (measured on avx512_bf16, torch 2.13), so the
    projections around it take bf16 and the attention itself does not."""
    if cpu_bf16_autocast(q):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that runs in fp32 under CPU bf16 autocast (the bf16 CPU kernel is ~4x slower, and the
    statistics are more precise); elsewhere exactly nn.GroupNorm. Same parameters and state-dict keys."""

    def forward(self, x: Tensor) -> Tensor:
        """Group-normalise `x` (B, C, ...); under CPU bf16 autocast in float32, returning float32."""
        if cpu_bf16_autocast(x):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


class RMSNorm(nn.Module):
    """RMS normalisation computed in float32 (bf16 variance loses precision), scaled by `weight`."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., dim) -> (..., dim)."""
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def linear_flops(layer: nn.Linear, tokens: int) -> int:
    """Forward FLOPs of `layer` applied to `tokens` vectors (a multiply-add counts 2, bias not counted)."""
    return 2 * tokens * layer.in_features * layer.out_features


def make_norm(kind: str, dim: int) -> nn.Module:
    """`"rms"` -> RMSNorm, `"layer"` -> LayerNorm (both eps 1e-6)."""
    if kind == "rms":
        return RMSNorm(dim)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=1e-6)
    raise ValueError(f"unknown norm {kind!r}; known: rms, layer")


class Attention(nn.Module):
    """Multi-head attention over SDPA; self-attention fuses q,k,v in one projection.

    `attention_mask` is boolean (B, N_q, N_kv), True = may attend.
    """

    def __init__(self, dim_q: int, dim_kv: int, num_heads: int, attention_dim: int, *,
                 self_attention: bool, qkv_bias: bool, out_bias: bool = True, qk_norm: bool = True):
        super().__init__()
        if attention_dim % num_heads:
            raise ValueError(f"attention width {attention_dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.self_attention = self_attention
        if self_attention:
            self.qkv = nn.Linear(dim_q, 3 * attention_dim, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim_q, attention_dim, bias=qkv_bias)
            self.kv = nn.Linear(dim_kv, 2 * attention_dim, bias=qkv_bias)
        self.out = nn.Linear(attention_dim, dim_q, bias=out_bias)
        head_dim = attention_dim // num_heads
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def flops(self, n_q: int, n_kv: int) -> int:
        """Forward FLOPs for one sample with n_q query and n_kv key/value tokens (projections + QK^T + AV)."""
        if self.self_attention:
            proj = linear_flops(self.qkv, n_q)
        else:
            proj = linear_flops(self.q, n_q) + linear_flops(self.kv, n_kv)
        width = self.out.in_features
        return proj + 4 * n_q * n_kv * width + linear_flops(self.out, n_q)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, x_to: Tensor, x_from: Tensor | None = None,
                attention_mask: Tensor | None = None) -> Tensor:
        """x_to: (B, N_q, dim_q); x_from: (B, N_kv, dim_kv) (self-attention: None) -> (B, N_q, dim_q)."""
        if self.self_attention:
            q, k, v = self.qkv(x_to).chunk(3, dim=-1)
        else:
            q = self.q(x_to)
            k, v = self.kv(x_from).chunk(2, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        q, k = self.q_norm(q), self.k_norm(k)
        mask = None if attention_mask is None else attention_mask.unsqueeze(1)
        out = attention(q, k, v, mask, 1.0 / math.sqrt(q.shape[-1]))
        b, _, n, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, n, -1))


class SwiGLU(nn.Module):
    """SwiGLU MLP; hidden width = 2/3 * multiplier * dim rounded up to `hidden_multiple`."""

    def __init__(self, dim: int, multiplier: int, hidden_multiple: int = 256, bias: bool = True):
        super().__init__()
        hidden = int(multiplier * dim * 2 / 3)
        hidden = -(-hidden // hidden_multiple) * hidden_multiple
        self.linear_packed = nn.Linear(dim, 2 * hidden, bias=bias)
        self.linear_out = nn.Linear(hidden, dim, bias=bias)

    def flops(self, tokens: int) -> int:
        """Forward FLOPs on `tokens` vectors."""
        return linear_flops(self.linear_packed, tokens) + linear_flops(self.linear_out, tokens)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., dim) -> (..., dim)."""
        a, gate = self.linear_packed(x).chunk(2, dim=-1)
        return self.linear_out(a * F.silu(gate))


class GeluMLP(nn.Module):
    """Two-layer GELU MLP with hidden width multiplier * dim."""

    def __init__(self, dim: int, multiplier: int, bias: bool = True):
        super().__init__()
        self.linear_1 = nn.Linear(dim, multiplier * dim, bias=bias)
        self.linear_2 = nn.Linear(multiplier * dim, dim, bias=bias)

    def flops(self, tokens: int) -> int:
        """Forward FLOPs on `tokens` vectors."""
        return linear_flops(self.linear_1, tokens) + linear_flops(self.linear_2, tokens)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., dim) -> (..., dim)."""
        return self.linear_2(F.gelu(self.linear_1(x)))


def pair_mask(to_mask: Tensor | None, from_mask: Tensor | None, n_to: int, n_from: int,
              batch: int, device: torch.device) -> Tensor | None:
    """Boolean attention mask (B, N_to, N_from) from per-token masks (B, N) (None = all valid)."""
    if to_mask is None and from_mask is None:
        return None
    if to_mask is None:
        to_mask = torch.ones(batch, n_to, dtype=torch.bool, device=device)
    if from_mask is None:
        from_mask = torch.ones(batch, n_from, dtype=torch.bool, device=device)
    return to_mask[:, :, None] & from_mask[:, None, :]


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: tokens attend to `from_tokens`, then an MLP, both residual."""

    def __init__(self, dim_q: int, dim_kv: int, num_heads: int, *, mlp_multiplier: int = 4,
                 hidden_multiple: int = 256, norm: str = "rms", qk_norm: bool = True,
                 swiglu: bool = True, qkv_bias: bool = False):
        super().__init__()
        self.initial_to_ln = make_norm(norm, dim_q)
        self.ca = Attention(dim_q, dim_kv, num_heads, min(dim_q, dim_kv), self_attention=False,
                            qkv_bias=qkv_bias, qk_norm=qk_norm)
        self.middle_ln = make_norm(norm, dim_q)
        self.ffn = SwiGLU(dim_q, mlp_multiplier, hidden_multiple) if swiglu else GeluMLP(dim_q, mlp_multiplier)

    def flops(self, n_q: int, n_kv: int) -> int:
        """Forward FLOPs for one sample: n_q tokens attending to n_kv tokens, then the MLP on n_q."""
        return self.ca.flops(n_q, n_kv) + self.ffn.flops(n_q)

    def forward(self, tokens: Tensor, from_tokens: Tensor, from_mask: Tensor | None = None) -> Tensor:
        """tokens: (B, N, dim_q); from_tokens: (B, M, dim_kv); from_mask: (B, M) bool -> (B, N, dim_q)."""
        mask = pair_mask(None, from_mask, tokens.shape[1], from_tokens.shape[1], tokens.shape[0], tokens.device)
        tokens = tokens + self.ca(self.initial_to_ln(tokens), from_tokens, attention_mask=mask)
        return tokens + self.ffn(self.middle_ln(tokens))


class SelfAttentionBlock(nn.Module):
    """Pre-norm self-attention + MLP block, optional layer scale (used by the conditioning mixer)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_multiplier: int = 4, hidden_multiple: int = 256,
                 norm: str = "rms", qk_norm: bool = True, swiglu: bool = True, qkv_bias: bool = False,
                 layer_scale: float | None = None):
        super().__init__()
        self.initial_ln = make_norm(norm, dim)
        self.sa = Attention(dim, dim, num_heads, dim, self_attention=True, qkv_bias=qkv_bias, qk_norm=qk_norm)
        self.middle_ln = make_norm(norm, dim)
        self.ffn = SwiGLU(dim, mlp_multiplier, hidden_multiple) if swiglu else GeluMLP(dim, mlp_multiplier)
        self.use_layer_scale = layer_scale is not None
        if self.use_layer_scale:
            self.layer_scale_1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
            self.layer_scale_2 = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def flops(self, tokens: int) -> int:
        """Forward FLOPs for one sample of `tokens` tokens."""
        return self.sa.flops(tokens, tokens) + self.ffn.flops(tokens)

    def forward(self, tokens: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """tokens: (B, N, dim); token_mask: (B, N) bool, masked tokens are not attended to -> (B, N, dim)."""
        mask = None
        if token_mask is not None:
            mask = token_mask[:, None, :].expand(-1, tokens.shape[1], -1)
        attn = self.sa(self.initial_ln(tokens), attention_mask=mask)
        if self.use_layer_scale:
            tokens = tokens + self.layer_scale_1 * attn
            return tokens + self.layer_scale_2 * self.ffn(self.middle_ln(tokens))
        tokens = tokens + attn
        return tokens + self.ffn(self.middle_ln(tokens))


def xavier_init_(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear/Conv2d inside `module`."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
