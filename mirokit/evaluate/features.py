"""Image feature extractors for `mirokit eval diversity`: a registry, and the built-in `clip` kind.

A feature extractor turns images into vectors whose cosine similarity says how alike two images are::

    extractor = FEATURES.get("clip")(model="openai/clip-vit-large-patch14")   # keyword options
    feats = extractor.features(images, records)     # images (N, H, W, 3) uint8 -> (N, D) float64

An extractor may also parse discrete attributes (what `eval diversity` reports the entropy of)::

    extractor.attributes(images, records)  # -> N dicts {attribute name: [value per object, ...]}

listing, per image, only the attributes that the image's prompt record leaves free (e.g. the colour of an
object the prompt names without a colour). Built in: `clip` (CLIP image embeddings through transformers).
Plugins register more: the shapes world registers `world_ae` (its autoencoder's latents) and `world_scene`
(the detector's parsed scene, with attributes) in mirokit/world/diversity.py.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mirokit.registry import Registry

FEATURES: Registry = Registry("feature extractor", "mirokit.evaluate")
"""name -> feature extractor class (constructed with keyword options)"""


class FeatureExtractor(Protocol):
    """The contract of a registered feature extractor (`attributes` is optional)."""

    name: str

    def features(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images: (N, H, W, 3) uint8, records: N prompt records -> (N, D) float64 features."""


def build_extractor(spec: str, options: dict | None = None):
    """A registered extractor by kind (options: its keyword options; unknown kinds: one-line error)."""
    cls = FEATURES.get(spec)
    try:
        return cls(**(options or {}))
    except TypeError as err:  # an option the extractor does not take
        raise ValueError(f"feature extractor {spec!r}: {err}") from None


@FEATURES.register("clip", description="CLIP image embeddings (transformers CLIPModel, by hub id or folder)")
class ClipFeatures:
    """CLIP image embeddings (the projection CLIPModel.get_image_features returns), one per image.

    model: hub id or local folder of a CLIPModel with its image processor; device: torch device;
    batch_size: images per forward pass.
    """

    name = "clip"

    def __init__(self, *, model: str = "openai/clip-vit-large-patch14", device: str = "cpu", batch_size: int = 64):
        import torch
        from transformers import AutoImageProcessor, CLIPModel

        self.device = torch.device(device)
        self.model = CLIPModel.from_pretrained(model).to(self.device).eval()
        self.processor = AutoImageProcessor.from_pretrained(model)
        self.batch_size = int(batch_size)

    def features(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images: (N, H, W, 3) uint8 -> (N, projection_dim) float64 (not normalised)."""
        import torch
        from PIL import Image

        out = []
        for start in range(0, len(images), self.batch_size):
            pils = [Image.fromarray(a) for a in images[start:start + self.batch_size]]
            pixels = self.processor(images=pils, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.no_grad():
                emb = self.model.get_image_features(pixel_values=pixels)
            emb = getattr(emb, "pooler_output", emb)  # newer transformers may return an output object
            out.append(emb.float().cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, self.model.config.projection_dim))
