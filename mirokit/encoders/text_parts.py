"""The common part of the frozen text encoders read from a diffusers pipeline's folders (Sana's Gemma, SD3's
CLIP-L + CLIP-G + T5): the pipeline by folder or hub id, lazy loading kept out of the module tree (a generator
holding the encoder neither trains nor saves its weights), the weights' dtype, the device the encoder follows."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from mirokit.dtypes import dtype_name, dtype_named
from mirokit.encoders.hub import check_part, load_pretrained
from mirokit.encoders.text import TextEncoder, TextEncoderConfig, check_captions
from mirokit.sources import locate


def check_length(value: object, key: str, where: str) -> None:
    """A positive int or a one-line ValueError naming `where`.`key`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {key} must be a positive int, got {value!r}")


class PipelineTextEncoder(TextEncoder):
    """A frozen text encoder made of parts of a diffusers pipeline folder (`config.name_or_path`, a folder or a
    hub id, `config.dtype`). Subclasses implement `load_parts() -> list` (tokenizers and models, in their order)
    and `encode(captions, parts, device)`; `forward` loads on first use and returns float32."""

    what = "text encoder"

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = replace(config)
        self.config.dtype = dtype_name(self.config.dtype, f"text_encoder.dtype ({self.config.kind})")
        # a local folder is stored as an absolute path: it survives a change of working dir
        self.config.name_or_path, self.local = locate(self.config.name_or_path, self.what)
        self.trainable = False
        self._loaded: list = []  # a plain list: nn.Module does not register (save, optimise) the frozen weights
        self.weights_dtype: torch.dtype | None = None  # set by to_dtype: replaces config.dtype for this session
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The dtype the weights are loaded in."""
        return self.weights_dtype or dtype_named(self.config.dtype)

    def part(self, cls, subfolder: str, *, tokenizer: bool = False, **kwargs):
        """`cls.from_pretrained(name_or_path, subfolder=...)` with one-line errors; a model is frozen and in eval
        mode, in the weights' dtype."""
        check_part(self.config.name_or_path, self.local, subfolder, self.what, tokenizer=tokenizer)
        if not tokenizer:
            kwargs["dtype"] = self.torch_dtype
        loaded = load_pretrained(cls, self.config.name_or_path, self.local, self.what, subfolder=subfolder, **kwargs)
        if tokenizer:
            loaded.padding_side = "right"
            return loaded
        return loaded.eval().requires_grad_(False)

    def load_parts(self) -> list:
        """Tokenizers and models, loaded (what `encode` receives)."""
        raise NotImplementedError

    def encode(self, captions: list[str], parts: list, device: torch.device) -> tuple[Tensor, Tensor]:
        """B >= 1 captions -> (embeddings (B, max_length, dim), mask (B, max_length) bool), any float dtype."""
        raise NotImplementedError

    def models(self) -> list:
        """The loaded torch modules among the parts."""
        return [p for p in self._loaded if isinstance(p, torch.nn.Module)]

    def load(self) -> PipelineTextEncoder:
        """Load tokenizers and frozen models now (no-op if loaded); returns self."""
        if not self._loaded:
            self._loaded[:] = self.load_parts()
        return self

    def to_dtype(self, dtype: torch.dtype) -> PipelineTextEncoder:
        """Hold the weights in `dtype` (when loaded, and from then on; the stored spec is unchanged); outputs stay
        float32. Returns self."""
        self.weights_dtype = dtype
        for model in self.models():
            model.to(dtype)
        return self

    def forward(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Encode B captions -> (embeddings (B, L, dim) float32, mask (B, L) bool), L == max_length."""
        captions = check_captions(captions)
        self.load()
        device = self._device_anchor.device
        if not captions:
            return (torch.zeros(0, self.max_length, self.dim, device=device),
                    torch.zeros(0, self.max_length, dtype=torch.bool, device=device))
        for model in self.models():
            if model.device != device:
                model.to(device)
        # no_grad, not inference_mode: the output feeds trainable layers in the generator.
        with torch.no_grad():
            emb, mask = self.encode(captions, self._loaded, device)
        mask = mask.to(device).bool()
        mask[:, 0] = True  # contract: one valid token even if a tokenizer emits none for ""
        return emb.float() * mask.unsqueeze(-1), mask
