"""The shapes-world experiment shared by `mirokit demo` and bench/convergence.py.

world data -> built-in rewards (raw) -> calibration -> train variants (baseline, MIRO, filtered,
specialists) -> sample ShapesEval prompts -> ShapesEval accuracy + mean rewards of the samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mirokit.world.source import WORLD_REWARDS, score_images


@dataclass(kw_only=True)
class ExperimentConfig:
    """Budget and settings of one shapes-world comparison."""

    out_dir: str = "demo_out"
    num_samples: int = 12000
    image_size: int = 32
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32
    eval_prompts: int = 120
    sample_steps: int = 20
    guidance: float = 1.5
    config: str = "demo_world"
    overrides: list[str] = field(default_factory=list)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def build_world(exp: ExperimentConfig, progress: bool = True):
    """Noisy world dataset with calibrated built-in rewards attached (calibration in `dataset.info`)."""
    from mirokit.world.sampling import WorldConfig
    from mirokit.world.source import scored_world

    return scored_world(exp.num_samples, WorldConfig(image_size=exp.image_size, seed=exp.seed), progress=progress)[0]


def variant_overrides(name: str, reward_keys: list[str], exp: ExperimentConfig) -> list[str]:
    """Config overrides of one variant: its run folder, reward keys and the shared budget."""
    keys = "[" + ",".join(reward_keys) + "]"
    return [f"out_dir={Path(exp.out_dir) / 'runs' / name}", f"model.reward_keys={keys}",
            f"model.image_size={exp.image_size}", f"train.steps={exp.steps}", f"optim.total_steps={exp.steps}",
            f"train.batch_size={exp.batch_size}", f"train.seed={exp.seed}", *exp.overrides]


def train_variant(name: str, dataset, reward_keys: list[str], exp: ExperimentConfig, *, subset=None,
                  extra: list[str] | None = None) -> Path:
    """Train one model variant in this process into OUT/runs/NAME; returns its exported model folder."""
    from mirokit.data.source import SubsetDataset
    from mirokit.train.config import load_run_config
    from mirokit.train.loop import train

    data = dataset if subset is None else SubsetDataset(dataset, subset)
    cfg = load_run_config(exp.config, [*variant_overrides(name, reward_keys, exp), *(extra or [])])
    return train(cfg, dataset=data)


def train_in_parallel(variants: dict[str, list[str]], exp: ExperimentConfig, dataset, *, threads_each: int = 1,
                      progress: bool = True, extra: dict[str, list[str]] | None = None) -> dict[str, Path]:
    """Train variants side by side as `mirokit train` processes on `dataset`'s world (regenerated from its
    seed; the calibrated scores are passed as a parquet file, not recomputed). One thread per process uses
    a small CPU better than two threads in one process. Logs: OUT/runs/NAME.log; returns {name: model}."""
    import os
    import subprocess
    import sys

    from mirokit.train.config import resolve_config
    from mirokit.train.metrics import read_metrics
    from mirokit.world.source import save_scores

    root = Path(exp.out_dir) / "runs"
    root.mkdir(parents=True, exist_ok=True)
    scores, calibration = root / "world_scores.parquet", root / "calibration.json"
    save_scores(dataset, scores)
    dataset.info.calibration.save(calibration)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads_each), MKL_NUM_THREADS=str(threads_each))
    procs = {}
    for name, keys in variants.items():
        cmd = [sys.executable, "-m", "mirokit.cli.main", "train", "--config", resolve_config(exp.config),
               *variant_overrides(name, keys, exp), "data.kind=world", f"data.num_samples={exp.num_samples}",
               f"data.seed={exp.seed}", f"data.scores={scores}", f"data.calibration={calibration}",
               f"train.threads={threads_each}", "train.progress=false", *(extra or {}).get(name, [])]
        log = open(root / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    bar = tqdm(total=exp.steps * len(procs), desc="training " + " + ".join(procs), unit="step",
               disable=not progress, dynamic_ncols=True)
    while any(p.poll() is None for p, _ in procs.values()):
        time.sleep(2)
        done = 0
        for name in procs:
            path = root / name / "metrics.jsonl"
            rows = read_metrics(path) if path.is_file() else []
            done += rows[-1]["step"] if rows else 0
        bar.update(done - bar.n)
    bar.update(bar.total - bar.n)
    bar.close()
    failed = []
    for name, (p, log) in procs.items():
        log.close()
        if p.returncode != 0:
            failed.append(name)
    if failed:
        tail = (root / f"{failed[0]}.log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"training {failed[0]} failed (see {root / failed[0]}.log): {' '.join(tail)}")
    return {name: root / name / "model" for name in procs}


def sample_prompts(model_dir, prompts: list[str], exp: ExperimentConfig, *,
                   rewards: dict | None = None, negative: dict | None = None, seed: int | None = None) -> np.ndarray:
    """Sample one image per prompt from a model folder or a loaded MiroPipeline -> (N, H, W, 3) uint8.
    Reward-free models ignore the targets."""
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import GuidanceConfig, SampleConfig, generate

    # a folder is loaded here; callers sampling one model many times pass the loaded pipeline
    pipe = model_dir if isinstance(model_dir, MiroPipeline) else MiroPipeline.from_pretrained(model_dir)
    keys = set(pipe.reward_keys)
    pos = {k: v for k, v in (rewards or {}).items() if k in keys}
    neg = {k: v for k, v in (negative or {}).items() if k in keys}
    cfg = SampleConfig(steps=exp.sample_steps, guidance=GuidanceConfig(scale=exp.guidance),
                       seed=exp.seed if seed is None else seed, batch_size=64)
    return to_uint8(generate(pipe, prompts, rewards=pos, negative_rewards=neg, cfg=cfg))


def evaluate_samples(images_u8: np.ndarray, metadata: list[dict]) -> tuple[dict, list[dict]]:
    """ShapesEval on in-memory samples: (summary {overall, per tag}, per-image results)."""
    from mirokit.evaluate.geneval_rules import evaluate_detections, summarize
    from mirokit.world.detector import ShapesDetector

    results = []
    for dets, meta in zip(ShapesDetector().detect_batch(images_u8), metadata):
        correct, reason = evaluate_detections(dets, meta)
        results.append({"tag": meta["tag"], "prompt": meta["prompt"], "correct": correct, "reason": reason})
    return summarize(results), results


def mean_rewards(images_u8: np.ndarray, captions: list[str]) -> dict[str, float]:
    """Mean raw built-in rewards of samples given their prompts."""
    raw = score_images(images_u8, captions, WORLD_REWARDS)
    return {k: float(np.nanmean(v)) for k, v in raw.items()}
