"""The one place where models meet data parallelism: DDP or FSDP2 wrapping and unwrapping.

Model code never imports this; the training loop calls `wrap_model` once after building the
model and `unwrap` whenever it needs the plain module (saving, EMA, sampling).
"""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from mirokit.train.distributed import DistInfo

STRATEGIES = ("none", "ddp", "fsdp2")


def _fully_shard():
    try:
        from torch.distributed.fsdp import fully_shard  # torch >= 2.6
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import fully_shard  # torch 2.4 / 2.5
        except ImportError:
            return None
    return fully_shard


def _block_lists(module: nn.Module) -> list[nn.ModuleList | nn.Sequential]:
    """Outermost ModuleLists/Sequentials under `module` (not nested inside another one)."""
    found = []
    for child in module.children():
        if isinstance(child, (nn.ModuleList, nn.Sequential)):
            found.append(child)
        else:
            found.extend(_block_lists(child))
    return found


def wrap_model(
    module: nn.Module,
    dist: DistInfo,
    *,
    strategy: str = "ddp",
    find_unused_parameters: bool = False,
) -> nn.Module:
    """Move `module` to `dist.device` and wrap it for data-parallel training.

    Args:
        module: the plain model (already built, weights initialised identically on every rank
            or loaded from a checkpoint; DDP broadcasts rank 0's weights anyway).
        dist: from `init_distributed`.
        strategy: "none" (no wrapping), "ddp" (DistributedDataParallel; device_ids only on
            CUDA) or "fsdp2" (`fully_shard` on each block of every outermost ModuleList /
            Sequential — or of the root itself if it is one — then on the root).  With
            world_size == 1 every strategy returns the plain module on its device: there is
            nothing to synchronise.
        find_unused_parameters: passed to DDP (keep False unless some parameters get no grad).

    Returns:
        The wrapped module (`unwrap` gives the plain one back; FSDP2 shards in place).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown parallel strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    module = module.to(dist.device)
    if strategy == "none" or dist.world_size == 1:
        return module
    if strategy == "ddp":
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        return DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=find_unused_parameters
        )
    fully_shard = _fully_shard()
    if fully_shard is None:
        raise RuntimeError("strategy 'fsdp2' needs torch.distributed.fsdp.fully_shard (torch >= 2.4)")
    lists = [module] if isinstance(module, (nn.ModuleList, nn.Sequential)) else _block_lists(module)
    for blocks in lists:
        for block in blocks:
            if any(True for _ in block.parameters()):
                fully_shard(block)
    fully_shard(module)
    return module


def unwrap(module: nn.Module) -> nn.Module:
    """Return the plain module inside DDP / DataParallel / torch.compile wrappers (any nesting)."""
    while True:
        if isinstance(module, (DistributedDataParallel, DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile
            module = module._orig_mod
        else:
            return module
