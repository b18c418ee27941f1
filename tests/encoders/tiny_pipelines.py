"""Tiny random stand-ins of Sana's and SD3's text encoders and autoencoders, saved in diffusers' pipeline layout
(no weights reach this machine). Seeded: the same weights every call."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "red", "green", "blue", "circle", "square", "triangle", "big",
         "given", "prompt", ":", "enhance", "it"]
INSTRUCTION = "Given a prompt : enhance it : "


def word_tokenizer(directory: Path, *, template: str, model_max_length: int | None = None):
    """A word-level fast tokenizer over VOCAB (lower-cased), special tokens by `template` (e.g. "<bos> $A <eos>")."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {w: i for i, w in enumerate(VOCAB)}
    core = Tokenizer(models.WordLevel(ids, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, ids[t]) for t in ("<bos>", "<eos>") if t in template])
    extra = {"model_max_length": model_max_length} if model_max_length else {}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<bos>",
                                        eos_token="<eos>", unk_token="<unk>", **extra)
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_tiny_sd3_text(root: Path, *, t5_width: int = 48) -> Path:
    """ROOT/text_encoder(_2, _3) + tokenizer(_2, _3): two tiny CLIPTextModelWithProjection (hidden 16 and 24,
    projections 8 and 12: pooled 20 wide) and a tiny T5 encoder (d_model `t5_width`)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(0)
    for sub, hidden, proj in (("", 16, 8), ("_2", 24, 12)):
        config = CLIPTextConfig(vocab_size=len(VOCAB), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                                projection_dim=proj, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        CLIPTextModelWithProjection(config).eval().save_pretrained(root / f"text_encoder{sub}")
        word_tokenizer(root / f"tokenizer{sub}", template="<bos> $A <eos>", model_max_length=77)
    config = T5Config(vocab_size=len(VOCAB), d_model=t5_width, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    T5EncoderModel(config).eval().save_pretrained(root / "text_encoder_3")
    word_tokenizer(root / "tokenizer_3", template="$A <eos>")
    return root


def build_tiny_gemma(root: Path, *, width: int = 32) -> Path:
    """ROOT/text_encoder (a tiny Gemma2Model) + ROOT/tokenizer (adds <bos>, as Gemma's)."""
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=len(VOCAB), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                          pad_token_id=0, bos_token_id=1, eos_token_id=2)
    Gemma2Model(config).eval().save_pretrained(root / "text_encoder")
    word_tokenizer(root / "tokenizer", template="<bos> $A")
    return root


def build_tiny_sd3_vae(root: Path):
    """ROOT/vae: a tiny AutoencoderKL with SD3's layout (16 latent channels, no quant convs, scaling and shift
    factors), 2x down."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=16,
                        norm_num_groups=4, layers_per_block=1, sample_size=16, scaling_factor=1.5305,
                        shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False)
    vae.save_pretrained(root / "vae")
    return vae


def build_tiny_dc_ae(root: Path):
    """ROOT/vae: a tiny AutoencoderDC (32 latent channels, 4x down here, Sana's scaling factor)."""
    from diffusers import AutoencoderDC

    torch.manual_seed(0)
    vae = AutoencoderDC(in_channels=3, latent_channels=32, attention_head_dim=8,
                        encoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
                        decoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
                        encoder_block_out_channels=(8, 16, 32), decoder_block_out_channels=(8, 16, 32),
                        encoder_layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1),
                        encoder_qkv_multiscales=((), (), (5,)), decoder_qkv_multiscales=((), (), (5,)),
                        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407)
    vae.save_pretrained(root / "vae")
    return vae
