"""The SD3 family of the `diffusers` backbone: `SD3Transformer2DModel` (MMDiT: joint attention, pooled text).

Joint attention takes no mask in diffusers, so the trunk sets `MaskedJointAttnProcessor` on the transformer's
joint-attention layers: diffusers' `JointAttnProcessor2_0` plus a key mask over the context tokens. The reward
tokens (text width, `joint_attention_dim`) are appended to `encoder_hidden_states` and go through SD3's own
`context_embedder`; a missing or dropped reward's token is masked out as a key in every joint attention, so no
image or text token reads it (it still runs through the context stream, whose last block's output is discarded).
Hence, for every row of any batch, mixed ones included: with all its rewards missing, the prediction is the bare
transformer's (to float noise: SDPA with a mask sums in another order); with some missing, it is what the model
gives with only the present rewards' tokens appended. A learned "missing" embedding (MIRO's rule) would need no
custom attention but would change a pretrained model's output at step 0 wherever a reward is missing.

Text tokens are all read, padding included, as SD3's pipeline does (mirokit's text encoders pad to a fixed
max_length). SD3 also reads a pooled text vector (`pooled_projections`, CLIP's pooled outputs in SD3's pipeline).
SD3's own text encoder (kind `sd3_text`, mirokit/encoders/text_sd3.py) carries it as the last valid token of each
row: [pooled (P) | zeros | POOLED_MARK] (P = pooled_projection_dim); the trunk recognises that token (per row,
without data-dependent branches), feeds its first P values as `pooled_projections` and masks its key out of joint
attention (as a missing reward's), so the image tokens get what the pipeline's call gives them. For rows without
it (any other text encoder) the pooled vector is a learned Linear of the text tokens' masked mean (`pooled_proj`,
the stand-in). When the text width leaves room for a pooled token the context key mask is always passed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirokit.models.diffusers_backbone import WHERE, DiffusersTrunk, TokenConditioning
from mirokit.models.layers import xavier_init_

POOLED_MARK = 1.0
"""the last channel of the pooled-vector token (as mirokit.encoders.text_sd3 writes it; tests check they agree)"""


def split_pooled(text: Tensor, text_mask: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """text: (B, L, D); text_mask: (B, L) bool; width: P -> (text tokens (B, L, D), keep (B, L) bool, has (B,) bool).

    A row whose last valid token is a pooled token ([pooled (P) | zeros | POOLED_MARK], `has`) gets that token zeroed
    in the tokens and False in `keep` (its key is masked out of joint attention: the transformer computes what it
    computes without it); its pooled vector is `text[row, last valid, :P]`, taken by `pooled_of`. Branch-free (no
    data-dependent control flow or shape: one compiled graph)."""
    if text.shape[-1] <= width or text.shape[1] == 0:  # static: such a text cannot carry a pooled token
        return text, torch.ones_like(text_mask, dtype=torch.bool), torch.zeros_like(text_mask[:, 0], dtype=torch.bool)
    last = _last_valid(text_mask)
    token = text.gather(1, last.view(-1, 1, 1).expand(-1, 1, text.shape[-1]))[:, 0]
    has = (token[:, -1] == POOLED_MARK) & (token[:, width:-1] == 0).all(-1) & text_mask.gather(1, last[:, None])[:, 0]
    at = torch.arange(text.shape[1], device=text.device)[None, :] == last[:, None]  # (B, L): the last valid place
    keep = ~(at & has[:, None])
    return text * keep.unsqueeze(-1).to(text.dtype), keep, has


def _last_valid(text_mask: Tensor) -> Tensor:
    """(B, L) bool -> (B,) the index of each row's last True (0 when none)."""
    positions = torch.arange(text_mask.shape[1], device=text_mask.device)
    return (positions * text_mask.long()).amax(1)


def pooled_of(text: Tensor, text_mask: Tensor, width: int) -> Tensor:
    """text: (B, L, D) -> (B, P) the first P values of each row's last valid token (its pooled vector when it has
    one, see split_pooled)."""
    last = _last_valid(text_mask)
    return text.gather(1, last.view(-1, 1, 1).expand(-1, 1, text.shape[-1]))[:, 0, :width]


