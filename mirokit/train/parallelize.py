"""The one place where models meet parallelism: activation checkpointing, compile, DDP and FSDP2.

Model code never imports this. The trainer calls `parallelize` once, right after building the
model and *before* the optimizer and the EMA, so both are built on the final (possibly sharded)
parameters. The units that are checkpointed, compiled and sharded are the model's own `blocks()`
(the conditioner's mixer blocks and the backbone's blocks; see `mirokit.models.backbone`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from mirokit.distributed import DistInfo

STRATEGIES = ("none", "ddp", "fsdp2")


def _fsdp():
    """(fully_shard, MixedPrecisionPolicy, FSDPModule) of this torch, or None before torch 2.4."""
    try:
        from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard  # torch >= 2.6
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
        except ImportError:
            return None
    return fully_shard, MixedPrecisionPolicy, FSDPModule


def parallelize(
    module: nn.Module,
    dist: DistInfo,
    *,
    strategy: str = "ddp",
    bf16: bool = False,
    reshard_after_forward: bool = True,
    activation_checkpointing: bool = False,
    compile: bool = False,
    compile_backend: str = "inductor",
) -> nn.Module:
    """Move `module` to `dist.device` and prepare it for training, in torchtitan's order.

    Per unit of `module.blocks()`: activation checkpointing (recompute the unit's activations in
    the backward pass instead of storing them), then `torch.compile` (in place: parameter names
    do not change), then, for "fsdp2", `fully_shard` (each rank keeps 1/world_size of the unit's
    parameters, all-gathers them for its forward and backward and reduce-scatters gradients);
    finally the root is sharded (FSDP2) or wrapped in DistributedDataParallel ("ddp").

    Args:
        module: the plain model; must have `blocks() -> list[nn.Module]`.
        dist: from `init_distributed`.
        strategy: "none", "ddp" or "fsdp2". With world_size == 1 nothing is wrapped or sharded.
        bf16: FSDP2 mixed precision: all-gather bf16 parameters, reduce gradients in float32 (the
            sharded master weights stay float32; compute runs under the trainer's bf16 autocast).
        reshard_after_forward: FSDP2: free each unit's gathered parameters after its forward
            (less memory, one more all-gather in the backward).
        activation_checkpointing: recompute each unit's activations in the backward pass.
        compile: `torch.compile` each unit with `compile_backend`.

    Returns:
        The model to call in the training step (`unwrap` gives the plain module back).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown parallel strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    module = module.to(dist.device)
    units = [u for u in module.blocks() if any(True for _ in u.parameters())]
    if activation_checkpointing:
        from torch.distributed._composable import checkpoint

        for unit in units:
            checkpoint(unit)
    if compile:
        for unit in units:
            unit.compile(backend=compile_backend)
    if strategy == "none" or dist.world_size == 1:
        return module
    if strategy == "ddp":
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)
    fsdp = _fsdp()
    if fsdp is None:
        raise RuntimeError("strategy 'fsdp2' needs torch.distributed.fsdp.fully_shard (torch >= 2.4)")
    fully_shard, MixedPrecisionPolicy, _ = fsdp
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16
          else MixedPrecisionPolicy())
    for unit in units:
        fully_shard(unit, mp_policy=mp, reshard_after_forward=reshard_after_forward)
    # The root's forward inputs stay as they are (e.g. float32 signal levels); autocast casts the compute.
    root_mp = MixedPrecisionPolicy(param_dtype=mp.param_dtype, reduce_dtype=mp.reduce_dtype, cast_forward_inputs=False)
    fully_shard(module, mp_policy=root_mp, reshard_after_forward=reshard_after_forward)
    return module


def is_sharded(model: nn.Module) -> bool:
    """True if `model` (or its root) is sharded by FSDP2."""
    fsdp = _fsdp()
    return fsdp is not None and isinstance(unwrap(model), fsdp[2])


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Reduce gradients across ranks in this backward (enabled) or only accumulate them locally.

    Use `enabled=False` for all but the last micro-step of gradient accumulation.
    """
    if enabled:
        yield
    elif isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
    elif is_sharded(model):
        unwrap(model).set_requires_gradient_sync(False)
        try:
            yield
        finally:
            unwrap(model).set_requires_gradient_sync(True)
    else:
        yield


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor shard (a collective: every rank must call it), or `t` itself."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def unwrap(module: nn.Module) -> nn.Module:
    """Return the plain module inside DDP / DataParallel / torch.compile wrappers (any nesting)."""
    while True:
        if isinstance(module, (DistributedDataParallel, DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile
            module = module._orig_mod
        else:
            return module
