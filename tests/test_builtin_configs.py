"""Every built-in run config parses, and the official one builds the ~360M network it describes."""

import pytest

from mirokit.models import MiroGenerator
from mirokit.train.config import BUILTIN_CONFIGS, load_run_config


@pytest.mark.parametrize("name", sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml")))
def test_builtin_config_parses(name):
    load_run_config(name)


def test_miro_official_is_the_paper_setup():
    cfg = load_run_config("miro_official")
    assert cfg.train.batch_size == 1024 and cfg.optim.name == "lamb" and cfg.optim.lr == 1e-3
    assert cfg.optim.warmup_steps == 5000 and cfg.train.ema_decay == 0.9999 and cfg.flow.self_cond_prob == 0.9
    assert cfg.data.kind == "shards" and cfg.data.caption_mix == 0.5 and cfg.image_space.kind == "vae"
    model_cfg = cfg.model
    model_cfg.text_dim = 2048  # FLAN-T5-XL's width (the config reads it from the encoder)
    params = sum(p.numel() for p in MiroGenerator(model_cfg).parameters())
    assert 3.4e8 < params < 3.8e8, params


def test_demo_world_config_trains_on_the_demo_world():
    from dataclasses import fields

    from mirokit.world.sampling import demo_world_config

    cfg = load_run_config("demo_world")
    expected = demo_world_config(cfg.data.seed)
    for f in fields(expected):
        ours, theirs = getattr(cfg.data.world, f.name), getattr(expected, f.name)
        assert (tuple(ours) if isinstance(ours, list) else ours) == theirs, f.name
    assert cfg.image_space.kind == "world_ae" and cfg.model.image_channels == 4
