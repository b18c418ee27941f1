"""EMA: exact update math, buffers, warm-up decay, persistence and wrapper names."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mirokit.train.ema import EMA


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(self.lin(x))


def _fill(module, value):
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)


def test_initial_shadow_is_float32_copy():
    torch.manual_seed(0)
    model = Tiny().to(torch.bfloat16)
    ema = EMA(model, decay=0.99)
    expected = dict(model.named_parameters()) | dict(model.named_buffers())
    assert ema.shadow.keys() == expected.keys()
    for name, t in expected.items():
        s = ema.shadow[name]
        if t.is_floating_point():
            assert s.dtype == torch.float32 and torch.equal(s, t.float())
        else:
            assert s.dtype == t.dtype
        assert s.data_ptr() != t.data_ptr()


def test_update_math_exact_and_general():
    model = Tiny()
    _fill(model, 1.0)
    ema = EMA(model, decay=0.75)
    _fill(model, 3.0)
    ema.update(model)  # 0.75 * 1 + 0.25 * 3 = 1.5 exactly in binary floating point
    assert all(torch.equal(ema.shadow[n], torch.full_like(p, 1.5)) for n, p in model.named_parameters())

    torch.manual_seed(1)
    ref = {n: t.double() for n, t in ema.shadow.items() if t.is_floating_point()}
    for decay in (0.9, 0.3):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        ema.update(model, decay)
        for n, p in model.named_parameters():
            ref[n] = decay * ref[n] + (1 - decay) * p.double()
    for n, _ in model.named_parameters():
        assert torch.allclose(ema.shadow[n].double(), ref[n], atol=1e-6, rtol=0), n
    ema.update(model, 1.0)  # decay 1 freezes the average
    for n, _ in model.named_parameters():
        assert torch.allclose(ema.shadow[n].double(), ref[n], atol=1e-6, rtol=0), n
    with pytest.raises(ValueError):
        ema.update(model, 1.5)


def test_buffers_averaged_or_copied():
    torch.manual_seed(2)
    model = Tiny()
    ema = EMA(model, decay=0.5)
    model.train()
    model(torch.randn(8, 2) + 4.0)  # moves running_mean, bumps num_batches_tracked
    ema.update(model)
    rm = model.bn.running_mean
    assert torch.allclose(ema.shadow["bn.running_mean"], 0.5 * rm, atol=1e-7)  # started at 0
    assert ema.shadow["bn.num_batches_tracked"].item() == 1
    assert ema.shadow["bn.num_batches_tracked"].dtype == torch.int64


def test_decay_at_warmup():
    ema = EMA(Tiny(), decay=0.999)
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(90) == pytest.approx(91 / 100)
    assert ema.decay_at(10**6) == 0.999
    assert EMA(Tiny(), decay=0.9, warmup=False).decay_at(0) == 0.9


def test_state_dict_roundtrip_and_copy_to(tmp_path):
    torch.manual_seed(3)
    model = Tiny()
    ema = EMA(model, decay=0.8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    save_file(ema.full_state(), str(tmp_path / "ema.safetensors"))

    other = EMA(Tiny(), decay=0.8)
    other.load_state_dict(load_file(str(tmp_path / "ema.safetensors")))
    assert all(torch.equal(other.shadow[n], ema.shadow[n]) for n in ema.shadow)

    target = Tiny().to(torch.float64)
    other.copy_to(target)
    for n, p in target.named_parameters():
        assert p.dtype == torch.float64 and torch.equal(p, ema.shadow[n].double())
    assert not torch.equal(target.lin.weight.float(), model.lin.weight)  # EMA != live weights

    bad = ema.state_dict()
    bad["lin.weight"] = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(bad)
    del bad["lin.weight"]
    with pytest.raises(KeyError):
        other.load_state_dict(bad)
    with pytest.raises(KeyError):
        ema.update(nn.Linear(2, 3))


def test_wrapped_module_names_are_plain():
    torch.manual_seed(4)
    model = Tiny()
    start = model.lin.bias.detach().clone()
    wrapped = nn.DataParallel(model)  # on CPU this just forwards, but names gain "module."
    assert any(n.startswith("module.") for n, _ in wrapped.named_parameters())
    ema = EMA(wrapped, decay=0.5)
    assert ema.shadow.keys() == EMA(model).shadow.keys()
    _fill(model, 2.0)
    ema.update(wrapped)
    fresh = Tiny()
    ema.copy_to(nn.DataParallel(fresh))
    assert torch.allclose(fresh.lin.bias, 0.5 * start + 1.0, atol=1e-7, rtol=0)
