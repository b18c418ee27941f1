"""`mirokit encode` -> encoded shards -> the `shards` data source -> training on latents with T5 states."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from conftest import build_tiny_t5, build_tiny_vae

from mirokit.cli.main import main
from mirokit.data.calibration import Calibration
from mirokit.data.shards import EncodedShards
from mirokit.train.config import load_run_config
from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics

CAPTIONS = ["a red circle", "a blue square", "a green triangle", "a big red square"]


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _scored_shard(path, start, n, bad=()):
    """A tar as `mirokit score --enrich` writes it, with a synthetic caption and its scores."""
    with tarfile.open(path, "w") as tar:
        for i in range(start, start + n):
            key = f"{i:05d}"
            _add(tar, f"{key}.png", b"garbage" if i in bad else _png(i))
            if i != start + 1 or not bad:
                _add(tar, f"{key}.txt", CAPTIONS[i % 4].encode())
            _add(tar, f"{key}.synthetic.txt", ("green " + CAPTIONS[(i + 1) % 4]).encode())
            scores = {"clip_score": 0.1 * (i % 7), "aesthetic_score": 5.0 + i % 3,
                      "synthetic_clip_score": 0.9, "synthetic_aesthetic_score": 6.0}
            _add(tar, f"{key}.json", json.dumps(scores).encode())


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    root = tmp_path_factory.mktemp("encode")
    t5 = build_tiny_t5(root / "t5")
    build_tiny_vae(root / "vae")
    (root / "scored").mkdir()
    _scored_shard(root / "scored" / "a.tar", 0, 12, bad={3})
    _scored_shard(root / "scored" / "b.tar", 100, 10)
    args = ["encode", str(root / "scored"), "--out", str(root / "enc"), "--reward", "clip_score", "--reward",
            "aesthetic_score", "--caption", "synthetic", "--vae", str(root / "vae"), "--text-encoder", str(t5),
            "--max-length", "8", "--image-size", "16", "--batch-size", "4", "--device", "cpu"]
    assert main(args) == 0
    return {"root": root, "t5": t5, "enc": root / "enc", "args": args}


def test_encode_writes_shards_metadata_and_counts_bad_samples(encoded):
    enc = encoded["enc"]
    assert sorted(p.name for p in enc.glob("*.tar")) == ["a.tar", "b.tar"]
    encoding = json.loads((enc / "encoding.json").read_text())
    assert encoding["samples"] == 20 and encoding["moments_shape"] == [8, 8, 8]
    assert encoding["captions"] == ["original", "synthetic"]
    assert encoding["reward_keys"] == ["clip_score", "aesthetic_score"]
    manifest = json.loads((enc / "manifest.000-of-001.json").read_text())
    assert manifest["left_out"] == {"corrupt image": 1, "missing caption": 1}  # 22 inputs, 20 encoded
    stats = json.loads((enc / "latent_stats.json").read_text())
    assert stats["count"] == 20 * 8 * 8 and len(stats["std"]) == 4
    # a second run finds everything done
    mtime = (enc / "a.tar").stat().st_mtime_ns
    assert main(encoded["args"]) == 0
    assert (enc / "a.tar").stat().st_mtime_ns == mtime
    assert json.loads((enc / "manifest.000-of-001.json").read_text())["skipped_done"] == 2


def test_reader_calibrates_trims_text_and_mixes_captions(encoded):
    raw = {"clip_score": np.array([0.1 * (i % 7) for i in range(30)]), "aesthetic_score": np.arange(30) % 3 + 5.0}
    calibration = Calibration.fit(raw)
    data = EncodedShards(encoded["enc"], calibration=calibration, caption_mix=0.5)
    assert len(data) == 20 and data.info.reward_keys == ("clip_score", "aesthetic_score")
    assert data.info.uncond_text.shape == (1, 32)  # T5 of "": "</s>" only
    sample = data[0]
    assert sample.image.shape == (8, 8, 8) and sample.caption == CAPTIONS[0]
    assert sample.text.shape == (len(CAPTIONS[0].split()) + 1, 32)  # valid tokens + </s>, trimmed
    assert sample.scores["clip_score"] == pytest.approx(float(calibration.apply("clip_score", np.array([0.0]))[0]))
    chosen = [data.draw(0, torch.Generator().manual_seed(s)).caption for s in range(40)]
    assert 10 < sum(c.startswith("green ") for c in chosen) < 30  # about half the draws take the synthetic one
    again = [data.draw(0, torch.Generator().manual_seed(s)).caption for s in range(40)]
    assert chosen == again
    assert EncodedShards(encoded["enc"], caption_mix=1.0).draw(5, torch.Generator()).caption.startswith("green ")


def test_caption_weights_and_whose_scores_come_with_a_caption(encoded):
    """Weights choose among the captions a sample has; a synthetic caption brings its own scores (the paper) or,
    with caption_rewards original, the original caption's (the released code)."""
    weighted = EncodedShards(encoded["enc"], caption_weights={"original": 1, "synthetic": 3})
    picks = [weighted.draw(0, torch.Generator().manual_seed(s)).caption.startswith("green ") for s in range(400)]
    assert abs(np.mean(picks) - 0.75) < 5 * (0.75 * 0.25 / 400) ** 0.5  # binomial: 5 standard errors
    only = EncodedShards(encoded["enc"], caption_weights={"synthetic": 1})
    assert only.draw(0, torch.Generator()).caption.startswith("green ")
    own = EncodedShards(encoded["enc"], caption_mix=1.0).draw(5, torch.Generator())
    released = EncodedShards(encoded["enc"], caption_mix=1.0, caption_rewards="original").draw(5, torch.Generator())
    assert own.caption == released.caption and torch.equal(own.text, released.text)
    assert own.scores == {"clip_score": pytest.approx(0.9), "aesthetic_score": 6.0}  # the synthetic caption's
    original = EncodedShards(encoded["enc"])[5]  # no generator: the original caption
    assert not original.caption.startswith("green ") and released.scores == original.scores != own.scores
    for bad, message in (({"caption_weights": {"synthetic": -1}}, ">= 0"), ({"caption_weights": {"x": 0}}, "> 0"),
                         ({"caption_rewards": "mine"}, "own, original"), ({"caption_mix": 2.0}, r"in \[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            EncodedShards(encoded["enc"], **bad)


def test_training_on_encoded_shards_and_a_corrupt_sample(encoded, tmp_path):
    import shutil

    data = tmp_path / "enc"
    shutil.copytree(encoded["enc"], data)
    # corrupt one sample's latent member in place: it is replaced by the next one and counted
    with tarfile.open(data / "b.tar") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("latent.safetensors"))
    with open(data / "b.tar", "r+b") as f:
        f.seek(member.offset_data)
        f.write(b"\x00" * 16)
    overrides = [
        f"out_dir={tmp_path / 'run'}", "train.precision=fp32", "model.image_channels=4", "model.image_size=8",
        "model.reward_keys=[clip_score]",
        "model.backbone={kind: rin, patch_size: 2, data_dim: 32, latents_dim: 32, num_latents: 8, num_blocks: 1, "
        "num_processing_layers: 1, read_write_heads: 4, compute_heads: 4, hidden_multiple: 8}",
        "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
        f"text_encoder={{kind: hf_t5, name_or_path: {encoded['t5']}, max_length: 8}}",
        f"image_space={{kind: vae, name_or_path: {encoded['root'] / 'vae'}, normalisation: stats, "
        f"stats: {data / 'latent_stats.json'}}}",
        f"data={{kind: shards, path: {data}, caption_mix: 0.5}}", "loader.num_workers=1",
        "train.batch_size=20", "train.steps=3", "train.log_every=1", "train.progress=false", "train.threads=1",
        "train.text_dropout=0.5", "optim.warmup_steps=1", "optim.total_steps=3"]
    model = train(load_run_config(None, overrides))
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["data_skipped"] == 3  # the corrupt sample, replaced at each of the 3 steps
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import SamplingSettings, generate

    pipe = MiroPipeline.from_pretrained(model)
    assert pipe.uncond_text is not None and pipe.uncond_text.shape == (1, 32)  # the data's empty prompt
    assert pipe.image_space.to_pil(generate(pipe, ["a red circle"], SamplingSettings(steps=2)))[0].size == (16, 16)
