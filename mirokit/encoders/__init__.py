"""Encoders: text encoders (captions -> token embeddings) and image spaces (where the generator models images).

- `TokenTextEncoder` (kind "tokens"): small trainable hash-tokenizer transformer, CPU friendly.
- `HFTextEncoder` (kind "hf_t5"): frozen transformers T5 encoder (transformers imported lazily).
- `SanaTextEncoder` (kind "sana_text", text_gemma.py): Sana's Gemma decoder as its pipeline encodes prompts.
- `SD3TextEncoder` (kind "sd3_text", text_sd3.py): SD3's CLIP-L + CLIP-G + T5 as its pipeline, with the pooled
  vector as a last marked token (the SD3 family of the `diffusers` backbone reads it).
- `build_text_encoder(cfg)` / `TextEncoder.from_pretrained(dir)`; the registry `TEXT_ENCODERS`.
- `PixelSpace` (kind "pixels"); `VAESpace` (kind "vae", SDXL's VAE); `DiffusersVAESpace` (kind "diffusers_vae",
  vae_diffusers.py: SD3's VAE, Sana's DC-AE, normalised as their pipelines); `build_image_space(cfg)`; the registry
  `IMAGE_SPACES`.
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
