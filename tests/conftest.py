import os

import pytest
import torch

# Two cores are shared by everything on the CI machine: keep each test single-threaded.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MIRO_T2I_MISSING = ("miro-t2i (the official MIRO code, the numerical reference of the parity tests) is not installed: "
                    "pip install --no-deps miro-t2i==0.1.4 (make install does)")


def pytest_terminal_summary(terminalreporter):
    """Say plainly when the parity tests with the official code did not run (a hand install without miro-t2i)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and "miro-t2i" in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} skipped (a test file or a test each): {MIRO_T2I_MISSING}",
                                    yellow=True, bold=True)


@pytest.fixture
def tiny_generator_config():
    """A generator config small enough for unit tests (RIN, 2 rewards, 16x16 pixels)."""
    from mirokit.models import ConditioningConfig, GeneratorConfig, RINConfig

    return GeneratorConfig(
        image_channels=3, image_size=16, reward_keys=["a", "b"], text_dim=12,
        backbone=RINConfig(patch_size=2, data_dim=32, latents_dim=32, num_latents=8, num_blocks=2,
                      num_processing_layers=1, read_write_heads=4, compute_heads=4, hidden_multiple=8),
        conditioning=ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4),
        logvar_channels=16,
    )


def make_conditions(batch: int, text_dim: int = 12, length: int = 5, keys: int = 2, seed: int = 0):
    """Random text embeddings (B, L, D), a mask with padding, and rewards (B, K)."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, length, text_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[:, -2:] = False
    rewards = torch.rand(batch, keys, generator=g)
    return {"text": text, "text_mask": mask, "rewards": rewards}


TINY_T5_VOCAB = ["<pad>", "</s>", "<unk>", "a", "red", "green", "blue", "circle", "square", "triangle", "big"]


def build_tiny_vae(directory, sample_size: int = 16):
    """A tiny random diffusers AutoencoderKL (SDXL's layout: 4 latent channels, 2x down), saved like a hub
    checkpoint (seeded: the same weights every call); returns the model."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1, sample_size=sample_size).eval()
    vae.save_pretrained(directory)
    return vae


def build_tiny_vae_and_t5(root):
    """The tiny VAE at ROOT/vae and the tiny T5 at ROOT/t5 (a latent-space model's frozen parts); returns root."""
    build_tiny_vae(root / "vae")
    build_tiny_t5(root / "t5")
    return root


def build_tiny_t5(directory):
    """A tiny random T5 encoder plus a word-level tokenizer, saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_T5_VOCAB)}, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(TINY_T5_VOCAB), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    T5EncoderModel(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
