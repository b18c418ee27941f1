"""Text-encoder contract, registry and HF-style persistence.

Every encoder maps a list of captions to `(embeddings (B, L, dim) float32, mask (B, L) bool)`
with L == max_length and mask[:, 0] True (so even "" has one valid token). Padded positions of
the embeddings are exactly zero. `spec()` is a JSON dict with a "kind" from which
`build_text_encoder` rebuilds the same (untrained) encoder; `save_pretrained` writes it as
config.json, plus model.safetensors for trainable encoders.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch
from torch import Tensor, nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# kind -> "module:Class"; imported on demand so that `import mirokit.encoders` stays light
# (the HF encoder imports transformers only when it loads a model).
_KINDS = {
    "tokens": "mirokit.encoders.text_tokens:TokenTextEncoder",
    "hf_t5": "mirokit.encoders.text_hf:HFTextEncoder",
}


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

    Subclasses set `kind` (class attribute), and `dim`, `max_length`, `trainable`; they implement
    `forward`, `spec` and the classmethod `from_spec(spec)`.
    """

    kind: str = ""
    dim: int
    max_length: int
    trainable: bool

    def forward(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Encode B captions -> (embeddings (B, L, dim) float32, mask (B, L) bool), L == max_length."""
        raise NotImplementedError

    def spec(self) -> dict:
        """JSON-serialisable dict with "kind" that rebuilds this encoder via `build_text_encoder`."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: dict) -> TextEncoder:
        """Build from a spec dict without its "kind" entry (keys already checked by the caller)."""
        raise NotImplementedError

    @classmethod
    def spec_keys(cls) -> tuple[list[str], list[str]]:
        """(required keys, optional keys) accepted in this kind's spec, besides "kind"."""
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> None:
        """Write directory/config.json (the spec) and, if trainable, directory/model.safetensors."""
        from safetensors.torch import save_file

        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.spec(), indent=2, sort_keys=True) + "\n")
        if self.trainable:
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})


def _encoder_class(kind: str) -> type[TextEncoder]:
    module_name, class_name = _KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_text_encoder(spec: dict) -> TextEncoder:
    """Build an (untrained) encoder from `spec` = {"kind": ..., **options}.

    Raises a one-line ValueError for a missing/unknown kind, unknown or missing keys.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"text encoder spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown text encoder kind {kind!r}; known kinds: {', '.join(sorted(_KINDS))}")
    cls = _encoder_class(kind)
    required, optional = cls.spec_keys()
    options = {k: v for k, v in spec.items() if k != "kind"}
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)} in text encoder spec of kind {kind!r}; "
            f"known: {', '.join(sorted(required + optional))}"
        )
    missing = [k for k in required if k not in options]
    if missing:
        raise ValueError(f"text encoder spec of kind {kind!r} is missing {', '.join(missing)}")
    return cls.from_spec(options)


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
