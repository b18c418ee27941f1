"""Train only what you need: freeze parameters by name (`train.trainable`) and train low-rank adapters through
peft (`train.lora`), on the plain module, before `parallelize`.

Names are the TrainModule's: `generator.` + the generator's parameter names, and `text_encoder.*` for a
trainable text encoder. A pattern (fnmatch glob) names a parameter or a module by any dotted tail of its path:
`conditioner.mixer`, `*.reward_embedders.*` and `generator.network.conditioner.mixer.0.sa.qkv.weight` all work;
a pattern that names nothing is a one-line error.

peft replaces each adapted `nn.Linear` at `L` by a layer holding `L.base_layer.{weight,bias}` (frozen) and
`L.lora_A.default.weight` (r, in), `L.lora_B.default.weight` (out, r) (trained); its output is
`base(x) + scale * B A x` with scale = alpha / rank. Checkpoints keep those names (model and optimizer state:
resume is exact). The *exported* model has the adapters merged, `L.weight = W + scale * B @ A`, under the
original names: `export_state` gives that view of a live module (the EMA averages it), `exported_names` turns
a checkpoint's raw tensors into it (`mirokit export`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import torch
from torch import Tensor, nn

from mirokit.train.parallelize import unwrap

LORA_EXTRA = "pip install 'mirokit[lora]'"
ADAPTER = "default"  # peft's adapter name; one adapter per run


@dataclass(kw_only=True)
class LoraConfig:
    """Low-rank adapters (LoRA, through peft) on the generator's Linear layers; the rest is frozen.

    The exported model has them merged into plain weights (W + alpha/rank * B @ A)."""

    rank: int = 8
    """rank r of each adapter (B: out x r, A: r x in)"""
    alpha: float = 8.0
    """the adapter's output is scaled by alpha / rank"""
    targets: list[str] = field(default_factory=lambda: ["*"])
    """Linear layers to adapt: globs over the generator's module names, matched on any dotted tail (e.g. [qkv, q, kv,
    out] or [conditioner.mixer]; * = every Linear layer)"""
    dropout: float = 0.0
    """dropout on the adapters' input during training"""

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"train.lora.rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"train.lora.alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"train.lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise ValueError("train.lora.targets is empty; * adapts every Linear layer")

    @property
    def scale(self) -> float:
        """What the adapter's output B A x is multiplied by."""
        return self.alpha / self.rank


def matches(name: str, pattern: str) -> bool:
    """True if `pattern` names `name` or a module containing it, by any dotted tail of the path."""
    return any(fnmatchcase(name, p) for p in (pattern, "*." + pattern, pattern + ".*", "*." + pattern + ".*"))


def _select(names: list[str], patterns: list[str], what: str, noun: str) -> set[str]:
    chosen: set[str] = set()
    for pattern in patterns:
        hit = {n for n in names if matches(n, pattern)}
        if not hit:
            heads = list(dict.fromkeys(".".join(n.split(".")[:3]) for n in names))
            raise ValueError(f"{what}: {pattern!r} matches no {noun}; names look like {', '.join(heads[:6])}, ...")
        chosen |= hit
    return chosen


def add_lora(generator: nn.Module, cfg: LoraConfig) -> list[str]:
    """Inject LoRA adapters (peft) into the Linear layers of `generator` named by `cfg.targets`, in place; every
    other parameter of `generator` is frozen. Returns the adapted layers' names."""
    try:
        import peft
    except ImportError:
        raise RuntimeError(f"train.lora needs peft: {LORA_EXTRA}") from None
    linears = [n for n, m in generator.named_modules() if isinstance(m, nn.Linear)]
    targets = sorted(_select(linears, cfg.targets, "train.lora.targets", "Linear layer"))
    peft.inject_adapter_in_model(peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                 target_modules=targets, bias="none"), generator, ADAPTER)
    return targets


