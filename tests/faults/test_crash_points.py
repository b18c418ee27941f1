"""Kill every stage at seeded write events (as `kill -9` would: nothing flushed, no cleanup, a torn last write),
rerun the same command, and require the outputs of an uninterrupted run: score, recaption (with shard copies),
encode, generate geneval, eval shapes and train (one process; on CPU training continues bit-identically).

`make test` kills each batch stage at 1 seeded point (training also fails a write on a full disk there), `make
test-all` tries 60 points in both modes and the two-rank (torchrun) sweeps
(MIROKIT_CRASH_POINTS; MIROKIT_CRASH_SEED picks others). One point per stage keeps `make test` under 10 minutes on
the slowest machine of our kind; every stage is still killed and rerun there."""

import sys
from pathlib import Path

import crashkit
import pytest
from crashkit import check_stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from evalkit import shapes_prompts, world_models
from runs import TINY_UNET

from mirokit.cli.main import main

MANIFEST_RESUME = ("skipped_done",)
BOTH = ("kill", "enospc")
"""killed, and a write failing on a full disk"""
MODES = BOTH if crashkit.POINTS > 1 else ("kill",)
"""the batch stages: killed in `make test` (1 point), both modes in `make test-all`; training (its checkpoint
clean-up on a full disk has its own code) tries both everywhere"""


def _all_tried(stats: dict) -> None:
    assert stats["crashed"] == stats["points"] == stats["modes"] * min(crashkit.POINTS, stats["events"]), stats


@pytest.fixture(scope="module")
def world_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "shards"
    assert main(["world", "generate", "--num-samples", "18", "--shard-size", "6", "--out", str(out)]) == 0
    return out


def test_score_survives_kills(world_shards, tmp_path):
    out = tmp_path / "out"
    stats = check_stage(["score", str(world_shards), "--reward", "world_quality", "--reward", "world_alignment",
                         "--enrich", "--num-workers", "0", "--batch-size", "4", "--out", str(out)], out, tmp_path,
                        resume_keys=MANIFEST_RESUME, modes=MODES)
    _all_tried(stats)


def test_the_comparison_finds_a_torn_output_unit(world_shards, tmp_path, monkeypatch):
    """The planted bug: units copied into place (a kill mid-copy leaves a torn file that looks finished)."""
    monkeypatch.setitem(crashkit.ENV, "CRASH_MUTATION", "copy_not_rename")
    monkeypatch.setattr(crashkit, "POINTS", 100)
    out = tmp_path / "out"
    with pytest.raises(AssertionError, match="rerun after a crash|unreadable|parquet"):
        check_stage(["score", str(world_shards), "--reward", "world_quality", "--num-workers", "0", "--out", str(out)],
                    out, tmp_path, resume_keys=MANIFEST_RESUME)


def test_recaption_survives_kills(world_shards, tmp_path):
    out = tmp_path / "out"
    stats = check_stage(["recaption", str(world_shards), "--captioner", "world_detector", "--short", "--write-shards",
                         "--num-workers", "0", "--batch-size", "4", "--out", str(out)], out, tmp_path,
                        resume_keys=MANIFEST_RESUME, modes=MODES)
    _all_tried(stats)


@pytest.fixture(scope="module")
def encode_inputs(world_shards, tmp_path_factory):
    from conftest import build_tiny_t5, build_tiny_vae

    root = tmp_path_factory.mktemp("encode_models")
    build_tiny_vae(root / "vae")
    assert main(["score", str(world_shards), "--reward", "world_quality", "--enrich", "--num-workers", "0",
                 "--out", str(root / "scored")]) == 0
    return {"vae": root / "vae", "t5": build_tiny_t5(root / "t5"), "scored": root / "scored" / "enriched"}


def test_encode_survives_kills(encode_inputs, tmp_path):
    out = tmp_path / "out"
    stats = check_stage(["encode", str(encode_inputs["scored"]), "--reward", "world_quality", "--vae",
                         str(encode_inputs["vae"]), "--text-encoder", str(encode_inputs["t5"]), "--max-length", "8",
                         "--image-size", "16", "--batch-size", "4", "--device", "cpu", "--out", str(out)],
                        out, tmp_path, resume_keys=MANIFEST_RESUME, modes=MODES)
    _all_tried(stats)


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    return world_models(tmp_path_factory)["miro"]


def _generate(model, prompts, out):
    return ["generate", "geneval", "--model", str(model), "--prompts", str(prompts), "--out", str(out),
            "--images-per-prompt", "2", "--steps", "3", "--batch-size", "3"]


def test_generate_and_eval_survive_kills(world_model, tmp_path):
    prompts = shapes_prompts(tmp_path / "p.jsonl", 3, step=101)
    images = tmp_path / "images"
    stats = check_stage(_generate(world_model, prompts, images), images, tmp_path / "generate", modes=MODES)
    _all_tried(stats)
    assert main(_generate(world_model, prompts, images)) == 0
    from geneval_testkit import save_clip, tiny_mask2former

    detector = tmp_path / "detector"
    tiny_mask2former({15: 10.0, 16: 10.0}).save_pretrained(detector)
    results = tmp_path / "results"
    stats = check_stage(["eval", "geneval", str(images), "--out", str(results / "results.json"), "--detector",
                         str(detector), "--clip", save_clip(tmp_path / "clip"), "--device", "cpu", "--batch-size", "1"],
                        results, tmp_path / "eval", modes=MODES)
    _all_tried(stats)


def test_train_survives_kills_and_continues_bit_identically(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--config", "demo_world", *TINY_UNET, "image_space={kind: pixels}", f"out_dir={out}",
            "model.reward_keys=[world_quality]", "train.steps=6", "optim.total_steps=6", "optim.warmup_steps=2",
            "train.batch_size=8", "data.num_samples=64", "train.progress=false", "train.threads=1",
            "train.log_every=1", "train.checkpoint_every=2"]
    stats = check_stage(argv, out, tmp_path, modes=BOTH)
    _all_tried(stats)


@pytest.mark.slow  # two ranks per run: make test-all
def test_score_under_torchrun_survives_kills(world_shards, tmp_path):
    """Two ranks sharing the units; the kill lands on either rank, the other finishes its share."""
    out = tmp_path / "out"
    stats = check_stage(["score", str(world_shards), "--reward", "world_quality", "--num-workers", "0",
                         "--batch-size", "4", "--out", str(out)], out, tmp_path, resume_keys=MANIFEST_RESUME, ranks=2)
    _all_tried(stats)


@pytest.mark.slow  # two ranks per run: make test-all
@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
def test_train_under_torchrun_survives_kills_and_continues_bit_identically(parallel, tmp_path):
    """Two ranks (gloo); the kill lands on either rank mid-step or mid-checkpoint, the other stops with one line;
    the rerun on two ranks ends with the weights, EMA, optimizer state and metrics of an uninterrupted run."""
    out = tmp_path / "run"
    argv = ["train", "--config", "demo_world", *TINY_UNET, "image_space={kind: pixels}", f"out_dir={out}",
            "model.reward_keys=[world_quality]", "train.steps=4", "optim.total_steps=4", "optim.warmup_steps=2",
            "train.batch_size=8", "data.num_samples=64", "train.progress=false", "train.threads=1",
            "train.log_every=1", "train.checkpoint_every=2", "train.device=cpu", "loader.num_workers=0",
            f"train.parallel={parallel}"]
    stats = check_stage(argv, out, tmp_path, ranks=2)
    _all_tried(stats)
    assert not [leaf for leaf in stats["volatile"] if "checkpoints" in leaf or "model" in leaf], stats["volatile"]
