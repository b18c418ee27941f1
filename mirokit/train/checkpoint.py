"""Atomic, self-resuming training checkpoints, sharded with torch.distributed.checkpoint (no pickle).

    OUT/checkpoints/step_0000500/
        train_state/shard-0000R-model-00001-of-00001.safetensors
                               rank R-1's part of every training tensor, named after the Stateful it
                               belongs to: `model.*` (raw weights), `ema.*` (EMA shadow),
                               `optim.<param>.<key>` (optimizer state); a replicated tensor is written once
        train_state/state.json step, world size and each Stateful's JSON values under its name (the
                               optimizer's class and groups; the trainer's images seen and resolved config)
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
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from mirokit.atomic import move_into_place, remove_temporary, temporary_path
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
    from torch.distributed.checkpoint import CheckpointException, HuggingFaceStorageWriter

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "assuming the intent is to save in a single process"
            dcp.save(tensors, storage_writer=HuggingFaceStorageWriter(str(directory), save_distributed=True),
                     **_dcp_options())
    except CheckpointException as err:  # its text is every rank's traceback: raise the first rank's error itself
        first = next((exc for exc, _ in err.failures.values()), None)
        if isinstance(first, OSError):
            raise OSError(first.errno, first.strerror, first.filename) from None
        raise RuntimeError(f"writing {directory} failed: {first!r}") from None


def load_tensors(tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """Fill `tensors` (name -> tensor/DTensor, preallocated) in place from shards written by `save_tensors`,
    whatever the number of ranks that wrote them (collective). A missing name raises a one-line ValueError."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import CheckpointException, HuggingFaceStorageReader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(tensors, storage_reader=HuggingFaceStorageReader(str(directory)), **_dcp_options())
    except (Exception, CheckpointException) as err:  # a BaseException wrapping the ranks' errors
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


class Stateful(Protocol):
    """What a checkpoint holds of one object: `state_dict()` -> {key: tensor (may be a DTensor shard) or a
    JSON value}; `load_state_dict(state)` takes the same dict back. The checkpoint writes the tensors into
    the safetensors shards (as `NAME.key`; they are loaded in place into the tensors `state_dict()` returns)
    and the JSON values into state.json (under NAME). An object may also define `check_state(stored, path)`,
    called with its stored JSON values before any tensor is read, to refuse a checkpoint in one line."""

    def state_dict(self) -> dict[str, Any]:
        """{key: tensor (may be a DTensor shard) or JSON value}: what the checkpoint stores of the object."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the dict `state_dict()` returns, as read from a checkpoint."""


class ModelState:
    """A (possibly DDP-wrapped or FSDP2-sharded) model as a Stateful: its weights and buffers."""

    def __init__(self, model: nn.Module):
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        """{name: live tensor}: loading fills them in place."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.model)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load `state` (this object's own tensors after an in-place load, or any full state)."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(self.model, state)


class OptimizerState:
    """An optimizer as a Stateful: its moments per parameter (sharded like the parameters), its class and
    param groups (JSON). A checkpoint of another optimizer class is refused in one line."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model = model
        self.optimizer = optimizer
        self._osd: dict | None = None

    def state_dict(self) -> dict[str, Any]:
        """{"optimizer": class name, "param_groups": [...], "<param>.<key>": live state tensor}."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        self._osd = get_optimizer_state_dict(self.model, self.optimizer)  # initialises an empty state (lr 0 step)
        flat: dict[str, Any] = {"optimizer": type(self.optimizer).__name__, "param_groups": [
            {k: v for k, v in g.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}
            for g in self._osd["param_groups"]]}
        for fqn, entries in self._osd["state"].items():
            for key, value in entries.items():
                if not torch.is_tensor(value):
                    raise TypeError(f"optimizer state {fqn}.{key} is not a tensor ({type(value).__name__})")
                flat[f"{fqn}.{key}"] = value
        return flat

    def check_state(self, stored: dict, path: Path) -> None:
        """A checkpoint written by another optimizer class is a one-line ValueError."""
        if stored.get("optimizer") != type(self.optimizer).__name__:
            raise ValueError(f"{path} was trained with {stored.get('optimizer')}, this run uses "
                             f"{type(self.optimizer).__name__} (optim.name)")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Push the state loaded in place into the tensors of the last `state_dict()` into the optimizer
        (the live param groups are kept: the loop sets the learning rate every step)."""
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        if self._osd is None:
            raise RuntimeError("OptimizerState.load_state_dict needs the tensors of a state_dict() call first")
        set_optimizer_state_dict(self.model, self.optimizer, self._osd)


