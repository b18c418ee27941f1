"""Text encoders: captions -> (embeddings (B, L, dim) float32, mask (B, L) bool).

- `TokenTextEncoder` (kind "tokens"): small trainable hash-tokenizer transformer, CPU friendly.
- `HFTextEncoder` (kind "hf_t5"): frozen transformers T5 encoder (transformers imported lazily).
- `build_text_encoder(spec)` / `load_text_encoder(dir)` rebuild either from its `spec()`.
"""

from mirokit.encoders.text import TextEncoder, build_text_encoder, load_text_encoder
from mirokit.encoders.text_hf import HFTextEncoder, HFTextEncoderConfig
from mirokit.encoders.text_tokens import TokenTextEncoder, TokenTextEncoderConfig

__all__ = [
    "HFTextEncoder",
    "HFTextEncoderConfig",
    "TextEncoder",
    "TokenTextEncoder",
    "TokenTextEncoderConfig",
    "build_text_encoder",
    "load_text_encoder",
]
