"""Non-CPU devices without a GPU: the `meta` device and fake CUDA, for tests that check where tensors live.

    with on_device("meta") as dev:          # or on_device("cuda"): fake CUDA on this CPU-only torch
        pipe.to(dev.device)                 # the real `.to` of the code under test
        out = pipe("a red circle", output_type="numpy")
    assert dev.readbacks == [(1, 16, 16, 3)]

What each device catches (docs/TESTING.md, "Devices without a GPU"):

- both: a tensor made without a device (`torch.zeros(n)`) meeting the model's tensors is an error, as on a GPU
  (meta: torch's own "Tensor on device cpu is not on the expected device meta!"; fake CUDA: `DeviceMismatch`);
  values cannot be read on the device (`.item()`, `.tolist()`, a data-dependent shape): a per-step host sync is
  an error, not a slowdown.
- fake CUDA: the tensors say `device.type == "cuda"`, so the code's CUDA branches run (`pin_memory`, the half
  precision of T5 and the VAE, CUDA autocast choices); host-to-device copies are recorded with `non_blocking`
  and whether the source was pinned (`dev.copies`).

Neither has values: a copy back to the host (`.cpu()`, `.to("cpu")`) gives zeros of the right shape and dtype and
is recorded in `dev.readbacks`, so a call runs to its end (PIL images, numpy scores) and the test counts the syncs.

How fake CUDA works on a CPU-only build (torch 2.13): tensors are `FakeTensor`s (FakeTensorMode, shapes and dtypes
only) whose device says cuda:0. Three things of a CPU-only torch stop them and are worked around here, in one
TorchFunctionMode:
1. `.to("cuda")` / `.cuda()` / `.pin_memory()` of a real tensor raise ("PyTorch is not linked with support for cuda
   devices", "Cannot access accelerator device"): a copy to CUDA becomes an empty fake CUDA tensor of its shape
   and dtype, pinning a clone that `is_pinned()` reports pinned.
2. Python bindings that build a CUDA device guard before dispatching (indexing `t[a:b]`, `~t`, `t.to(dtype)`, ...)
   raise the same error on a fake CUDA tensor: every call that involves one runs with those tensors reporting
   `meta` (FakeTensorMode's device checks still apply: meta against cpu is the same mismatch), and its results
   report cuda again.
3. Factory calls with `device="cuda"` run inside the FakeTensorMode, so they make fake CUDA tensors.
The FakeTensorMode is entered only for calls that involve fake CUDA tensors: host code (tokenizers, image
preprocessing, numpy after a readback) computes real values. Its memo of converted tensors is cleared after each
call: `nn.Module.to` swaps fake parameters (torch.utils.swap_tensors), which refuses tensors with weak references.
Autograd through fake CUDA tensors fails on a CPU-only build; these tests run inference (no_grad) only.
"""

from __future__ import annotations

import contextlib
import traceback
import weakref
from dataclasses import dataclass, field

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorDeviceMismatchError, FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

CUDA = torch.device("cuda", 0)
META = torch.device("meta")


class DeviceMismatch(RuntimeError):
    """A fake CUDA tensor met a tensor on another device (the error a GPU would raise)."""


class ValueOnDevice(RuntimeError):
    """A value was read from a fake CUDA tensor (`.item()`, `.tolist()`, `bool(t)`): a host sync per call."""


