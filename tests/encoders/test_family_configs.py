"""The built-in sana_miro / sd3_miro configs hold the paper's recipe, and build (generator, text encoder, image
space) and sample when their hub ids are replaced by tiny random pipeline folders (no weights reach this machine)."""

from dataclasses import replace

import pytest
import torch
from diffusers import SanaTransformer2DModel, SD3Transformer2DModel
from tiny_pipelines import build_tiny_dc_ae, build_tiny_gemma, build_tiny_sd3_text, build_tiny_sd3_vae

from mirokit.encoders import build_image_space, build_text_encoder
from mirokit.models import MiroGenerator
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, generate
from mirokit.train.config import load_run_config

PAPER_KEYS = ["clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score", "hpsv2_score",
              "vqa_score", "sciscore_score"]
FAMILIES = {
    "sd3": ("stabilityai/stable-diffusion-3.5-medium", SD3Transformer2DModel,
            {"sample_size": 8, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 1,
             "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 48,
             "caption_projection_dim": 16, "pooled_projection_dim": 20, "pos_embed_max_size": 8},
            (build_tiny_sd3_text, build_tiny_sd3_vae), 16),
    "sana": ("Efficient-Large-Model/Sana_600M_1024px_diffusers", SanaTransformer2DModel,
             {"in_channels": 32, "out_channels": 32, "num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 1,
              "num_cross_attention_heads": 2, "cross_attention_head_dim": 8, "cross_attention_dim": 16,
              "caption_channels": 32, "sample_size": 8, "patch_size": 1},
             (build_tiny_gemma, build_tiny_dc_ae), 32),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_config_is_the_papers_recipe_on_the_family(family):
    hub_id, _, _, _, channels = FAMILIES[family]
    cfg = load_run_config(f"{family}_miro")
    assert cfg.model.reward_keys == PAPER_KEYS and cfg.model.parametrisation == "rectified_flow"
    assert cfg.model.image_channels == channels and cfg.model.image_size * {"sd3": 8, "sana": 32}[family] == 256
    backbone = cfg.model.backbone
    assert (backbone.kind, backbone.name_or_path, backbone.subfolder, backbone.family, backbone.pretrained) == (
        "diffusers", hub_id, "transformer", family, True)
    assert cfg.text_encoder.kind == f"{family}_text" and cfg.text_encoder.name_or_path == hub_id
    assert cfg.image_space.kind == "diffusers_vae" and cfg.image_space.name_or_path == hub_id
    assert cfg.data.kind == "shards" and cfg.data.caption_mix == 0.5
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_steps, cfg.optim.grad_clip) == (
        "lamb", 1e-3, 0.01, 5000, 2.0)
    assert (cfg.train.batch_size, cfg.train.steps, cfg.train.ema_decay) == (1024, 500000, 0.9999)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_config_builds_and_samples_on_tiny_local_parts(family, tmp_path):
    hub_id, transformer_cls, transformer_config, builders, channels = FAMILIES[family]
    torch.manual_seed(0)
    transformer_cls(**transformer_config).save_pretrained(tmp_path / "transformer")
    for build in builders:
        build(tmp_path)
    folder = str(tmp_path)
    cfg = load_run_config(f"{family}_miro", [f"model.backbone.name_or_path={folder}",
                                             f"text_encoder.name_or_path={folder}", "text_encoder.max_length=8",
                                             f"image_space.name_or_path={folder}", "model.image_size=8"])
    encoder = build_text_encoder(cfg.text_encoder)
    space = build_image_space(cfg.image_space)
    generator = MiroGenerator(replace(cfg.model, text_dim=encoder.dim)).eval()  # as the trainer builds it
    assert space.data_shape(channels, 8) == (2 * channels, 8)
    pipe = MiroPipeline(generator, encoder, space)
    pipe.save_pretrained(tmp_path / "saved")
    loaded = MiroPipeline.from_pretrained(tmp_path / "saved")
    assert loaded.text_encoder.spec() == encoder.spec() and loaded.image_space.spec() == space.spec()
    latents = generate(loaded, ["a red circle"], SamplingSettings(steps=2, guidance=1.0))
    assert latents.shape == (1, channels, 8, 8) and torch.isfinite(latents).all()
    images = loaded.image_space.to_pil(latents)
    assert images[0].size == (8 * space.downsample(),) * 2
