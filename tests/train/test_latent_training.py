"""Training in a VAE latent space: on-the-fly encoding, resume, export, sampling decoded to pixels."""

import json

import torch

from mirokit.cli.main import main
from mirokit.pipeline import MiroPipeline
from mirokit.train import checkpoint as ckpt
from mirokit.train.config import load_run_config
from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics

SMALL = ["train.precision=fp32",
         "model.backbone={kind: rin, patch_size: 2, data_dim: 32, latents_dim: 32, num_latents: 8, num_blocks: 2, "
         "num_processing_layers: 1, read_write_heads: 4, compute_heads: 4, hidden_multiple: 8}",
         "model.image_size=8", "data={kind: toy, num_samples: 128}", "train.batch_size=8", "train.log_every=1",
         "train.progress=false", "train.threads=1", "optim.warmup_steps=1", "optim.total_steps=8",
         "text_encoder={kind: tokens, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}",
         "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16"]


def test_cpu_latent_config_trains_resumes_and_samples_pixels(tmp_path, capsys):
    vae = tmp_path / "vae"
    assert main(["vae", "init", "--out", str(vae), "--samples", "64", "--image-size", "16"]) == 0
    assert json.loads((vae / "latent_stats.json").read_text())["count"] == 64 * 8 * 8
    space = [f"image_space.name_or_path={vae}", f"image_space.stats={vae / 'latent_stats.json'}"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(load_run_config("cpu_latent", [*SMALL, *space, f"out_dir={straight}", "train.steps=8",
                                         "train.checkpoint_every=4"]))
    train(load_run_config("cpu_latent", [*SMALL, *space, f"out_dir={resumed}", "train.steps=4"]))
    model_dir = train(load_run_config("cpu_latent", [*SMALL, *space, f"out_dir={resumed}", "train.steps=8"]))
    # latents drawn from the moments come from (seed, step): resuming changes nothing
    final = ckpt.checkpoint_name(8)
    a = ckpt.read_tensors(straight / "checkpoints" / final, "model.")
    b = ckpt.read_tensors(resumed / "checkpoints" / final, "model.")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = read_metrics(straight)
    assert len(rows) == 8 and all(r["loss"] == r["loss"] for r in rows)
    pipe = MiroPipeline.from_pretrained(model_dir)
    assert pipe.image_space.kind == "vae" and pipe.generator.config.image_channels == 4
    images = pipe("a red circle", steps=2).images
    assert images[0].size == (16, 16)  # decoded by the VAE to full resolution


def test_model_and_image_space_must_agree(tmp_path):
    vae = tmp_path / "vae"
    assert main(["vae", "init", "--out", str(vae), "--samples", "8", "--image-size", "16"]) == 0
    cfg = load_run_config("cpu_latent", [*SMALL, f"image_space.name_or_path={vae}", f"out_dir={tmp_path / 'r'}",
                                         f"image_space.stats={vae / 'latent_stats.json'}", "model.image_channels=3",
                                         "train.steps=1"])
    try:
        train(cfg)
    except ValueError as err:
        assert f"model.image_channels is 3 but the VAE latent space of {vae.resolve()} has 4 channels" in str(err)
    else:
        raise AssertionError("a channel mismatch must be a one-line error")