class MaskedJointAttnProcessor:
    """diffusers' JointAttnProcessor2_0 (SD3's joint attention) with `context_mask` (B, T) bool: False = that
    context token is not attended by any query. The rest is diffusers' code, step for step."""

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, context_mask: Tensor | None = None, *args, **kwargs):
        """hidden_states: (B, N, D) image tokens; encoder_hidden_states: (B, T, D) context tokens or None (a
        self-attention layer: no mask) -> the image tokens' output (B, N, D), and the context's (B, T, D)."""
        residual = hidden_states
        batch_size = hidden_states.shape[0]
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        mask = None
        if encoder_hidden_states is not None:
            context = (attn.add_q_proj(encoder_hidden_states), attn.add_k_proj(encoder_hidden_states),
                       attn.add_v_proj(encoder_hidden_states))
            c_query, c_key, c_value = (t.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2) for t in context)
            if attn.norm_added_q is not None:
                c_query = attn.norm_added_q(c_query)
            if attn.norm_added_k is not None:
                c_key = attn.norm_added_k(c_key)
            query = torch.cat([query, c_query], dim=2)
            key = torch.cat([key, c_key], dim=2)
            value = torch.cat([value, c_value], dim=2)
            if context_mask is not None:
                image = torch.ones(batch_size, residual.shape[1], dtype=torch.bool, device=query.device)
                mask = torch.cat([image, context_mask.to(query.device, torch.bool)], dim=1)[:, None, None, :]
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0,
                                                       is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        if encoder_hidden_states is not None:
            hidden_states, encoder_hidden_states = (hidden_states[:, : residual.shape[1]],
                                                    hidden_states[:, residual.shape[1]:])
            if not attn.context_pre_only:
                encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if encoder_hidden_states is not None:
            return hidden_states, encoder_hidden_states
        return hidden_states


def use_masked_joint_attention(transformer: nn.Module) -> int:
    """Put `MaskedJointAttnProcessor` on every layer of `transformer` that runs diffusers' JointAttnProcessor2_0;
    returns how many (0 would leave the reward tokens unmasked: the caller raises)."""
    count = 0
    for module in transformer.modules():
        if type(getattr(module, "processor", None)).__name__ == "JointAttnProcessor2_0":
            module.set_processor(MaskedJointAttnProcessor())
            count += 1
    return count


class SD3Trunk(DiffusersTrunk):
    """An SD3Transformer2DModel reading [text tokens | reward tokens] with missing rewards masked as keys."""

    family = "sd3"
    class_name = "SD3Transformer2DModel"
    text_width_key = "joint_attention_dim"

    def __init__(self, cfg, transformer, *, source: str, channels: int, image_size: int):
        super().__init__(cfg, transformer, source=source, channels=channels, image_size=image_size)
        self.pooled_width = int(transformer.config["pooled_projection_dim"])
        self.pooled_proj = nn.Linear(self.cond_width, self.pooled_width)
        xavier_init_(self.pooled_proj)
        if not use_masked_joint_attention(transformer):
            raise ValueError(f"{WHERE}: the {self.class_name} of {source} has no JointAttnProcessor2_0 layer to mask "
                             "reward tokens in")

    def stand_in(self, text: Tensor, text_mask: Tensor) -> Tensor:
        """text: (B, L, D); text_mask: (B, L) bool -> (B, pooled_projection_dim): Linear of the masked mean."""
        weights = text_mask.to(text.dtype).unsqueeze(-1)
        mean = (text * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.pooled_proj(mean.to(self.pooled_proj.weight.dtype))

    def pooled(self, text: Tensor, text_mask: Tensor) -> Tensor:
        """text: (B, L, D); text_mask: (B, L) bool -> (B, pooled_projection_dim) the pooled vector the call uses."""
        return self.text_and_pooled(text, text_mask)[2]

    def text_and_pooled(self, text: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """text: (B, L, D); text_mask: (B, L) bool -> (text tokens (B, L, D), keep (B, L) bool: the keys joint
        attention reads, pooled (B, pooled_projection_dim)): per row, the encoder's pooled vector when it carries one
        (its token zeroed and masked out), else the stand-in (which stays in the graph: DDP sees it used)."""
        tokens, keep, has = split_pooled(text, text_mask, self.pooled_width)
        stand_in = self.stand_in(tokens, text_mask & keep)
        real = pooled_of(text, text_mask, self.pooled_width).to(stand_in.dtype)
        return tokens, keep, torch.where(has[:, None], real, stand_in)

    def run(self, x: Tensor, cond: TokenConditioning) -> Tensor:
        """x: (B, C, H, W) noisy latents; cond: TokenConditioning -> (B, C, H, W) predicted eps - x0."""
        dtype = self.dtype
        text, keep_text, pooled = self.text_and_pooled(cond.text, cond.text_mask)
        tokens = torch.cat([text.to(dtype), cond.reward_tokens.to(dtype)], dim=1)
        kwargs = None
        # always masked when there are rewards or a pooled token may come: one kernel whatever the batch holds
        if cond.reward_mask.shape[1] or self.cond_width > self.pooled_width:
            kwargs = {"context_mask": torch.cat([keep_text, cond.reward_mask.to(keep_text.device)], dim=1)}
        return self.transformer(x.to(dtype), encoder_hidden_states=tokens, pooled_projections=pooled.to(dtype),
                                timestep=cond.timestep, joint_attention_kwargs=kwargs, return_dict=False)[0]

    def attention_flops(self, num_cond_tokens: int) -> int:
        """Joint attention over N image + T context tokens: 4*(N+T)^2*d per layer."""
        tokens = self.image_tokens() + num_cond_tokens
        return self.transformer.config["num_layers"] * 4 * tokens * tokens * self.inner_dim()
