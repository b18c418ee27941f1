"""Rank / world helpers.  The only module in mirokit that reads RANK, WORLD_SIZE and LOCAL_RANK.

Every helper is a no-op (or the identity) when no process group is running, so single-process
code paths need no `if distributed:` branches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

DEVICE_PREFS = ("auto", "cuda", "cpu", "meta")


@dataclass
class DistInfo:
    """Where this process sits in the job.

    Fields:
        rank: global rank (0 = main process).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: the device this process computes on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw != "" else default
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def resolve_device(name: str = "auto") -> torch.device:
    """A user's device name -> torch.device: "auto" (cuda if available, else cpu), "cpu", "cuda" or "cuda:N";
    CUDA asked for where there is none, or anything else, is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


_JOINED = False
"""set by init_distributed once this process is in a process group"""


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Read the launcher's environment, pick the device and (if WORLD_SIZE > 1) join the group.

    Args:
        device_pref: "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cuda" (error
            if unavailable; cuda:LOCAL_RANK), "cuda:N" (that GPU), "cpu", or "meta" (one process: every tensor on
            the meta device, shapes without values; the tests use it to find tensors made on the wrong device).

    The backend is nccl on CUDA and gloo on CPU; MASTER_ADDR/MASTER_PORT come from the launcher
    (torchrun).  A single process never creates a process group.  Calling this twice is safe.
    """
    if device_pref not in DEVICE_PREFS and not device_pref.startswith("cuda:"):
        raise ValueError(f"unknown device {device_pref!r}; known: {', '.join(DEVICE_PREFS)}, cuda:N")
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
    if device_pref.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device_pref!r} requested but CUDA is not available")
    if device_pref == "meta":
        if world_size > 1:
            raise ValueError("device 'meta' runs in one process (collectives have no values to reduce)")
        device = torch.device("meta")
    elif device_pref != "cpu" and torch.cuda.is_available():
        device = resolve_device(device_pref) if ":" in device_pref else torch.device(
            "cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", rank=rank, world_size=world_size, device_id=device)
        else:
            dist.init_process_group("gloo", rank=rank, world_size=world_size)
    if dist.is_initialized():
        global _JOINED
        _JOINED = True
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def get_rank() -> int:
    """Global rank: from the process group if running, else from RANK (default 0)."""
    return dist.get_rank() if dist.is_initialized() else _env_int("RANK", 0)


def get_world_size() -> int:
    """World size: from the process group if running, else from WORLD_SIZE (default 1)."""
    return dist.get_world_size() if dist.is_initialized() else _env_int("WORLD_SIZE", 1)


def is_main() -> bool:
    """True on rank 0 (and in a single process)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for all ranks; no-op without a process group."""
    if dist.is_initialized():
        dist.barrier()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of a floating-point tensor over ranks, as a new tensor (the input is untouched).

    With nccl the tensor must live on this rank's GPU.  Without a process group: a detached copy.
    """
    if not tensor.is_floating_point():
        raise TypeError(f"all_reduce_mean needs a floating-point tensor, got {tensor.dtype}")
    out = tensor.detach().clone()
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)  # gloo has no AVG
        out /= dist.get_world_size()
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a JSON-able object from rank `src` to all ranks (no pickle: JSON bytes in tensors).

    Every rank returns `json.loads(json.dumps(obj))` of src's object, so tuples become lists on
    all ranks alike.  Non-src ranks may pass anything (ignored).
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return json.loads(json.dumps(obj))
    device = _comm_device()
    if dist.get_rank() == src:
        payload = torch.frombuffer(bytearray(json.dumps(obj).encode("utf-8")), dtype=torch.uint8).to(device)
        length = torch.tensor([payload.numel()], dtype=torch.int64, device=device)
    else:
        length = torch.zeros(1, dtype=torch.int64, device=device)
    dist.broadcast(length, src=src)
    if dist.get_rank() != src:
        payload = torch.empty(int(length.item()), dtype=torch.uint8, device=device)
    dist.broadcast(payload, src=src)
    return json.loads(payload.cpu().numpy().tobytes().decode("utf-8"))


def check_shard(shard_index: int, num_shards: int) -> None:
    """A one-line ValueError unless 0 <= shard_index < num_shards (--shard-index / --num-shards)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in 0..{num_shards - 1} and --num-shards >= 1")


def shard_label(shard_index: int, num_shards: int) -> str:
    """"3/8" for part 2 (0-based) of 8: how a job's output names its part."""
    return f"{shard_index + 1}/{num_shards}"


def job_shard(shard_index: int, num_shards: int, info: DistInfo) -> tuple[int, int]:
    """(this process's part, the number of parts) when a job split into `num_shards` parts (--shard-index /
    --num-shards) runs on `info.world_size` torchrun ranks: part `shard_index * world_size + rank` of
    `num_shards * world_size`."""
    return shard_index * info.world_size + info.rank, num_shards * info.world_size


LOST_PEER = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Connection refused")
"""what a collective raises on the ranks that remain when one dies (gloo)"""


def lost_peer_error(err: BaseException, detail: str) -> RuntimeError | None:
    """The one-line error for a torchrun rank whose collective failed because another rank died or was killed
    (gloo: "Read error ...: Connection reset by peer" on every survivor), naming this rank; None when `err` is not
    such a failure or this process is not a torchrun rank. `detail`: the original error on one line."""
    if not any(s in str(err) for s in LOST_PEER) or "RANK" not in os.environ:
        return None
    return RuntimeError(f"rank {os.environ['RANK']} of {os.environ.get('WORLD_SIZE', '?')} lost its connection to "
                        f"another rank, which died or was killed (see its log); the run resumes from its last "
                        f"checkpoint when restarted ({detail[:160]})")


def joined_a_process_group() -> bool:
    """True once this process has joined a torch.distributed process group (the `mirokit` entry point then leaves
    with os._exit once its outputs are flushed)."""
    return _JOINED


def cleanup() -> None:
    """Leave the process group (if any), after every rank got here.

    Without the barrier a rank that finished early (e.g. while rank 0 still writes the final model)
    tears down gloo under the others, which can abort the job.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
