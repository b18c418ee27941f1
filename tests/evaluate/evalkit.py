"""Tiny shapes-world models for the evaluation-suite tests, trained once per test session (a few seconds).

`world_models(tmp_path_factory)` -> {"miro": model folder conditioned on the three built-in world rewards,
"baseline": the same without reward conditioning}; 16x16 pixels, a small UNet, 30 steps."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from runs import TINY_UNET

from mirokit.cli.main import main

_MODELS: dict = {}
SHAPES_EVAL = Path(__file__).resolve().parents[2] / "mirokit" / "world" / "shapes_eval.jsonl"


def world_models(tmp_path_factory) -> dict[str, Path]:
    if not _MODELS:
        root = tmp_path_factory.mktemp("world_models")
        for name, keys in (("miro", "[world_alignment,world_quality,world_composition]"), ("baseline", "[]")):
            assert main(["train", "--config", "demo_world", *TINY_UNET, "image_space={kind: pixels}",
                         f"out_dir={root / name}",
                         f"model.reward_keys={keys}", "train.steps=30", "optim.total_steps=30", "optim.warmup_steps=3",
                         "train.batch_size=16", "data.num_samples=128", "train.progress=false", "train.threads=1",
                         "train.log_every=10"]) == 0
            _MODELS[name] = root / name / "model"
    return dict(_MODELS)


def shapes_prompts(path: Path, count: int, start: int = 0, step: int = 1) -> Path:
    """Write `count` ShapesEval records (every `step`-th from `start`) to `path` -> path."""
    lines = SHAPES_EVAL.read_text().splitlines()[start::step][:count]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
