"""Shared plumbing for model-based reward scorers: lazy loading, device/dtype, batching, local paths.

A scorer subclass sets `key` and `default_model` and implements `_load()` (build the model from
`self.model_path`) and `_score_batch(images, captions) -> np.ndarray (B,)`. `score()` batches,
runs under no_grad on the chosen device, and returns float32 raw scores.
"""

from __future__ import annotations

import numpy as np

from mirokit.dtypes import dtype_name, dtype_named
from mirokit.sources import locate


def check_inputs(key: str, images: list, captions: list) -> None:
    """One-line errors for unequal lengths, a non-PIL image or a non-string caption (naming the item)."""
    from PIL import Image

    if len(images) != len(captions):
        raise ValueError(f"{key}: {len(images)} images but {len(captions)} captions")
    for i, (image, caption) in enumerate(zip(images, captions)):
        if not isinstance(image, Image.Image):
            raise TypeError(f"{key}: image {i} is a {type(image).__name__}, expected a PIL image")
        if not isinstance(caption, str):
            raise TypeError(f"{key}: caption {i} is a {type(caption).__name__}, expected a string")


class ModelScorer:
    """Base class of model-based scorers (see module docstring)."""

    key: str = ""
    default_model: str = ""

    def __init__(self, model: str | None = None, *, device: str = "cpu", dtype: str = "fp32",
                 batch_size: int = 32, trust_remote_code: bool = False):
        self.model_path, self.is_local = locate(model or self.default_model, self.key)
        self.device = device
        self.dtype_name = dtype_name(dtype, f"{self.key} dtype")
        self.dtype = dtype_named(dtype, f"{self.key} dtype")
        if batch_size < 1:
            raise ValueError(f"{self.key}: batch_size must be >= 1")
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self._loaded = False

    def hub_kwargs(self) -> dict:
        """Keyword arguments for transformers' from_pretrained (offline for local folders)."""
        kwargs = {"trust_remote_code": self.trust_remote_code}
        if self.is_local:
            kwargs["local_files_only"] = True
        return kwargs

    def load(self) -> ModelScorer:
        """Load the model now (otherwise it loads on the first score call)."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    def _load(self) -> None:
        raise NotImplementedError

    def _score_batch(self, images: list, captions: list[str]) -> np.ndarray:
        raise NotImplementedError

    def score(self, images: list, captions: list[str]) -> np.ndarray:
        """images: N PIL images; captions: N strings -> (N,) float32 raw scores."""
        import torch

        if len(images) != len(captions):
            raise ValueError(f"{self.key}: {len(images)} images but {len(captions)} captions")
        self.load()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                stop = start + self.batch_size
                out.append(np.asarray(self._score_batch(images[start:stop], list(captions[start:stop])),
                                      dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def describe(self) -> dict:
        """What ran: key, model, device, dtype (for run manifests)."""
        return {"key": self.key, "model": self.model_path, "device": self.device, "dtype": self.dtype_name}
