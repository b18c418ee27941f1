"""SD3's frozen text encoders (kind "sd3_text"): CLIP-L + CLIP-G + T5, combined as diffusers'
`StableDiffusion3Pipeline.encode_prompt` does, plus the pooled vector SD3's transformer reads.

From a pipeline folder or hub id (e.g. stabilityai/stable-diffusion-3.5-medium): `text_encoder` / `tokenizer`
(CLIP-L, `CLIPTextModelWithProjection`), `text_encoder_2` / `tokenizer_2` (CLIP-G, the same class),
`text_encoder_3` / `tokenizer_3` (`T5EncoderModel`). As in the pipeline: each CLIP reads its caption padded to
`clip_length` (77) tokens, without attention mask, and gives its penultimate hidden states and its projected pooled
output (`text_embeds`); the two CLIPs' states are concatenated along the width and zero-padded to T5's width D;
T5 reads its caption padded to `max_length` tokens, without attention mask; the tokens are [CLIP | T5] along the
sequence, and the pooled vector is [CLIP-L text_embeds | CLIP-G text_embeds] (P = 768 + 1280 = 2048 wide).

The pooled vector travels as one more token at the end of the sequence: (B, clip_length + max_length + 1, D), whose
last token is [pooled (P) | zeros | POOLED_MARK] (`pooled_token`), so it survives what every text tensor goes
through (encoded shards, the empty prompt, padding, caption dropout) with the contract unchanged. The SD3 family
of the `diffusers` backbone (mirokit/models/diffusers_sd3.py) recognises that token, feeds its first P values as
`pooled_projections` and drops it from the text tokens. The mask is all True: SD3 reads every token, CLIP's and
T5's padding included (the pipeline passes no mask), so `mirokit encode` keeps them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mirokit.encoders.hub import load_part_config
from mirokit.encoders.text import TEXT_ENCODERS, TextEncoderConfig
from mirokit.encoders.text_parts import PipelineTextEncoder, check_length

POOLED_MARK = 1.0
"""the last channel of the pooled-vector token (every channel between the pooled vector and it is zero)"""
CLIPS = (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"))
T5 = ("text_encoder_3", "tokenizer_3")


def pooled_token(pooled: Tensor, width: int) -> Tensor:
    """pooled: (B, P) -> (B, 1, width) the token carrying it: [pooled | zeros | POOLED_MARK]; width > P."""
    if width <= pooled.shape[-1]:
        raise ValueError(f"a {pooled.shape[-1]}-wide pooled vector does not fit a {width}-wide text token with its "
                         "mark")
    token = pooled.new_zeros(pooled.shape[0], 1, width)
    token[:, 0, : pooled.shape[-1]] = pooled
    token[:, 0, -1] = POOLED_MARK
    return token


@dataclass(kw_only=True)
class SD3TextEncoderConfig(TextEncoderConfig):
    """SD3's CLIP-L + CLIP-G + T5, from a diffusers pipeline folder or hub id (kind: sd3_text)."""

    name_or_path: str = "stabilityai/stable-diffusion-3.5-medium"
    """SD3 pipeline hub id or local folder (text_encoder, text_encoder_2, text_encoder_3 and their tokenizers)"""
    max_length: int = 256
    """T5 tokens per caption (the pipeline's max_sequence_length); L = clip_length + max_length + 1"""
    clip_length: int = 77
    """CLIP tokens per caption (the CLIP tokenizers' model_max_length in SD3)"""
    dtype: str = "fp32"
    """weights dtype: fp32, bf16 or fp16; outputs are always float32"""

    def __post_init__(self) -> None:
        if not isinstance(self.name_or_path, str) or not self.name_or_path:
            raise ValueError(f"text_encoder (sd3_text): name_or_path must be a non-empty string, "
                             f"got {self.name_or_path!r}")
        check_length(self.max_length, "max_length", "text_encoder (sd3_text)")
        check_length(self.clip_length, "clip_length", "text_encoder (sd3_text)")


