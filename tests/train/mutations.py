"""Deliberate bugs, loaded into training processes through MIROKIT_PLUGINS, to show that the parallel
tests' comparisons fail on a real error (not only pass on a correct run).

MIROKIT_MUTATION=unaveraged   DDP: rank 0 keeps its own gradient instead of the average over ranks
MIROKIT_MUTATION=no_optimizer_state   a resumed run starts with a fresh optimizer state
"""

import os

MUTATION = os.environ.get("MIROKIT_MUTATION", "")


def _unaveraged_hook(state, bucket):
    import torch.distributed as dist

    local = bucket.buffer().clone()
    reduced = dist.all_reduce(bucket.buffer().div_(dist.get_world_size()), async_op=True).get_future()
    if dist.get_rank() != 0:
        return reduced.then(lambda fut: fut.value()[0])
    return reduced.then(lambda fut: local)


if MUTATION == "unaveraged":
    from torch.nn.parallel import DistributedDataParallel

    from mirokit.train import loop

    _parallelize = loop.parallelize

    def parallelize(*args, **kwargs):
        model = _parallelize(*args, **kwargs)
        if isinstance(model, DistributedDataParallel):
            model.register_comm_hook(None, _unaveraged_hook)
        return model

    loop.parallelize = parallelize
elif MUTATION == "no_optimizer_state":
    from mirokit.train.checkpoint import OptimizerState

    _load = OptimizerState.load_state_dict

    def load_state_dict(self, state):
        _load(self, state)
        self.optimizer.state.clear()  # the checkpoint's moments and step counts are dropped

    OptimizerState.load_state_dict = load_state_dict
elif MUTATION:
    raise ValueError(f"unknown MIROKIT_MUTATION {MUTATION!r}")