def prepare(module: nn.Module, *, trainable: list[str], lora: LoraConfig | None) -> None:
    """Freeze `module` (a TrainModule: `.generator`, maybe `.text_encoder`) except the parameters named by
    `trainable` (all of them when empty) and, with `lora`, add adapters to the generator (trained; with `lora`
    and no `trainable`, only the adapters train). Call before `parallelize`, the optimizer and the EMA."""
    if not trainable and lora is None:
        return
    named = dict(module.named_parameters())
    chosen = _select(list(named), trainable, "train.trainable", "parameter") if trainable else set()
    keep = {id(named[n]) for n in chosen}
    before = set(map(id, module.parameters()))
    if lora is not None:
        add_lora(module.generator, lora)
    for p in module.parameters():  # by identity: peft renames what it wraps (x.weight -> x.base_layer.weight)
        p.requires_grad_(id(p) not in before or id(p) in keep)


def lora_layers(module: nn.Module) -> dict[str, nn.Module]:
    """{name: peft LoRA layer} of `module`, found by their parts (`base_layer`, `lora_A`) without importing peft."""
    return {name: m for name, m in module.named_modules() if isinstance(getattr(m, "base_layer", None), nn.Linear)
            and isinstance(getattr(m, "lora_A", None), nn.ModuleDict)}


def merged_weight(layer: nn.Module) -> Tensor:
    """W + sum over adapters of scale * B @ A, in W's dtype and (DTensor) placement."""
    weight = layer.base_layer.weight
    for name, down in layer.lora_A.items():
        delta = (layer.lora_B[name].weight @ down.weight) * layer.scaling[name]
        if hasattr(weight, "placements") and tuple(delta.placements) != tuple(weight.placements):
            delta = delta.redistribute(weight.device_mesh, weight.placements)  # FSDP2: shard like W
        weight = weight + delta.to(weight.dtype)
    return weight


@torch.no_grad()
def export_state(module: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The module's weights under the names of the model it exports, as (moving, fixed).

    moving: the trained parameters, the buffers and the merged weight of each LoRA layer (computed now);
    fixed: the frozen parameters (the live tensors, not copies). Without frozen parameters or adapters this is
    (parameters and buffers, {}): the module's own state."""
    module = unwrap(module)  # DDP / compile prefixes never reach the names
    moving: dict[str, Tensor] = {}
    fixed: dict[str, Tensor] = {}
    inside: set[int] = set()
    for name, layer in lora_layers(module).items():
        moving[f"{name}.weight"] = merged_weight(layer)
        bias = layer.base_layer.bias
        if bias is not None:
            (moving if bias.requires_grad else fixed)[f"{name}.bias"] = bias
        inside.update(map(id, layer.parameters()))
    for name, p in module.named_parameters():
        if id(p) not in inside:
            (moving if p.requires_grad else fixed)[name] = p
    moving.update(module.named_buffers())
    return moving, fixed


def exported_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A raw state (a checkpoint's `model.*`) under the exported names: adapters dropped, `L.base_layer.x` -> `L.x`.
    The LoRA layers' weights so named are the *base* weights, not merged: the merged ones come from the EMA."""
    out = {}
    for name, value in state.items():
        parts = name.split(".")
        if any(part.startswith("lora_") for part in parts):
            continue
        out[".".join(p for p in parts if p != "base_layer")] = value
    return out


def _size(n: float, unit: str = "") -> str:
    """1234567 -> "1.23M"; with unit "B": "1.23 MB"."""
    for prefix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            number = f"{n:.3g}" if prefix else str(int(n))
            return f"{number} {prefix}{unit}" if unit else f"{number}{prefix}"
        n /= 1000
    return ""


def describe(module: nn.Module, ema_shadow: dict[str, Tensor]) -> str:
    """One line: trainable parameters N of M (x%) and the memory of weights, gradients, optimizer state (two
    float32 moments per trained element: AdamW and LAMB) and EMA, for the whole model (what one process or each DDP
    rank holds; FSDP2 divides it among the ranks)."""
    params = list(unwrap(module).parameters())
    total = sum(p.numel() for p in params)
    trained = [p for p in params if p.requires_grad]
    n = sum(p.numel() for p in trained)
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(p.numel() * p.element_size() for p in trained)
    ema = sum(t.numel() * t.element_size() for t in ema_shadow.values())
    return (f"trainable parameters: {_size(n)} of {_size(total)} ({100 * n / max(total, 1):.2f}%); memory: weights "
            f"{_size(weights, 'B')}, gradients {_size(grads, 'B')}, optimizer state {_size(8 * n, 'B')}, "
            f"EMA {_size(ema, 'B')} (FSDP2 divides these among the ranks)")