@TEXT_ENCODERS.register("sd3_text", config=SD3TextEncoderConfig,
                        description="SD3's frozen CLIP-L + CLIP-G + T5 (tokens and pooled vector), as its pipeline")
class SD3TextEncoder(PipelineTextEncoder):
    """`forward(captions)` -> ([CLIP-L|CLIP-G padded to D ; T5 ; pooled token] (B, clip_length + max_length + 1,
    D) float32, mask all True); D = T5's d_model. Not trainable: `save_pretrained` writes only config.json."""

    what = "SD3 text encoder"

    def __init__(self, config: SD3TextEncoderConfig | None = None, **options) -> None:
        """`config`: an SD3TextEncoderConfig (or, with `options`, its keys)."""
        super().__init__(config or SD3TextEncoderConfig(**options))
        self.max_length = self.config.clip_length + self.config.max_length + 1
        self._widths: tuple[int, int] | None = None

    def widths(self) -> tuple[int, int]:
        """(D, P): T5's width and the pooled vector's (the CLIPs' projection_dim summed), read from the configs."""
        if self._widths is None:
            name = self.config.name_or_path
            clips = [load_part_config(name, self.local, sub, self.what, ("clip_text_model",)) for sub, _ in CLIPS]
            t5 = load_part_config(name, self.local, T5[0], self.what, ("t5", "umt5"))
            widths = int(t5.d_model), sum(int(c.projection_dim) for c in clips)
            clip_width = sum(int(c.hidden_size) for c in clips)
            if clip_width > widths[0] or widths[1] >= widths[0]:
                raise ValueError(f"{self.what} {name}: the CLIP states ({clip_width} wide) and the pooled vector "
                                 f"({widths[1]}) must be narrower than T5's {widths[0]}")
            self._widths = widths
        return self._widths

    @property
    def dim(self) -> int:
        """Output width D (T5's d_model, SD3's joint_attention_dim), read from the configs without loading weights."""
        return self.widths()[0]

    @property
    def pooled_dim(self) -> int:
        """Width P of the pooled vector (SD3's pooled_projection_dim)."""
        return self.widths()[1]

    def load_parts(self) -> list:
        """[CLIP-L tokenizer, CLIP-L, CLIP-G tokenizer, CLIP-G, T5 tokenizer, T5]."""
        from transformers import AutoTokenizer, CLIPTextModelWithProjection, T5EncoderModel

        self.widths()
        parts = []
        for (model_folder, tokenizer_folder), cls in zip((*CLIPS, T5), (CLIPTextModelWithProjection,) * 2
                                                         + (T5EncoderModel,)):
            tokenizer = self.part(AutoTokenizer, tokenizer_folder, tokenizer=True)
            model = self.part(cls, model_folder)
            if len(tokenizer) > model.config.vocab_size:
                raise ValueError(f"{self.what} {self.config.name_or_path}: {tokenizer_folder} has {len(tokenizer)} "
                                 f"tokens but {model_folder} only {model.config.vocab_size}")
            parts += [tokenizer, model]
        return parts

    def _ids(self, tokenizer, captions: list[str], length: int, device) -> Tensor:
        return tokenizer(captions, padding="max_length", max_length=length, truncation=True,
                         return_tensors="pt").input_ids.to(device)

    def encode(self, captions: list[str], parts: list, device: torch.device) -> tuple[Tensor, Tensor]:
        """The pipeline's encode_prompt (one image per prompt, no clip_skip), plus the pooled token."""
        states, pooled = [], []
        for tokenizer, model in (parts[0:2], parts[2:4]):
            out = model(self._ids(tokenizer, captions, self.config.clip_length, device), output_hidden_states=True)
            states.append(out.hidden_states[-2].float())
            pooled.append(out.text_embeds.float())
        t5 = parts[5](self._ids(parts[4], captions, self.config.max_length, device))[0].float()
        clip = torch.nn.functional.pad(torch.cat(states, dim=-1), (0, t5.shape[-1] - sum(s.shape[-1] for s in states)))
        emb = torch.cat([clip, t5, pooled_token(torch.cat(pooled, dim=-1), t5.shape[-1])], dim=1)
        return emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=device)