@dataclass
class Copy:
    """One host-to-device copy: its shape, dtype, whether it was non_blocking and whether its source was pinned."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    non_blocking: bool
    pinned: bool


@dataclass
class DeviceRun:
    """What happened on the device inside `on_device`."""

    device: torch.device
    readbacks: list[tuple[int, ...]] = field(default_factory=list)
    """shapes copied back to the host (as zeros)"""
    copies: list[Copy] = field(default_factory=list)
    """host-to-device copies (`.to(device)`, `.cuda()`)"""
    where: list[str] = field(default_factory=list)
    """the line of the code under test that made each readback"""


def _device_arg(args, kwargs) -> torch.device | None:
    """The target device of `Tensor.to(...)` in any of its forms, or None."""
    device = kwargs.get("device")
    if device is None:
        for a in args[1:]:
            if isinstance(a, (str, torch.device, int)) and not isinstance(a, bool):
                device = a
                break
            if isinstance(a, torch.Tensor):
                device = a.device
                break
    if device is None:
        return None
    return torch.device("cuda", device) if isinstance(device, int) else torch.device(device)


def _is_cuda(value) -> bool:
    """A device argument naming CUDA ("cuda", "cuda:0", torch.device("cuda"))."""
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, str) and (value == "cuda" or value.startswith("cuda:"))


def _dtype_arg(t: torch.Tensor, args, kwargs) -> torch.dtype:
    dtype = kwargs.get("dtype")
    if dtype is None:
        dtype = next((a for a in args[1:] if isinstance(a, torch.dtype)), None)
    if dtype is None:
        dtype = next((a.dtype for a in args[1:] if isinstance(a, torch.Tensor)), t.dtype)
    return dtype


def _caller() -> str:
    """The innermost frame outside torch and this file: the line of code that made the call."""
    for frame in reversed(traceback.extract_stack()):
        if "/torch/" not in frame.filename and frame.filename != __file__:
            return f"{frame.filename}:{frame.lineno}"
    return "?"


class _Devices(TorchFunctionMode):
    def __init__(self, run: DeviceRun):
        super().__init__()
        self.run = run
        self.fake = run.device.type == "cuda"
        self.mode = FakeTensorMode(allow_non_fake_inputs=True) if self.fake else None
        self._pinned: dict[int, weakref.ref] = {}

    # -- helpers --------------------------------------------------------------------------------------------
    def _is_fake_cuda(self, t) -> bool:
        return isinstance(t, FakeTensor) and t.fake_device.type == "cuda"

    def _on_device(self, t) -> bool:
        return self._is_fake_cuda(t) if self.fake else (isinstance(t, torch.Tensor) and t.device.type == "meta")

    def _is_pinned(self, t) -> bool:
        ref = self._pinned.get(id(t))
        return ref is not None and ref() is t

    def _readback(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        self.run.readbacks.append(tuple(t.shape))
        self.run.where.append(_caller())
        return torch.zeros(tuple(t.shape), dtype=dtype)

    def _fake_cuda(self, shape, dtype) -> torch.Tensor:
        return FakeTensor(self.mode, torch.empty(shape, dtype=dtype, device=META), CUDA)

    # -- the mode -------------------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        this = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if this is not None and func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            if func is torch.Tensor.to:
                target, dtype = _device_arg(args, kwargs), _dtype_arg(this, args, kwargs)
            else:
                target, dtype = (CUDA if func is torch.Tensor.cuda else torch.device("cpu")), this.dtype
            if target is not None and target.type == "cpu" and self._on_device(this):
                return self._readback(this, dtype)
            if target is not None and target.type == self.run.device.type and not self._on_device(this):
                self.run.copies.append(Copy(tuple(this.shape), dtype, bool(kwargs.get("non_blocking", False)),
                                            self._is_pinned(this)))
                if self.fake:
                    return self._fake_cuda(tuple(this.shape), dtype)
                return func(*args, **kwargs)
        if self.fake and this is not None and not isinstance(this, FakeTensor):
            if func is torch.Tensor.pin_memory:
                copy = this.clone()
                self._pinned[id(copy)] = weakref.ref(copy)
                return copy
            if func is torch.Tensor.is_pinned:
                return self._is_pinned(this)
        if not self.fake:
            return func(*args, **kwargs)
        flat, _ = tree_flatten((args, kwargs))
        on_cuda = [t for t in flat if self._is_fake_cuda(t)]
        factory = _is_cuda(kwargs.get("device")) and func is not torch._C._nn._parse_to  # (Module.to's parser)
        if not on_cuda and not factory:
            return func(*args, **kwargs)
        if on_cuda and func in (torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__,
                                torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.numpy):
            raise ValueOnDevice(f"{name}() reads a value of a cuda tensor (a host sync; fake CUDA has no values)")
        # inside, the device is called meta: a factory's device and a `.to("cuda")` of a tensor already there
        args = tuple(META if _is_cuda(a) else a for a in args)
        kwargs = {k: META if _is_cuda(v) else v for k, v in kwargs.items()}
        for t in on_cuda:
            t.fake_device = META
        try:
            with self.mode:
                out = func(*args, **kwargs)
        except FakeTensorDeviceMismatchError as err:
            raise DeviceMismatch(f"{name}: a cuda tensor met a tensor on another device: "
                                 f"{str(err).replace('meta', 'cuda:0')}") from None
        except RuntimeError as err:
            if "device" in str(err) and "meta" in str(err):
                raise DeviceMismatch(f"{name}: {str(err).replace('meta', 'cuda:0')}") from None
            raise
        finally:
            for t in on_cuda:
                t.fake_device = CUDA
            self.mode.fake_tensor_converter.meta_converter.tensor_memo.clear()

        for t in tree_flatten(out)[0]:  # the results report cuda again (in place: namedtuples etc. stay as they are)
            if isinstance(t, FakeTensor) and t.fake_device.type == "meta":
                t.fake_device = CUDA
        return out


@contextlib.contextmanager
def on_device(kind: str):
    """A `DeviceRun` for "meta" or "cuda" (fake CUDA); see the module docstring. Runs under torch.no_grad()."""
    run = DeviceRun(CUDA if kind == "cuda" else META if kind == "meta" else torch.device(kind))
    if run.device.type not in ("cuda", "meta"):
        raise ValueError(f"on_device: 'meta' or 'cuda', not {kind!r}")
    with torch.no_grad(), _Devices(run):
        yield run


def stopped_in(error: BaseException, path_part: str) -> bool:
    """True if the innermost frame of `error`'s traceback outside torch and this file is in a file whose path holds
    `path_part` (e.g. "transformers/masking_utils.py": a library that reads a value on the device)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "/torch/" not in f.filename and f.filename != __file__]
    return bool(frames) and path_part in frames[-1].filename
