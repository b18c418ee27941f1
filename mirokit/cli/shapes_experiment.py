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

WORLD_REWARDS = ["world_alignment", "world_quality", "world_composition"]


@dataclass(kw_only=True)
class ExperimentConfig:
    """Budget and settings of one shapes-world comparison."""

    out_dir: str = "demo_out"
    num_samples: int = 12000
    image_size: int = 32
    seed: int = 0
    steps: int = 800
    batch_size: int = 32
    eval_prompts: int = 120
    sample_steps: int = 20
    guidance: float = 3.0
    config: str = "demo_world"
    overrides: list[str] = field(default_factory=list)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def score_raw(images_u8: np.ndarray, captions: list[str], keys: list[str], batch: int = 512,
              progress: bool = False) -> dict[str, np.ndarray]:
    """Raw built-in reward scores of (N, H, W, 3) uint8 images: {key: (N,)}."""
    from PIL import Image

    from mirokit.rewards import build_scorer

    scorers = {k: build_scorer(k) for k in keys}
    out = {k: [] for k in keys}
    for start in tqdm(range(0, len(captions), batch), desc="scoring", disable=not progress, leave=False):
        pils = [Image.fromarray(a) for a in images_u8[start:start + batch]]
        caps = captions[start:start + batch]
        for k, scorer in scorers.items():
            out[k].append(scorer.score(pils, caps))
    return {k: np.concatenate(v) for k, v in out.items()}


def build_world(exp: ExperimentConfig, progress: bool = True):
    """Noisy world dataset with calibrated built-in rewards attached. Returns (dataset, raw, calibration)."""
    from mirokit.data.calibration import Calibration
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.sampling import WorldConfig

    dataset = WorldDataset(exp.num_samples, WorldConfig(image_size=exp.image_size, seed=exp.seed))
    images = to_uint8(dataset.images(list(range(len(dataset)))))
    raw = score_raw(images, list(dataset.captions), WORLD_REWARDS, progress=progress)
    calibration = Calibration.fit(raw)
    dataset.set_scores(WORLD_REWARDS, calibration.apply_all(raw, WORLD_REWARDS))
    return dataset, raw, calibration


def train_variant(name: str, dataset, reward_keys: list[str], exp: ExperimentConfig, *, subset=None,
                  extra: list[str] | None = None) -> Path:
    """Train one model variant into OUT/runs/NAME; returns its exported model folder."""
    from mirokit.cli.train import resolve_config
    from mirokit.data.source import SubsetDataset
    from mirokit.train.config import load_run_config
    from mirokit.train.loop import train

    data = dataset if subset is None else SubsetDataset(dataset, subset)
    keys = "[" + ",".join(reward_keys) + "]"
    cfg = load_run_config(resolve_config(exp.config), [
        f"out_dir={Path(exp.out_dir) / 'runs' / name}", f"model.reward_keys={keys}",
        f"model.image_size={exp.image_size}", f"train.steps={exp.steps}", f"optim.total_steps={exp.steps}",
        f"train.batch_size={exp.batch_size}", f"train.seed={exp.seed}", *exp.overrides, *(extra or [])])
    return train(cfg, dataset=data)


def sample_prompts(model_dir: Path, prompts: list[str], exp: ExperimentConfig, *,
                   rewards: dict | None = None, negative: dict | None = None, seed: int | None = None) -> np.ndarray:
    """Sample one image per prompt -> (N, H, W, 3) uint8. Reward-free models ignore the targets."""
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import GuidanceConfig, SampleConfig, generate

    pipe = MiroPipeline.from_pretrained(model_dir)
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
    raw = score_raw(images_u8, captions, WORLD_REWARDS)
    return {k: float(np.nanmean(v)) for k, v in raw.items()}


def timed(label: str, fn, *args, **kwargs):
    """Run fn, print how long it took, return its result."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)
    return result
