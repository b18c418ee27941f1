"""`mirokit encode` with Sana's and SD3's own text encoders and autoencoders (tiny random stand-ins in a pipeline
folder) -> encoded shards the `shards` data source reads; SD3's pooled vector survives as the last text token."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from tiny_pipelines import build_tiny_dc_ae, build_tiny_gemma, build_tiny_sd3_text, build_tiny_sd3_vae

from mirokit.cli.main import main
from mirokit.data.shards import EncodedShards
from mirokit.encoders.text_sd3 import POOLED_MARK

CAPTIONS = ["a red circle", "a blue square", "a big green triangle"]


def _scored_shard(path, n):
    from PIL import Image

    with tarfile.open(path, "w") as tar:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(buf, "PNG")
            for name, data in ((f"{i:05d}.png", buf.getvalue()), (f"{i:05d}.txt", CAPTIONS[i % 3].encode()),
                               (f"{i:05d}.json", json.dumps({"clip_score": 0.1 * i}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("family", ["sd3", "sana"])
def test_encode_with_the_familys_parts(family, tmp_path):
    builders = (build_tiny_sd3_text, build_tiny_sd3_vae) if family == "sd3" else (build_tiny_gemma, build_tiny_dc_ae)
    for build in builders:
        build(tmp_path / "pipe")
    (tmp_path / "scored").mkdir()
    _scored_shard(tmp_path / "scored" / "a.tar", 4)
    args = ["encode", str(tmp_path / "scored"), "--out", str(tmp_path / "enc"), "--reward", "clip_score",
            "--text-encoder-kind", f"{family}_text", "--text-encoder", str(tmp_path / "pipe"),
            "--vae-kind", "diffusers_vae", "--vae", str(tmp_path / "pipe"), "--max-length", "8",
            "--image-size", "16", "--batch-size", "2", "--device", "cpu", "--dtype", "fp32"]
    assert main(args) == 0
    encoding = json.loads((tmp_path / "enc" / "encoding.json").read_text())
    assert (encoding["text_encoder_kind"], encoding["vae_kind"]) == (f"{family}_text", "diffusers_vae")
    data = EncodedShards(tmp_path / "enc")
    sample = data[0]
    if family == "sd3":  # 16 channels, 2x down; every token kept, the pooled one last
        assert encoding["moments_shape"] == [32, 8, 8] and sample.image.shape == (32, 8, 8)
        assert sample.text.shape == (77 + 8 + 1, 48) and data.info.uncond_text.shape == (86, 48)
        for text in (sample.text, data.info.uncond_text):
            assert text[-1, -1] == POOLED_MARK and torch.equal(text[-1, 20:-1], torch.zeros(27))
    else:  # 32 channels, 4x down, std 0; the valid Gemma tokens (<bos> + words)
        assert encoding["moments_shape"] == [64, 4, 4] and torch.equal(sample.image[32:], torch.zeros(32, 4, 4))
        assert sample.text.shape == (1 + len(CAPTIONS[0].split()), 32)


def test_sd3_miro_trains_on_its_encoded_shards(tmp_path):
    """sd3_miro with its hub ids replaced by a tiny pipeline folder: encode, then 2 training steps with caption
    dropout (the pooled token travels through the shards and the empty prompt), then sample."""
    from diffusers import SD3Transformer2DModel

    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import SamplingSettings, generate
    from mirokit.train.config import load_run_config
    from mirokit.train.loop import train
    from mirokit.train.metrics import read_metrics

    pipe = tmp_path / "pipe"
    build_tiny_sd3_text(pipe)
    build_tiny_sd3_vae(pipe)
    torch.manual_seed(0)
    SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=1,
                          attention_head_dim=8, num_attention_heads=2, joint_attention_dim=48,
                          caption_projection_dim=16, pooled_projection_dim=20,
                          pos_embed_max_size=8).save_pretrained(pipe / "transformer")
    (tmp_path / "scored").mkdir()
    _scored_shard(tmp_path / "scored" / "a.tar", 4)
    assert main(["encode", str(tmp_path / "scored"), "--out", str(tmp_path / "enc"), "--reward", "clip_score",
                 "--text-encoder-kind", "sd3_text", "--text-encoder", str(pipe), "--vae-kind", "diffusers_vae",
                 "--vae", str(pipe), "--max-length", "8", "--image-size", "16", "--device", "cpu"]) == 0
    overrides = [f"out_dir={tmp_path / 'run'}", f"model.backbone.name_or_path={pipe}", "model.image_size=8",
                 "model.reward_keys=[clip_score]", f"text_encoder.name_or_path={pipe}", "text_encoder.max_length=8",
                 f"image_space.name_or_path={pipe}", f"data.path={tmp_path / 'enc'}", "data.calibration=null",
                 "loader={num_workers: 0}",
                 "train.precision=fp32", "train.batch_size=4", "train.steps=2", "train.log_every=1",
                 "train.progress=false", "train.threads=1", "train.text_dropout=0.5", "train.checkpoint_every=0",
                 "optim.warmup_steps=1", "optim.total_steps=2"]
    train(load_run_config("sd3_miro", overrides))
    assert len(rows := read_metrics(tmp_path / "run")) == 2 and all(np.isfinite(r["loss"]) for r in rows)
    model = MiroPipeline.from_pretrained(tmp_path / "run" / "model")
    images = model.image_space.to_pil(generate(model, ["a red circle"], SamplingSettings(steps=2, guidance=1.0)))
    assert images[0].size == (16, 16)
