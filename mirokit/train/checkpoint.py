"""Atomic, self-resuming training checkpoints (no pickle: safetensors + JSON).

    OUT/checkpoints/step_000500/      a loadable model (EMA weights, pipeline layout) ...
        train_state/weights.safetensors    raw trained weights (generator.* and text_encoder.*)
        train_state/ema.safetensors        EMA shadow of the same names
        train_state/optimizer.safetensors  optimizer tensors; optimizer.json its metadata
        train_state/state.json             step, images seen, resolved run config

Each checkpoint is written to a hidden temporary folder and renamed into place, so a run killed
at any moment leaves either the previous complete checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mirokit.train.optim import load_optimizer_state, optimizer_state_to_tensors

CHECKPOINTS_DIR = "checkpoints"
STATE_DIR = "train_state"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def split_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries of `state` whose name starts with `prefix.`, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def save_checkpoint(out_dir: str | Path, step: int, *, export_fn, weights: dict, ema: dict,
                    optimizer: torch.optim.Optimizer, state: dict, keep: int) -> Path:
    """Write OUT/checkpoints/step_N atomically; `export_fn(dir)` writes the loadable model part.

    Keeps the newest `keep` checkpoints (0 = keep all). Returns the checkpoint path.
    """
    root = Path(out_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}"
    shutil.rmtree(tmp, ignore_errors=True)
    export_fn(tmp)
    sdir = tmp / STATE_DIR
    sdir.mkdir(parents=True, exist_ok=True)
    save_file(_tensors(weights), str(sdir / "weights.safetensors"))
    save_file(_tensors(ema), str(sdir / "ema.safetensors"))
    opt_tensors, opt_meta = optimizer_state_to_tensors(optimizer)
    save_file(_tensors(opt_tensors), str(sdir / "optimizer.safetensors"))
    (sdir / "optimizer.json").write_text(json.dumps(opt_meta))
    (sdir / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step_*") if (p / STATE_DIR / "state.json").is_file()]
    return sorted(done, key=lambda p: p.name)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def load_train_state(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint's train_state: {"weights", "ema", "optimizer_tensors", "optimizer_meta", "state"}."""
    sdir = Path(path) / STATE_DIR
    return {
        "weights": load_file(str(sdir / "weights.safetensors"), device=str(device)),
        "ema": load_file(str(sdir / "ema.safetensors"), device=str(device)),
        "optimizer_tensors": load_file(str(sdir / "optimizer.safetensors"), device=str(device)),
        "optimizer_meta": json.loads((sdir / "optimizer.json").read_text()),
        "state": json.loads((sdir / "state.json").read_text()),
    }


def restore_optimizer(optimizer: torch.optim.Optimizer, loaded: dict) -> None:
    """Put a loaded optimizer state back (exact: same tensors, same hyper-parameters)."""
    load_optimizer_state(optimizer, loaded["optimizer_tensors"], loaded["optimizer_meta"])
