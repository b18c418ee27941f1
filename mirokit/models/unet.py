"""Small convolutional UNet trunk with conditioning cross-attention (the CPU demo backbone).

Same contract as `RINTrunk`: (B, C, H, W) network input + `Conditioning` -> (B, C, H, W) output
and a self-conditioning state. The signal-level embedding `cond.time` modulates every residual
block (scale/shift of its second GroupNorm); the conditioning tokens (time, one token per reward,
registers, text) are read by pre-norm cross-attention at the resolutions in `attention_levels`.
Only the image trunk differs from the RIN: the reward/text conditioning is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirokit.models.backbone import BACKBONES, BackboneConfig
from mirokit.models.conditioning import Conditioning
from mirokit.models.layers import CrossAttentionBlock, GroupNorm, SelfAttentionBlock, linear_flops


@dataclass(kw_only=True)
class UNetConfig(BackboneConfig):
    """UNet trunk sizes; defaults (~1.5M parameters) are a 3x32x32 pixel-space model (`demo_unet`); the demo
    trains a smaller one on 4x8x8 latents (channels [32, 64], attention at 4x4: `configs/demo_world.yaml`)."""

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """feature width at each resolution level; level 0 is full resolution, each next level halves it"""
    blocks_per_level: int = 1
    """residual blocks per level, on the way down and again on the way up"""
    attention_levels: list[int] = field(default_factory=lambda: [1, 2])
    """levels (0 = full resolution) whose blocks cross-attend to the conditioning tokens"""
    self_attention: bool = False
    """also add a self-attention block over the feature map at the attention levels"""
    cond_dim: int = 128
    """width of the conditioning tokens and time embedding (divisible by 4 and by `heads`)"""
    heads: int = 4
    """attention heads of the cross- (and self-) attention blocks"""
    mlp_multiplier: int = 2
    """SwiGLU hidden width of the attention blocks, as a multiple of the level width"""
    self_conditioning: bool = True
    """feed the previous call's output back in as extra input channels"""
    dropout: float = 0.0
    """dropout inside the residual blocks, between the modulated norm and the second conv"""
    pooled_conditioning: bool = False
    """also add a projection of the conditioning tokens' masked mean to the time embedding, so every residual
    block (not only the attention levels) is modulated by the prompt and the reward targets (the pooled text
    embedding of SDXL's and Imagen's UNets)"""


def conv_flops(conv: nn.Conv2d, height: int, width: int) -> int:
    """Forward FLOPs of `conv` producing a (height, width) output map for one image."""
    kh, kw = conv.kernel_size
    return 2 * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw * height * width


