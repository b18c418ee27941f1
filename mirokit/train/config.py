"""The run configuration: one YAML file = model + text encoder + data + loop + optimizer + flow."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirokit.config import from_dict, load_yaml, apply_overrides
from mirokit.data.source import DataConfig
from mirokit.flow.loss import FlowLossConfig
from mirokit.models.generator import GeneratorConfig
from mirokit.train.optim import OptimConfig

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(kw_only=True)
class LoopConfig:
    """Training-loop settings. Work is counted in optimizer steps of `batch_size` images."""

    steps: int = 1000
    """optimizer steps to train for"""
    batch_size: int = 64
    """global batch (all ranks and accumulation micro-steps together)"""
    grad_accum: int = 1
    """micro-steps per optimizer step on each rank"""
    seed: int = 0
    """seed of the initial weights and of every step's randomness (seeded from (seed, step))"""
    text_dropout: float = 0.1
    """probability of replacing a caption by "" and all its rewards by missing (CFG's unconditional branch)"""
    reward_dropout: float = 0.1
    """independent per-reward probability of marking a reward missing (at least one kept per sample)"""
    ema_decay: float = 0.999
    """EMA decay of the exported weights (official 0.9999 at 500k steps)"""
    ema_warmup: bool = True
    """use min(decay, (1+step)/(10+step)) so short runs get a useful EMA"""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16"""
    device: str = "auto"
    """auto | cpu | cuda"""
    parallel: str = "ddp"
    """multi-process wrapper under torchrun: ddp | fsdp2 | none"""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)"""
    log_every: int = 10
    """steps between metrics lines (metrics.jsonl + TensorBoard)"""
    checkpoint_every: int = 500
    """steps between checkpoints (0 = only the final one)"""
    keep_checkpoints: int = 2
    """how many step checkpoints to keep (the final model is always kept)"""
    progress: bool = True
    """show a tqdm progress bar on rank 0"""

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        for name in ("text_dropout", "reward_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"train.{name} must be in [0, 1)")


@dataclass(kw_only=True)
class RunConfig:
    """A whole training run; `mirokit train --config FILE.yaml key=value ...` builds this."""

    out_dir: str = "runs/default"
    """run folder: checkpoints/, model/ (final export), metrics.jsonl, tensorboard/, config.yaml"""
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    """generator architecture (model.text_dim is set from the text encoder)"""
    text_encoder: dict = field(default_factory=lambda: {"kind": "tokens"})
    """text encoder spec: {"kind": "tokens", ...} (trainable, CPU) or {"kind": "hf_t5", "name_or_path": ...}"""
    data: DataConfig = field(default_factory=DataConfig)
    """training data source"""
    train: LoopConfig = field(default_factory=LoopConfig)
    """loop settings"""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """optimizer and schedule"""
    flow: FlowLossConfig = field(default_factory=FlowLossConfig)
    """flow-matching loss settings"""


def load_run_config(path: str | None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (or defaults when path is None) + `a.b=value` overrides -> RunConfig; errors are one line."""
    data = load_yaml(path) if path else {}
    apply_overrides(data, list(overrides or []))
    return from_dict(RunConfig, data)
