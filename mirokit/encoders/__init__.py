"""Encoders: text encoders (captions -> token embeddings) and image spaces (where the generator models images).

- `TokenTextEncoder` (kind "tokens"): small trainable hash-tokenizer transformer, CPU friendly.
- `HFTextEncoder` (kind "hf_t5"): frozen transformers T5 encoder (transformers imported lazily).
- `build_text_encoder(cfg)` / `TextEncoder.from_pretrained(dir)`; the registry `TEXT_ENCODERS`.
- `PixelSpace` (kind "pixels"); `build_image_space(cfg)`; the registry `IMAGE_SPACES`.
"""

from mirokit.encoders.pixel import IMAGE_SPACES, ImageSpace, ImageSpaceConfig, PixelSpace, build_image_space
from mirokit.encoders.text import TEXT_ENCODERS, TextEncoder, TextEncoderConfig, build_text_encoder
from mirokit.encoders.text_hf import HFTextEncoder, HFTextEncoderConfig
from mirokit.encoders.text_tokens import TokenTextEncoder, TokenTextEncoderConfig

__all__ = [
    "HFTextEncoder", "HFTextEncoderConfig", "IMAGE_SPACES", "ImageSpace", "ImageSpaceConfig", "PixelSpace",
    "TEXT_ENCODERS", "TextEncoder", "TextEncoderConfig", "TokenTextEncoder", "TokenTextEncoderConfig",
    "build_image_space", "build_text_encoder",
]