def _groups(ch: int) -> int:
    """GroupNorm groups: min(8, ch), lowered to the nearest divisor of `ch`."""
    g = min(8, ch)
    while ch % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, time scale/shift on the second GroupNorm, SiLU-dropout-conv, residual."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        # The affine part is redundant with the time modulation right after it.
        self.norm2 = GroupNorm(_groups(out_ch), out_ch, affine=False)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def flops(self, size: int) -> int:
        """Forward FLOPs for one image at a size x size resolution."""
        skip = conv_flops(self.skip, size, size) if isinstance(self.skip, nn.Conv2d) else 0
        return (conv_flops(self.conv1, size, size) + conv_flops(self.conv2, size, size) + linear_flops(self.emb, 1)
                + skip)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B, in_ch, H, W); emb: (B, emb_dim) already SiLU-activated -> (B, out_ch, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        # (1 + scale): a zero or small projection leaves the block a plain GroupNorm block.
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Feature-map pixels as tokens: optional self-attention, then cross-attention to the conditioning."""

    def __init__(self, ch: int, cfg: UNetConfig):
        super().__init__()
        common = dict(mlp_multiplier=cfg.mlp_multiplier, hidden_multiple=8)
        self.self_attn = SelfAttentionBlock(ch, cfg.heads, **common) if cfg.self_attention else None
        self.cross_attn = CrossAttentionBlock(ch, cfg.cond_dim, cfg.heads, **common)

    def flops(self, pixels: int, num_cond_tokens: int) -> int:
        """Forward FLOPs for one image of `pixels` feature-map positions and T conditioning tokens."""
        own = self.self_attn.flops(pixels) if self.self_attn is not None else 0
        return own + self.cross_attn.flops(pixels, num_cond_tokens)

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        """x: (B, ch, H, W); tokens: (B, T, cond_dim); mask: (B, T) bool, False = not attended -> (B, ch, H, W)."""
        b, c, h, w = x.shape
        seq = x.flatten(2).transpose(1, 2)
        if self.self_attn is not None:
            seq = self.self_attn(seq)
        seq = self.cross_attn(seq, tokens, mask)
        return seq.transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    """Stride-2 3x3 conv: (B, ch, H, W) -> (B, ch, H/2, W/2)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, ch, H, W) -> (B, ch, H/2, W/2)."""
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then 3x3 conv: (B, in_ch, H, W) -> (B, out_ch, 2H, 2W)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, in_ch, H, W) -> (B, out_ch, 2H, 2W)."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """Residual blocks of one resolution, each optionally followed by an attention block."""

    def __init__(self, in_chs: list[int], out_ch: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, out_ch, cfg.cond_dim, cfg.dropout) for c in in_chs)
        self.attn = nn.ModuleList(AttentionBlock(out_ch, cfg) for _ in in_chs) if attention else None

    def flops(self, size: int, num_cond_tokens: int) -> int:
        """Forward FLOPs for one image at a size x size resolution with T conditioning tokens."""
        total = sum(res.flops(size) for res in self.res)
        if self.attn is not None:
            total += sum(attn.flops(size * size, num_cond_tokens) for attn in self.attn)
        return total

    def forward(self, h: Tensor, emb: Tensor, cond: Conditioning) -> Tensor:
        """h: (B, in_chs[0], H, W); emb: (B, cond_dim) SiLU-activated time -> (B, out_ch, H, W)."""
        for j, res in enumerate(self.res):
            h = res(h, emb)
            if self.attn is not None:
                h = self.attn[j](h, cond.tokens, cond.mask)
        return h


@BACKBONES.register("unet", config=UNetConfig, description="small convolutional UNet with cross-attention (CPU)")
class UNetTrunk(nn.Module):
    """Image trunk: (B, C, H, W) noisy input + conditioning -> (B, C, H, W) output and that output."""

    def __init__(self, cfg: UNetConfig, *, channels: int, image_size: int):
        super().__init__()
        chs = list(cfg.channels)
        n = len(chs)
        if n < 1 or cfg.blocks_per_level < 1:
            raise ValueError(f"need at least one level and one block per level, got {chs}, {cfg.blocks_per_level}")
        if image_size % 2 ** (n - 1):
            raise ValueError(f"image_size {image_size} is not divisible by 2**{n - 1} (UNet with {n} levels)")
        bad = [lvl for lvl in cfg.attention_levels if not 0 <= lvl < n]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range for {n} levels")
        if cfg.cond_dim % 4 or cfg.cond_dim % cfg.heads:
            raise ValueError(f"cond_dim {cfg.cond_dim} must be divisible by 4 and by heads={cfg.heads}")
        self.cfg = cfg
        self.channels = channels
        self.image_size = image_size
        attn = set(cfg.attention_levels)
        in_ch = channels * (2 if cfg.self_conditioning else 1)
        self.conv_in = nn.Conv2d(in_ch, chs[0], 3, padding=1)

        # Down path: each level's output is kept for the up path (skip concatenation).
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cur = chs[0]
        for i, ch in enumerate(chs):
            self.down.append(Level([cur] + [ch] * (cfg.blocks_per_level - 1), ch, cfg, i in attn))
            cur = ch
            if i < n - 1:
                self.downsample.append(Downsample(ch))

        # Up path: the first block of a level reads [h | skip]; the upsampling conv also narrows
        # the width to the next level's, which keeps the decoder about as small as the encoder.
        # There is no separate middle block: the lowest level's down and up blocks play that part
        # (~0.45M parameters fewer at the default sizes).
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(n)):
            ch = chs[i]
            self.up.append(Level([cur + ch] + [ch] * (cfg.blocks_per_level - 1), ch, cfg, i in attn))
            cur = ch
            if i > 0:
                self.upsample.append(Upsample(ch, chs[i - 1]))
                cur = chs[i - 1]

        self.norm_out = GroupNorm(_groups(cur), cur)
        self.conv_out = nn.Conv2d(cur, channels, 3, padding=1)
        self.pool_proj = nn.Linear(cfg.cond_dim, cfg.cond_dim) if cfg.pooled_conditioning else None

    @property
    def cond_width(self) -> int:
        """Width W of the conditioning tokens and time embedding this trunk expects."""
        return self.cfg.cond_dim

    def blocks(self) -> list[nn.Module]:
        """The resolution levels: down path then up path."""
        return [*self.down, *self.up]

    def flops_per_image(self, num_cond_tokens: int) -> int:
        """Forward FLOPs for one image given T conditioning tokens."""
        size = self.image_size
        total = conv_flops(self.conv_in, size, size) + conv_flops(self.conv_out, size, size)
        if self.pool_proj is not None:
            total += linear_flops(self.pool_proj, 1)
        for i, level in enumerate(self.down):
            total += level.flops(size >> i, num_cond_tokens)
            if i < len(self.downsample):
                total += conv_flops(self.downsample[i].conv, size >> (i + 1), size >> (i + 1))
        depth = len(self.up) - 1
        for j, level in enumerate(self.up):
            total += level.flops(size >> (depth - j), num_cond_tokens)
            if j < len(self.upsample):
                total += conv_flops(self.upsample[j].conv, size >> (depth - j - 1), size >> (depth - j - 1))
        return total

    def reset_self_conditioning(self) -> None:
        """Make the self-conditioning input a no-op (call after xavier init).

        Zeroing `conv_in`'s weights on the previous-output channels means the first calls ignore
        self_cond; they grow from gradients once training feeds a non-zero previous output.
        The output conv is deliberately *not* zeroed: in a 120-step toy flow-matching run
        (AdamW 1e-3, xavier init) a zero output conv left the loss at 0.57 vs 0.23 without.
        """
        if self.cfg.self_conditioning:
            with torch.no_grad():
                self.conv_in.weight[:, self.channels:].zero_()

    def forward(self, x: Tensor, cond: Conditioning, self_cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W) scaled input; cond.time: (B, cond_dim); cond.tokens: (B, T, cond_dim);
        cond.mask: (B, T) bool (False = padding, not attended); self_cond: (B, C, H, W) previous
        output or None (zeros) -> (output (B, C, H, W), state (B, C, H, W) = output).
        """
        if self.cfg.self_conditioning:
            prev = torch.zeros_like(x) if self_cond is None else self_cond.to(x.dtype)
            x = torch.cat([x, prev], dim=1)
        emb = cond.time.to(x.dtype)
        if self.pool_proj is not None:
            keep = cond.mask.to(x.dtype).unsqueeze(-1)
            emb = emb + self.pool_proj((cond.tokens.to(x.dtype) * keep).sum(1) / keep.sum(1).clamp_min(1.0))
        emb = F.silu(emb)
        # channels_last makes the oneDNN convolutions ~20% faster on CPU (forward+backward, batch 64,
        # 32x32, 1 thread: 80 -> 95 img/s); convolutions keep the format of their input.
        h = self.conv_in(x.contiguous(memory_format=torch.channels_last))
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, emb, cond)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for i, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb, cond)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        out = self.conv_out(F.silu(self.norm_out(h))).contiguous()
        return out, out
