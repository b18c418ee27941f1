"""Text-encoder contract, config base, registry and HF-style persistence.

Every encoder maps a list of captions to `(embeddings (B, L, dim) float32, mask (B, L) bool)`
with L == max_length and mask[:, 0] True (so even "" has one valid token). Padded positions of
the embeddings are exactly zero. An encoder is built from its config (`{kind: tokens, ...}` or
`{kind: hf_t5, ...}`, a `TextEncoderConfig` subclass registered in `TEXT_ENCODERS`);
`save_pretrained` writes that config as config.json, plus model.safetensors for trainable encoders.
A new encoder kind is one module in `mirokit/encoders/` that registers itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mirokit.config import ConfigError, KindConfig, from_dict, to_dict
from mirokit.registry import Registry

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

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


class TextEncoder(nn.Module):
    """Abstract text encoder: `forward(captions) -> (emb (B, L, dim) float32, mask (B, L) bool)`.

    Subclasses are registered with `@TEXT_ENCODERS.register(kind, config=TheirConfig)`, take that
    config as their only constructor argument, keep it as `self.config`, and set `dim`,
    `max_length` and `trainable`.
    """

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

    def save_pretrained(self, directory: str | Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """Write directory/config.json and, if trainable, directory/model.safetensors (this encoder's
        weights, or `state_dict` when given, e.g. EMA weights; the live module is not changed)."""
        weights = None
        if self.trainable:
            weights = self.state_dict() if state_dict is None else state_dict
        save_text_encoder(directory, self.spec(), weights)


def save_text_encoder(directory: str | Path, spec: dict, state_dict: dict[str, Tensor] | None) -> None:
    """Write an encoder folder from its spec (config.json) and weights (model.safetensors, if given)."""
    from safetensors.torch import save_file

    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_NAME).write_text(json.dumps(spec, indent=2) + "\n")
    if state_dict is not None:
        state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})


def build_text_encoder(cfg: TextEncoderConfig | dict) -> TextEncoder:
    """Build an (untrained) encoder from its config or spec dict `{"kind": ..., **options}`.

    A missing or unknown kind, an unknown or missing key raise a one-line ValueError.
    """
    if isinstance(cfg, dict):
        cfg = from_dict(TextEncoderConfig, cfg, where="text_encoder.")
    elif not isinstance(cfg, TextEncoderConfig):
        raise ConfigError(f"text encoder config must be a mapping, got {type(cfg).__name__}")
    return TEXT_ENCODERS.build(cfg)


def load_text_encoder(directory: str | Path) -> TextEncoder:
    """Rebuild an encoder saved by `save_pretrained`: config.json, plus model.safetensors if trainable.

    Missing folder/config, bad JSON, missing or mismatched weights raise a one-line ValueError.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ValueError(f"text encoder directory not found: {directory}")
    config = directory / CONFIG_NAME
    if not config.is_file():
        raise ValueError(f"text encoder directory {directory} has no {CONFIG_NAME}")
    try:
        spec = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config} is not valid JSON: {err}") from None
    encoder = build_text_encoder(spec)
    weights = directory / WEIGHTS_NAME
    if encoder.trainable:
        if not weights.is_file():
            raise ValueError(f"text encoder in {directory} is trainable but has no {WEIGHTS_NAME}")
        _load_weights(encoder, weights)
    return encoder


def _load_weights(module: nn.Module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read {path}: {str(err).splitlines()[0] if str(err) else err}") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"weights in {path} do not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"weights in {path} do not match the config: {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    with torch.no_grad():
        module.load_state_dict(state, strict=True)
