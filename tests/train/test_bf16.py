"""bf16 on CPU: training stays as close to fp32 as fp32 runs are to each other, and bf16 sampling draws the
image fp32 draws. Tolerances come from noise measured in the same test, not from one CPU."""

import numpy as np
import torch
from runs import tiny_run

from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics

UNET = ["model.backbone={kind: unet, channels: [16, 32], attention_levels: [1], cond_dim: 32, heads: 4}",
        "train.steps=24", "train.batch_size=16", "train.log_every=1", "optim.warmup_steps=2",
        "model.reward_keys=[brightness,size]"]


def _losses(tmp_path, name, *overrides):
    train(tiny_run(tmp_path / name, *UNET, *overrides))
    return np.array([r["loss"] for r in read_metrics(tmp_path / name)])


def test_bf16_training_follows_the_fp32_loss_curve(tmp_path):
    fp32 = _losses(tmp_path, "fp32", "train.precision=fp32", "train.seed=0")
    other_seed = _losses(tmp_path, "fp32_seed1", "train.precision=fp32", "train.seed=1")
    bf16 = _losses(tmp_path, "bf16", "train.precision=bf16", "train.seed=0")
    noise = np.abs(other_seed - fp32).mean()  # how far a correct fp32 run lands: another seed
    assert noise > 0 and np.isfinite(bf16).all()
    assert np.abs(bf16 - fp32).mean() < 0.5 * noise, (np.abs(bf16 - fp32).mean(), noise)
    assert bf16[-4:].mean() < bf16[:4].mean()  # and it learns


def test_bf16_sampling_draws_the_fp32_image(tmp_path):
    from mirokit.pipeline import MiroPipeline

    train(tiny_run(tmp_path / "run", *UNET, "train.steps=8"))
    pipe = MiroPipeline.from_pretrained(tmp_path / "run" / "model")
    kwargs = {"num_images": 2, "steps": 6, "solver": "euler", "guidance": 3.0}
    fp32 = np.stack([np.asarray(im, dtype=np.float32) for im in pipe("a red circle", seed=0, **kwargs).images])
    other = np.stack([np.asarray(im, dtype=np.float32) for im in pipe("a red circle", seed=1, **kwargs).images])
    pipe.to(dtype=torch.bfloat16)
    bf16 = np.stack([np.asarray(im, dtype=np.float32) for im in pipe("a red circle", seed=0, **kwargs).images])
    seed_difference = np.abs(other - fp32).mean()  # what a different image looks like, in pixel levels
    assert np.abs(bf16 - fp32).mean() < 0.2 * seed_difference, (np.abs(bf16 - fp32).mean(), seed_difference)
