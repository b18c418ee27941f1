"""Training with a frozen transformers T5 encoder (loaded from a local folder) and sampling from it."""

import json

import torch
from conftest import build_tiny_t5
from runs import TINY_RIN, tiny_run

from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, generate
from mirokit.train.loop import train


def test_train_and_sample_with_a_local_t5(tmp_path):
    t5 = build_tiny_t5(tmp_path / "t5")
    base = [o for o in TINY_RIN if not o.startswith("text_encoder=")]
    out = train(tiny_run(tmp_path / "run", f"text_encoder={{kind: hf_t5, name_or_path: {t5}, max_length: 8}}",
                         "model.reward_keys=[brightness]", "train.steps=3", "train.batch_size=4",
                         "train.checkpoint_every=0", base=base))
    assert json.loads((out / "text_encoder" / "config.json").read_text())["kind"] == "hf_t5"
    assert not (out / "text_encoder" / "model.safetensors").exists()  # frozen: referenced, not copied
    pipe = MiroPipeline.from_pretrained(out)
    assert pipe.generator.config.text_dim == 32  # taken from the T5 config
    x = generate(pipe, ["a red circle", "a blue square"], SamplingSettings(steps=2))
    assert x.shape == (2, 3, 16, 16) and torch.isfinite(x).all()
