"""Checkpointer (single process): exact optimizer/EMA/weight round trip, pickle-free files, clear errors."""

import copy

import pytest
import test_optim
import torch
from torch import nn

from mirokit.distributed import DistInfo
from mirokit.train import checkpoint as ckpt
from mirokit.train.ema import EMA
from mirokit.train.optim import OptimConfig, build_optimizer

DIST = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Note:
    """A Stateful holding only a JSON value (the trainer's counters are one)."""

    def __init__(self, text: str = ""):
        self.text = text

    def state_dict(self):
        return {"text": self.text}

    def load_state_dict(self, state):
        self.text = state["text"]


def saver(root, model, opt, ema, note=None, **kwargs):
    """A Checkpointer of the model, its optimizer, its EMA (and a Note)."""
    states = {"model": ckpt.ModelState(model), "optim": ckpt.OptimizerState(model, opt), "ema": ema}
    if note is not None:
        states["note"] = note
    return ckpt.Checkpointer(root, states=states, dist=DIST, **kwargs)


class Tiny(test_optim.Tiny):
    """test_optim's model plus a buffer (checkpointed too)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor([2.0, 0.5]))

    def forward(self, x):
        return super().forward(x) * self.scale


def _step(model, opt, ema, seed):
    g = torch.Generator().manual_seed(seed)
    opt.zero_grad()
    nn.functional.mse_loss(model(torch.randn(5, 3, generator=g)), torch.randn(5, 2, generator=g)).backward()
    opt.step()
    ema.update(model, 0.7)


def _run(name):
    torch.manual_seed(1)
    model = Tiny()
    opt = build_optimizer(model, OptimConfig(name=name, lr=1e-2))
    return model, opt, EMA(model, 0.7)


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_save_load_continues_exactly(name, tmp_path):
    model, opt, ema = _run(name)
    for s in range(3):
        _step(model, opt, ema, s)
    path = saver(tmp_path, model, opt, ema, Note("x")).save(3)
    assert path.name == "step_0000003" and ckpt.read_state(path)["note"] == {"text": "x"}
    files = sorted(p.name for p in (path / "train_state").iterdir())
    assert files == ["shard-00001-model-00001-of-00001.safetensors", "state.json"]  # no pickle anywhere

    resumed, opt2, ema2 = _run(name)  # fresh weights and optimizer: everything comes from the checkpoint
    note = Note()
    meta = saver(tmp_path, resumed, opt2, ema2, note).load(path)
    assert meta["step"] == 3 and note.text == "x"
    control = copy.deepcopy(model)  # same weights, fresh optimizer state
    opt3, ema3 = build_optimizer(control, OptimConfig(name=name, lr=1e-2)), EMA(control, 0.7)
    for s in range(3, 6):
        for m, o, e in ((model, opt, ema), (resumed, opt2, ema2), (control, opt3, ema3)):
            _step(m, o, e, s)
    for (n, p), p2 in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(p, p2), n
    for n, t in ema.shadow.items():
        assert torch.equal(t, ema2.shadow[n]), n
    assert not all(torch.equal(p, p3) for p, p3 in zip(model.parameters(), control.parameters()))
    assert torch.equal(ckpt.read_tensors(path, "model.")["scale"], torch.tensor([2.0, 0.5]))


def test_mismatches_are_one_line_errors(tmp_path):
    model, opt, ema = _run("adamw")
    _step(model, opt, ema, 0)
    path = saver(tmp_path, model, opt, ema).save(1)
    model2, opt2, ema2 = _run("lamb")
    with pytest.raises(ValueError, match="trained with AdamW, this run uses Lamb"):
        saver(tmp_path, model2, opt2, ema2).load(path)
    bigger = nn.Sequential(Tiny(), nn.Linear(2, 2))
    opt3 = build_optimizer(bigger, OptimConfig(name="adamw"))
    with pytest.raises(ValueError, match="does not match this run: it has no tensor") as info:
        saver(tmp_path, bigger, opt3, EMA(bigger)).load(path)
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="not a mirokit training checkpoint"):
        ckpt.read_state(tmp_path)


def test_keep_prunes_old_checkpoints_and_leaves_no_temporaries(tmp_path):
    model, opt, ema = _run("adamw")
    checkpointer = saver(tmp_path, model, opt, ema, keep=2)
    for step in (1, 2, 3):
        _step(model, opt, ema, step)
        checkpointer.save(step)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_0000002", "step_0000003"]
    assert ckpt.latest_checkpoint(tmp_path).name == "step_0000003"
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))
