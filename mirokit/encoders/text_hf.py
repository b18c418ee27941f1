"""Frozen T5 encoder from transformers (e.g. FLAN-T5-XL, as in the official MIRO).

The model is loaded lazily (first forward, first access to `dim`, or `.load()`) and kept out of
the module tree, so a generator that holds this encoder neither trains nor saves the T5 weights;
it follows the encoder's device on each call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from mirokit.dtypes import dtype_name, dtype_named
from mirokit.encoders.hub import load_pretrained
from mirokit.encoders.text import TEXT_ENCODERS, TextEncoder, TextEncoderConfig, check_captions
from mirokit.sources import locate

_TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model")
@dataclass(kw_only=True)
class HFTextEncoderConfig(TextEncoderConfig):
    """Which T5 encoder to load and how (kind: hf_t5)."""

    name_or_path: str
    """Hub id (e.g. "google/flan-t5-xl") or local folder with config.json, weights and tokenizer."""
    max_length: int = 128
    """Tokens per caption L (padded/truncated; T5 appends </s>)."""
    dtype: str = "fp32"
    """Weights dtype: fp32, bf16 or fp16; outputs are always float32."""

    def __post_init__(self) -> None:
        if not isinstance(self.name_or_path, str) or not self.name_or_path:
            raise ValueError(f"HFTextEncoder: name_or_path must be a non-empty string, got {self.name_or_path!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
            raise ValueError(f"HFTextEncoder: max_length must be a positive int, got {self.max_length!r}")
        self.dtype = dtype_name(self.dtype, "HFTextEncoder dtype")


@TEXT_ENCODERS.register("hf_t5", config=HFTextEncoderConfig, description="frozen transformers T5 encoder")
class HFTextEncoder(TextEncoder):
    """Frozen `transformers.T5EncoderModel` + `AutoTokenizer`.

    `forward(captions)` -> (last_hidden_state (B, max_length, d_model) float32, mask (B, max_length)
    bool from the tokenizer's attention mask, with mask[:, 0] forced True); padded positions are
    zero. Not trainable: `save_pretrained` writes only config.json.
    """

    def __init__(self, config: HFTextEncoderConfig | str, **options) -> None:
        """`config`: an HFTextEncoderConfig, or a hub id / folder with `max_length=`, `dtype=` options."""
        super().__init__()
        if not isinstance(config, HFTextEncoderConfig):
            config = HFTextEncoderConfig(name_or_path=str(config), **options)
        self.config = replace(config)
        # a local folder is stored as an absolute path: it survives a change of working dir
        self.config.name_or_path, self.local = locate(self.config.name_or_path, "text encoder")
        self.max_length = self.config.max_length
        self.trainable = False
        self._dim: int | None = None
        # Kept in a plain list so nn.Module does not register (and save/optimise) the T5 weights.
        self._loaded: list = []
        self.weights_dtype: torch.dtype | None = None  # set by to_dtype: replaces config.dtype for this session
        # Zero-size buffer that tracks where `.to(device)` put this encoder.
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    def _check_local_folder(self, *, tokenizer: bool) -> None:
        """One-line errors for a local folder lacking config.json or (if asked) a tokenizer file."""
        if not self.local:
            return
        folder = Path(self.config.name_or_path)
        if not (folder / "config.json").is_file():
            raise ValueError(f"text encoder folder {folder} has no config.json")
        # transformers 5 silently builds an empty T5 tokenizer when a folder has no vocabulary.
        if tokenizer and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
            raise ValueError(f"text encoder folder {folder} has no tokenizer file ({', '.join(_TOKENIZER_FILES)})")

    def _from_pretrained(self, cls, **kwargs):
        self._check_local_folder(tokenizer=False)
        return load_pretrained(cls, self.config.name_or_path, self.local, "text encoder", **kwargs)

    @property
    def dim(self) -> int:
        """Output width (the T5 `d_model`), read from the model config without loading weights."""
        if self._dim is None:
            from transformers import AutoConfig

            config = self._from_pretrained(AutoConfig)
            if not hasattr(config, "d_model"):
                raise ValueError(f"text encoder {self.config.name_or_path} is not a T5 model (no d_model)")
            self._dim = int(config.d_model)
        return self._dim

    def load(self) -> HFTextEncoder:
        """Load tokenizer and frozen model now (no-op if loaded); returns self."""
        if self._loaded:
            return self
        from transformers import AutoTokenizer, T5EncoderModel

        name = self.config.name_or_path
        self._check_local_folder(tokenizer=True)
        tokenizer = self._from_pretrained(AutoTokenizer)
        if tokenizer.pad_token_id is None:
            raise ValueError(f"tokenizer of text encoder {name} has no pad token")
        tokenizer.padding_side = "right"
        model = self._from_pretrained(T5EncoderModel, dtype=self.weights_dtype or dtype_named(self.config.dtype))
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(
                f"text encoder {name}: tokenizer has {len(tokenizer)} tokens but the model only "
                f"{model.config.vocab_size}; they do not belong together"
            )
        model.eval().requires_grad_(False)
        self._dim = int(model.config.d_model)
        self._loaded[:] = [tokenizer, model]
        return self

    def to_dtype(self, dtype: torch.dtype) -> HFTextEncoder:
        """Hold the T5 weights in `dtype` (when loaded, and from then on; the stored spec is unchanged); outputs
        stay float32. Returns self."""
        self.weights_dtype = dtype
        if self._loaded:
            self._loaded[1].to(dtype)
        return self

    def forward(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Encode B captions -> (embeddings (B, L, d_model) float32, mask (B, L) bool), L == max_length."""
        captions = check_captions(captions)
        self.load()
        tokenizer, model = self._loaded
        device = self._device_anchor.device
        if not captions:
            return torch.zeros(0, self.max_length, self.dim, device=device), torch.zeros(
                0, self.max_length, dtype=torch.bool, device=device
            )
        if model.device != device:
            model.to(device)
        tokens = tokenizer(
            captions,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        ids = tokens["input_ids"].to(device)
        mask = tokens["attention_mask"].to(device).bool()
        mask[:, 0] = True  # contract: one valid token even if a tokenizer emits none for ""
        # no_grad, not inference_mode: the output feeds trainable layers in the generator.
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return hidden.float() * mask.unsqueeze(-1), mask
