"""Exponential moving average of a model's weights, kept in float32 beside the model.

The shadow is a plain dict name -> tensor (not a deep-copied module): it needs no model class to
save or load, serialises straight to safetensors, and `copy_to` puts it into any module with the
same parameter names (e.g. a fresh model built from the stored config, for export or sampling).

It averages what the run exports (`mirokit.train.trainable.export_state`): the trained parameters, the buffers
and, for LoRA layers, the merged weight W + scale * B @ A under the layer's own name. Frozen parameters never
change: they are not copied, `full_state` reads them from the live module.
"""

from __future__ import annotations

import torch
from torch import nn

from mirokit.train.parallelize import unwrap
from mirokit.train.trainable import export_state


def _named_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (shared tensors listed once) of the unwrapped module."""
    module = unwrap(module)  # DDP / compile prefixes ("module.", "_orig_mod.") never reach the names
    out = dict(module.named_parameters())
    out.update(module.named_buffers())
    return out


def _as_shadow(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    return t.float().clone() if t.is_floating_point() else t.clone()


class EMA:
    """Float32 exponential moving average of a module's parameters and floating-point buffers.

    `shadow[name] = decay * shadow[name] + (1 - decay) * float32(value)` on every `update`.
    Integer / bool buffers (e.g. BatchNorm's `num_batches_tracked`) are copied, not averaged,
    and keep their dtype.  Shadows live on the device of the tensors they track.  With FSDP2 the
    shadows are sharded DTensors like the parameters; `full_state()` then gathers full tensors
    and must be called on every rank.

    Frozen parameters (requires_grad False) are not averaged: they are read from `module` when needed. With
    LoRA layers (peft) the shadow holds their merged weights under the exported names.

    Args:
        module: the model (wrapped or not); the shadow starts as an exact float32 copy.
        decay: EMA decay used by `update` when none is given and capped by `decay_at`.
        warmup: if True, `decay_at(step)` = min(decay, (1 + step) / (10 + step)).
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999, *, warmup: bool = True) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.warmup = warmup
        moving, fixed = export_state(module)
        self.shadow: dict[str, torch.Tensor] = {n: _as_shadow(t) for n, t in moving.items()}
        self.module = module  # where the frozen parameters are read
        self.fixed_names = list(fixed)

    def decay_at(self, step: int) -> float:
        """Decay to use after optimizer step `step` (0-based): warm-up keeps early averages short."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))

    def _matching(self, module: nn.Module) -> dict[str, torch.Tensor]:
        live = export_state(module)[0]
        if live.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - live.keys())[:5]
            extra = sorted(live.keys() - self.shadow.keys())[:5]
            raise KeyError(f"module does not match the EMA: missing {missing}, unexpected {extra}")
        return live

    @torch.no_grad()
    def update(self, module: nn.Module, decay: float | None = None) -> None:
        """Blend the module's current weights into the shadow (`decay` defaults to `self.decay`)."""
        decay = self.decay if decay is None else decay
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        for name, value in self._matching(module).items():
            shadow = self.shadow[name]
            if shadow.is_floating_point():
                # mul_ then add_ (not lerp_) so the arithmetic is exactly the documented formula.
                shadow.mul_(decay).add_(value.detach().float(), alpha=1.0 - decay)
            else:
                shadow.copy_(value)

    def _fixed(self) -> dict[str, torch.Tensor]:
        """The frozen parameters of the tracked module (live tensors), by exported name."""
        fixed = export_state(self.module)[1] if self.fixed_names else {}
        if list(fixed) != self.fixed_names:
            raise KeyError(f"the frozen parameters changed since the EMA was made: {sorted(fixed)[:5]}")
        return fixed

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the EMA weights (and the frozen ones) into `module`, a model with the exported parameter/buffer
        names (a fresh model of the same architecture), cast to its dtypes."""
        full = {**self.shadow, **self._fixed()}
        live = _named_state(module)
        if live.keys() != full.keys():
            missing = sorted(full.keys() - live.keys())[:5]
            extra = sorted(live.keys() - full.keys())[:5]
            raise KeyError(f"module does not match the EMA: missing {missing}, unexpected {extra}")
        for name, value in live.items():
            value.copy_(full[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The live shadow tensors by name (sharded DTensors under FSDP2): what a checkpoint saves, and loads
        back in place."""
        return dict(self.shadow)

    def full_state(self) -> dict[str, torch.Tensor]:
        """Name -> full tensor on CPU (float32 for averaged entries, frozen parameters as they are), ready for
        safetensors; a fresh copy: the exported model's whole state.

        Sharded (FSDP2) entries are gathered one at a time, so a device never holds more than one
        gathered tensor; every rank must call this.
        """
        out = {}
        for name, t in {**self.shadow, **self._fixed()}.items():
            if hasattr(t, "full_tensor"):  # FSDP2 DTensor: gather (collective on all ranks)
                t = t.full_tensor()
            out[name] = t.detach().to("cpu", copy=True).contiguous()
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load tensors of `state_dict()` or `full_state()` (same names and shapes) into the existing shadow (the
        frozen parameters of a `full_state()` are not the EMA's: they are skipped)."""
        state = {k: v for k, v in state.items() if k not in self.fixed_names}
        if state.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - state.keys())[:5]
            extra = sorted(state.keys() - self.shadow.keys())[:5]
            raise KeyError(f"EMA state does not match: missing {missing}, unexpected {extra}")
        for name, shadow in self.shadow.items():
            value = state[name]
            if tuple(value.shape) != tuple(shadow.shape):
                raise ValueError(f"EMA state {name}: shape {tuple(value.shape)} != {tuple(shadow.shape)}")
            if hasattr(shadow, "to_local") and not hasattr(value, "to_local"):
                # Full tensor into a sharded DTensor shadow: take this rank's shard.
                from torch.distributed.tensor import distribute_tensor

                value = distribute_tensor(value.to(shadow.device), shadow.device_mesh, shadow.placements)
            shadow.copy_(value)
