"""The Sana family of the `diffusers` backbone: `SanaTransformer2DModel` (cross-attention to the text).

The reward tokens (text width, `caption_channels`) are appended to `encoder_hidden_states` and go through Sana's own
caption projection and norm; the text mask is extended with the rewards' presence, so a missing reward's token is
masked out of every cross-attention (Sana turns the mask into a -10000 bias: its weight is exactly 0 in float32).
With every reward missing the output is the bare transformer's, to float noise (other key counts, other sums).
The call is the one of diffusers' SanaPipeline: `timestep * config.timestep_scale`, `encoder_attention_mask`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mirokit.models.diffusers_backbone import WHERE, DiffusersTrunk, TokenConditioning


class SanaTrunk(DiffusersTrunk):
    """A SanaTransformer2DModel reading [text tokens | reward tokens] with the extended cross-attention mask."""

    family = "sana"
    class_name = "SanaTransformer2DModel"
    text_width_key = "caption_channels"

    def __init__(self, cfg, transformer, *, source: str, channels: int, image_size: int):
        super().__init__(cfg, transformer, source=source, channels=channels, image_size=image_size)
        if transformer.config.get("guidance_embeds"):
            raise ValueError(f"{WHERE}: the {self.class_name} of {source} is guidance-distilled (guidance_embeds), "
                             "which mirokit's sampler does not drive")

    def run(self, x: Tensor, cond: TokenConditioning) -> Tensor:
        """x: (B, C, H, W) noisy latents; cond: TokenConditioning -> (B, C, H, W) predicted eps - x0."""
        dtype = self.dtype
        tokens = torch.cat([cond.text.to(dtype), cond.reward_tokens.to(dtype)], dim=1)
        mask = torch.cat([cond.text_mask, cond.reward_mask.to(cond.text_mask.device)], dim=1)
        timestep = cond.timestep * float(self.transformer.config.get("timestep_scale", 1.0))
        return self.transformer(x.to(dtype), encoder_hidden_states=tokens, timestep=timestep,
                                encoder_attention_mask=mask, return_dict=False)[0]

    def attention_flops(self, num_cond_tokens: int) -> int:
        """Sana's self-attention is linear in the tokens (ReLU kernel): about 4*N*d^2/heads per layer; its
        cross-attention 4*N*T*d_cross per layer."""
        config = self.transformer.config
        n, d, layers = self.image_tokens(), self.inner_dim(), config["num_layers"]
        cross = (config.get("num_cross_attention_heads") or config["num_attention_heads"]) * (
            config.get("cross_attention_head_dim") or config["attention_head_dim"])
        return layers * (4 * n * d * config["attention_head_dim"] + 4 * n * num_cond_tokens * cross)
