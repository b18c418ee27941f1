"""Atomic, self-resuming training checkpoints, sharded with torch.distributed.checkpoint (no pickle).

    OUT/checkpoints/step_0000500/
        train_state/shard-0000R-model-00001-of-00001.safetensors
                               rank R-1's part of every training tensor: `model.*` (raw weights),
                               `ema.*` (EMA shadow), `optim.<param>.<key>` (optimizer state); a
                               replicated tensor is written once
        train_state/state.json step, images seen, world size, optimizer groups, resolved run config
        calibration.json       the reward calibration of the data (if any)
        config.json, model.safetensors, text_encoder/, pipeline.json
                               the loadable EMA model; written by unsharded runs (DDP or one process,
                               where rank 0 holds the full weights anyway). Sharded (FSDP2) runs gather
                               the EMA only for the final export; `mirokit export` turns any
                               checkpoint into a model folder.

Every rank writes its own shard (no gather on rank 0); the tensors are safetensors files whose
headers record each shard's offsets, so a checkpoint written by N ranks loads on M ranks (or one
process) and is resharded on the fly. Each checkpoint is written to a hidden temporary folder and
renamed into place, so a run killed at any moment leaves complete checkpoints only.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from mirokit.distributed import DistInfo, barrier

CHECKPOINTS_DIR = "checkpoints"
STATE_DIR = "train_state"
STATE_FILE = "state.json"


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint taken after `step` optimizer steps."""
    return f"step_{step:07d}"


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step_*") if (p / STATE_DIR / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: p.name)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def read_state(path: str | Path) -> dict:
    """The state.json of a checkpoint folder (step, images_seen, world_size, optimizer, config)."""
    file = Path(path) / STATE_DIR / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(f"not a mirokit training checkpoint: {path} (missing {STATE_DIR}/{STATE_FILE})")
    return json.loads(file.read_text())


def _dcp_options() -> dict:
    import torch.distributed as dist

    return {"no_dist": not dist.is_initialized()}


def save_tensors(tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """Write a flat name -> tensor/DTensor dict as this rank's safetensors shard (collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "assuming the intent is to save in a single process"
        dcp.save(tensors, storage_writer=HuggingFaceStorageWriter(str(directory), save_distributed=True),
                 **_dcp_options())


def load_tensors(tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """Fill `tensors` (name -> tensor/DTensor, preallocated) in place from shards written by `save_tensors`,
    whatever the number of ranks that wrote them (collective). A missing name raises a one-line ValueError."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import CheckpointException, HuggingFaceStorageReader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(tensors, storage_reader=HuggingFaceStorageReader(str(directory)), **_dcp_options())
    except (Exception, CheckpointException) as err:  # noqa: BLE001 - a BaseException wrapping the ranks' errors
        text = " ".join(str(err).split())
        missing = text.split("Missing key in checkpoint state_dict:", 1)
        if len(missing) == 2:
            name = missing[1].split()[0].rstrip(".")
            raise ValueError(f"{directory} does not match this run: it has no tensor {name}") from None
        raise RuntimeError(f"cannot read checkpoint {directory}: {text[:300]}") from None


def read_tensors(checkpoint: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """Full tensors of a checkpoint's train_state whose names start with `prefix` (prefix removed),
    joined from every rank's shards, in this process (e.g. `read_tensors(ckpt, "ema.")`)."""
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    directory = Path(checkpoint) / STATE_DIR
    read_state(checkpoint)  # one-line error if this is not a checkpoint
    metadata = HuggingFaceStorageReader(str(directory)).read_metadata().state_dict_metadata
    targets = {name: torch.empty(meta.size, dtype=meta.properties.dtype)
               for name, meta in metadata.items() if name.startswith(prefix)}
    if not targets:
        raise KeyError(f"{checkpoint} holds no tensor named {prefix}*")
    load_tensors(targets, directory)
    return {name[len(prefix):]: value for name, value in targets.items()}


class Checkpointer:
    """Saves and restores everything a run needs to continue exactly: weights, EMA, optimizer, step.

    Args:
        out_dir: the run folder.
        model: the model as parallelized (plain, DDP or FSDP2).
        optimizer: built on the model's final parameters.
        ema: the `EMA` of the model (its shadow is sharded like the parameters under FSDP2).
        dist: this process's place in the job.
        keep: how many step checkpoints to keep (0 = all).
    """

    def __init__(self, out_dir: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, ema,
                 dist: DistInfo, keep: int = 2):
        self.out_dir = Path(out_dir)
        self.model = model
        self.optimizer = optimizer
        self.ema = ema
        self.dist = dist
        self.keep = keep

    def _tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(flat name -> live tensor, optimizer param groups) — the same tensors the run trains with."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        flat = {f"model.{k}": v for k, v in get_model_state_dict(self.model).items()}
        flat.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
        osd = get_optimizer_state_dict(self.model, self.optimizer)  # initialises an empty state (lr 0 step)
        for fqn, entries in osd["state"].items():
            for key, value in entries.items():
                if not torch.is_tensor(value):
                    raise TypeError(f"optimizer state {fqn}.{key} is not a tensor ({type(value).__name__})")
                flat[f"optim.{fqn}.{key}"] = value
        return flat, osd

    def save(self, step: int, state: dict, export: Callable[[Path], None] | None = None) -> Path:
        """Write OUT/checkpoints/step_N atomically (every rank calls this); returns its path.

        `export(dir)`, if given, runs on rank 0 and writes the loadable model part into the folder.
        Keeps the newest `keep` checkpoints.
        """
        root = self.out_dir / CHECKPOINTS_DIR
        final = root / checkpoint_name(step)
        tmp = root / f".tmp-{checkpoint_name(step)}"
        if self.dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier()
        flat, osd = self._tensors()
        save_tensors(flat, tmp / STATE_DIR)
        if self.dist.is_main:
            groups = [{k: v for k, v in g.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}
                      for g in osd["param_groups"]]
            meta = {"step": step, "world_size": self.dist.world_size, "optimizer": type(self.optimizer).__name__,
                    "param_groups": groups, **state}
            if export is not None:
                export(tmp)
            (tmp / STATE_DIR / STATE_FILE).write_text(json.dumps(meta, indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            if self.keep > 0:
                for old in list_checkpoints(self.out_dir)[:-self.keep]:
                    shutil.rmtree(old, ignore_errors=True)
        barrier()
        return final

    def load(self, path: str | Path) -> dict:
        """Restore weights, EMA and optimizer from checkpoint `path` (every rank calls this, with any
        number of ranks); returns its state.json."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        path = Path(path)
        meta = read_state(path)
        if meta.get("optimizer") != type(self.optimizer).__name__:
            raise ValueError(f"{path} was trained with {meta.get('optimizer')}, this run uses "
                             f"{type(self.optimizer).__name__} (optim.name)")
        flat, osd = self._tensors()
        load_tensors(flat, path / STATE_DIR)
        set_model_state_dict(self.model, {k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")})
        set_optimizer_state_dict(self.model, self.optimizer, osd)  # osd holds the loaded tensors
        return meta
