"""Tiny run configs shared by the training tests."""

from mirokit.train.config import load_run_config

TINY_RIN = [
    "model.image_channels=3", "model.image_size=16",
    "model.backbone={kind: rin, patch_size: 2, data_dim: 32, latents_dim: 32, num_latents: 8, num_blocks: 2, "
    "num_processing_layers: 1, read_write_heads: 4, compute_heads: 4, hidden_multiple: 8}",
    "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
    "text_encoder={kind: tokens, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}",
]
TINY_UNET = [
    "model.image_channels=3", "model.image_size=16",
    "model.backbone={kind: unet, channels: [16, 32], attention_levels: [1], cond_dim: 64, heads: 4}",
    "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
    "text_encoder={kind: tokens, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}",
]


def tiny_run(out_dir, *overrides, base=TINY_RIN):
    """A RunConfig on the toy dataset at 16x16, no progress bar, writing into out_dir."""
    return load_run_config(None, [*base, f"out_dir={out_dir}", "train.progress=false",
                                  "data={kind: toy, num_samples: 256}", "train.threads=1", "loader.num_workers=0", *overrides])
