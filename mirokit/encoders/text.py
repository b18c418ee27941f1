"""Text-encoder contract, config base, registry and HF-style persistence.

Every encoder maps a list of captions to `(embeddings (B, L, dim) float32, mask (B, L) bool)`
with L == max_length and mask[:, 0] True (so even "" has one valid token). Padded positions of
the embeddings are exactly zero. An encoder is built from its config (`{kind: tokens, ...}` or
`{kind: hf_t5, ...}`, a `TextEncoderConfig` subclass registered in `TEXT_ENCODERS`);
`save_pretrained` writes that config as config.json, plus model.safetensors for trainable encoders, and
`TextEncoder.from_pretrained(dir)` reads them back (mirokit.pretrained).
A new encoder kind is one module in `mirokit/encoders/` that registers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mirokit.config import ConfigError, KindConfig, from_dict, to_dict
from mirokit.pretrained import PretrainedMixin
from mirokit.registry import Registry

TEXT_ENCODERS: Registry = Registry("text encoder", "mirokit.encoders")
"""kind -> encoder class, called as `cls(cfg)`."""


@dataclass(kw_only=True)
class TextEncoderConfig(KindConfig):
    """Config of a text encoder; `kind` selects the registered class (tokens, hf_t5, ...)."""

    registry: ClassVar[Any] = TEXT_ENCODERS


def pad_tokens(t: Tensor, length: int) -> Tensor:
    """t: (B, L, ...) text states or (B, L) mask -> (B, length, ...), padded at the end with zeros / False."""
    if t.shape[1] >= length:
        return t
    pad = torch.zeros((t.shape[0], length - t.shape[1], *t.shape[2:]), dtype=t.dtype, device=t.device)
    return torch.cat([t, pad], dim=1)


def check_captions(captions: object) -> list[str]:
    """Validate a caption list; a non-list or non-string item raises a ValueError naming it."""
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
        raise ValueError(f"text encoder expects a list of captions, got {type(captions).__name__}")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise ValueError(f"caption {i} is not a string ({type(caption).__name__}: {caption!r:.60})")
    return list(captions)


class TextEncoder(PretrainedMixin, nn.Module):
    """Abstract text encoder: `forward(captions) -> (emb (B, L, dim) float32, mask (B, L) bool)`.

    Subclasses are registered with `@TEXT_ENCODERS.register(kind, config=TheirConfig)`, take that
    config as their only constructor argument, keep it as `self.config`, and set `dim`,
    `max_length` and `trainable`. `TextEncoder.from_pretrained(dir)` rebuilds whichever kind dir holds.
    """

    config_class = TextEncoderConfig
    pretrained_name = "text encoder"

    config: TextEncoderConfig
    dim: int
    max_length: int
    trainable: bool

    def forward(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Encode B captions -> (embeddings (B, L, dim) float32, mask (B, L) bool), L == max_length."""
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        """Repeated units of a trainable encoder (for sharding / checkpointing / compile); none by default."""
        return []

    def spec(self) -> dict:
        """The config as a JSON dict with "kind" first: `build_text_encoder(spec)` rebuilds this encoder."""
        return to_dict(self.config)

    # -- persistence (mirokit.pretrained): config.json = the spec, model.safetensors only if trainable --------
    @classmethod
    def from_config(cls, config: TextEncoderConfig) -> TextEncoder:
        """The registered encoder class of `config.kind`, built from `config`."""
        return TEXT_ENCODERS.build(config)

    @property
    def saves_weights(self) -> bool:
        """Only a trainable encoder writes its weights (a frozen one reloads them from its name_or_path)."""
        return self.trainable


def build_text_encoder(cfg: TextEncoderConfig | dict) -> TextEncoder:
    """Build an (untrained) encoder from its config or spec dict `{"kind": ..., **options}`.

    A missing or unknown kind, an unknown or missing key raise a one-line ValueError.
    """
    if isinstance(cfg, dict):
        cfg = from_dict(TextEncoderConfig, cfg, where="text_encoder.")
    elif not isinstance(cfg, TextEncoderConfig):
        raise ConfigError(f"text encoder config must be a mapping, got {type(cfg).__name__}")
    return TEXT_ENCODERS.build(cfg)