class Checkpointer:
    """Saves and restores everything a run needs to continue exactly: one Stateful per name.

    Args:
        out_dir: the run folder.
        states: {name: Stateful}, e.g. {"model": ModelState(model), "ema": ema,
            "optim": OptimizerState(model, optimizer), "train": trainer}; a new piece of state is one entry.
        dist: this process's place in the job.
        keep: how many step checkpoints to keep (0 = all).
    """

    def __init__(self, out_dir: str | Path, *, states: dict[str, Stateful], dist: DistInfo, keep: int = 2):
        bad = [name for name in states if not name or "." in name]
        if bad:
            raise ValueError(f"checkpoint state names must be non-empty and without dots, got {bad[0]!r}")
        self.out_dir = Path(out_dir)
        self.states = dict(states)
        self.dist = dist
        self.keep = keep

    def _split(self) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
        """(flat "NAME.key" -> live tensor, NAME -> JSON values) of every state."""
        tensors: dict[str, torch.Tensor] = {}
        values: dict[str, dict] = {}
        for name, obj in self.states.items():
            for key, value in obj.state_dict().items():
                if torch.is_tensor(value):
                    tensors[f"{name}.{key}"] = value
                else:
                    values.setdefault(name, {})[key] = value
        return tensors, values

    def save(self, step: int, export: Callable[[Path], None] | None = None) -> Path:
        """Write OUT/checkpoints/step_N atomically (every rank calls this); returns its path.

        `export(dir)`, if given, runs on rank 0 and writes the loadable model part into the folder.
        Keeps the newest `keep` checkpoints.
        """
        root = self.out_dir / CHECKPOINTS_DIR
        final = root / checkpoint_name(step)
        tmp = temporary_path(final, "ranks")  # a name every rank agrees on; a rerun replaces a killed run's
        if self.dist.is_main:
            remove_temporary(tmp)
            tmp.mkdir(parents=True)
        barrier()
        tensors, values = self._split()
        try:
            save_tensors(tensors, tmp / STATE_DIR)
            if self.dist.is_main:
                meta = {"step": step, "world_size": self.dist.world_size, **values}
                if export is not None:
                    export(tmp)
                (tmp / STATE_DIR / STATE_FILE).write_text(json.dumps(meta, indent=2))
        except OSError as err:  # a full disk: say which checkpoint, keep the earlier ones, free the partial one
            remove_temporary(tmp)
            raise OSError(err.errno, f"{err.strerror} while writing checkpoint {final.name} (the earlier "
                                     f"checkpoints are kept; the run resumes from the last one)",
                          err.filename) from None
        if self.dist.is_main:
            if final.exists():
                shutil.rmtree(final)
            move_into_place(tmp, final)
            if self.keep > 0:
                for old in list_checkpoints(self.out_dir)[:-self.keep]:
                    shutil.rmtree(old, ignore_errors=True)
        barrier()
        return final

    def load(self, path: str | Path) -> dict:
        """Restore every state from checkpoint `path` (every rank calls this, with any number of ranks);
        returns its state.json."""
        path = Path(path)
        meta = read_state(path)
        tensors, _ = self._split()
        for name, obj in self.states.items():
            if hasattr(obj, "check_state"):
                obj.check_state(meta.get(name, {}), path)
        load_tensors(tensors, path / STATE_DIR)
        for name, obj in self.states.items():
            cut = len(name) + 1
            mine = {k[cut:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            obj.load_state_dict({**meta.get(name, {}), **mine})
        return meta
