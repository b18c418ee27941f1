"""A tiny studio: a pixel-space UNet conditioned on the shapes world's three rewards (real scorers, a calibration
fitted on their scores of random images), a no-reward baseline for A/B, and the Starlette app."""

from pathlib import Path

import numpy as np
import torch

KEYS = ["world_alignment", "world_quality", "world_composition"]


def save_tiny_model(folder: Path, keys: list[str], seed: int = 0) -> Path:
    """A 3x32x32 UNet MiroPipeline with `keys` (calibrated on random images' world scores) saved to `folder`."""
    from PIL import Image

    import mirokit.world.rewards  # noqa: F401 - registers the world's scorers
    from mirokit.data.calibration import Calibration
    from mirokit.encoders import TokenTextEncoder, TokenTextEncoderConfig
    from mirokit.models import ConditioningConfig, GeneratorConfig, MiroGenerator
    from mirokit.models.unet import UNetConfig
    from mirokit.pipeline import MiroPipeline
    from mirokit.rewards.registry import build_scorer

    torch.manual_seed(seed)
    text = TokenTextEncoder(TokenTextEncoderConfig(vocab_size=64, dim=16, max_length=8, num_layers=1, num_heads=4))
    generator = MiroGenerator(GeneratorConfig(
        image_channels=3, image_size=32, reward_keys=keys, text_dim=16,
        backbone=UNetConfig(channels=[16, 32], attention_levels=[1], cond_dim=32, heads=4),
        conditioning=ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4), logvar_channels=16))
    calibration = None
    if keys:
        rng = np.random.default_rng(seed)
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(96)]
        captions = ["a photo of a red circle"] * len(images)
        calibration = Calibration.fit({k: build_scorer(k).score(images, captions) for k in keys})
    defaults = {"solver": "ab2", "steps": 3, "guidance": 3.0}
    MiroPipeline(generator, text, extra={"sampler_defaults": defaults}, calibration=calibration).save_pretrained(folder)
    return folder


def tiny_models(root: Path) -> dict:
    """{name: folder} under `root`: "miro" (the three world rewards) and "baseline" (no rewards)."""
    return {"miro": str(save_tiny_model(root / "miro", KEYS)), "baseline": str(save_tiny_model(root / "base", [], 1))}


def make_studio(models: dict, out: Path, **kwargs):
    from mirokit.pipeline import MiroPipeline
    from mirokit.studio.session import Studio

    pipes = {name: MiroPipeline.from_pretrained(path) for name, path in models.items()}
    return Studio(pipes, out, sources=models, **kwargs)
