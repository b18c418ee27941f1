"""Validation during training: fixed prompts x reward targets sampled from the EMA weights, as one grid.

Every `validation.every` steps the EMA weights (gathered from the shards under FSDP2: every rank
takes part) go into a separate copy of the model on rank 0, which samples every prompt at every
reward setting with the same noise. The grid (rows: reward settings, columns: prompts) is written to
OUT/validation/step_NNNNNNN.png and to TensorBoard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VALIDATION_DIR = "validation"


@dataclass(kw_only=True)
class ValidationConfig:
    """Sample grids during training (off unless `every` > 0 and prompts are given)."""

    every: int = 0
    """steps between grids (0 = no validation)"""
    prompts: list[str] = field(default_factory=list)
    """the grid's columns"""
    targets: list[dict] = field(default_factory=lambda: [{}])
    """the grid's rows: reward targets ({} = every reward at 1.0; unknown keys are an error)"""
    sampling: dict = field(default_factory=lambda: {"steps": 20})
    """partial sampling settings (mirokit.sampling.SamplingSettings' fields: steps, solver, guidance,
    guidance_interval, seed, ...); over `preset`, over the model's sampling defaults. The seed gives the same
    noise at every validation; the targets come from `targets`"""
    preset: str | None = None
    """a sampling preset (built-in name or JSON file) under `sampling`"""

    def __post_init__(self):
        from mirokit.sampling import check_partial
        from mirokit.sampling.presets import load_preset

        check_partial(self.sampling, "validation.sampling")
        load_preset(self.preset)

    @property
    def enabled(self) -> bool:
        """True when grids are to be made."""
        return self.every > 0 and bool(self.prompts)


def make_grid(images: list, rows: int, cols: int) -> np.ndarray:
    """rows * cols PIL images (row-major) -> one (rows*H, cols*W, 3) uint8 array."""
    arrays = [np.asarray(im.convert("RGB")) for im in images]
    h, w = arrays[0].shape[:2]
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, a in enumerate(arrays):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = a
    return grid


def validate(cfg: ValidationConfig, pipe, step: int, out_dir: Path, metrics) -> Path:
    """Sample the grid with `pipe` (EMA weights), save it as PNG and to TensorBoard; returns the PNG path."""
    from mirokit.atomic import SOLE_WRITER, save_image_atomic
    from mirokit.sampling import generate, resolve
    from mirokit.sampling.presets import load_preset

    base = resolve({"batch_size": max(1, len(cfg.prompts)), **cfg.sampling}, load_preset(cfg.preset),
                   pipe.sampler_defaults)
    images = []
    for targets in cfg.targets:  # every row from the same noise: column k from (seed, k, 0)
        x = generate(pipe, list(cfg.prompts), base.replace(rewards=dict(targets) if pipe.reward_keys else {}))
        images += pipe.image_space.to_pil(x)
    grid = make_grid(images, len(cfg.targets), len(cfg.prompts))
    path = Path(out_dir) / VALIDATION_DIR / f"step_{step:07d}.png"
    save_image_atomic(path, grid, SOLE_WRITER)  # rank 0's; a rerun after a kill redraws the same step
    metrics.log_image(step, "validation", grid)
    return path
