"""The run configuration: one YAML file = model + text encoder + image space + data + loader + loop
+ optimizer + flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mirokit.config import apply_overrides, from_dict, load_yaml
from mirokit.data.loader import LoaderConfig
from mirokit.data.source import DataConfig
from mirokit.data.toy import ToyDataConfig
from mirokit.encoders.pixel import ImageSpaceConfig, PixelSpaceConfig
from mirokit.encoders.text import TextEncoderConfig
from mirokit.encoders.text_tokens import TokenTextEncoderConfig
from mirokit.flow.loss import FlowLossConfig
from mirokit.models.generator import GeneratorConfig
from mirokit.train.optim import OptimConfig
from mirokit.train.trainable import LoraConfig
from mirokit.train.validation import ValidationConfig

PRECISIONS = ("auto", "fp32", "bf16")
REPORT_TO = ("jsonl", "tensorboard", "wandb")


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
    init_from: str = ""
    """start from a trained model instead of random weights (fine-tuning): a mirokit model folder, a run checkpoint
    (checkpoints/step_N, or a run folder: its newest), a released MIRO folder, or a hub id
    OWNER/NAME[:VARIANT][@REVISION] (e.g. nicolas-dufour/miro, nicolas-dufour/miro-ablations:miro-no-clip). Only a
    fresh run reads it (a resume always continues its own checkpoint); model.reward_keys may add or drop keys
    (docs/TRAINING.md "Fine-tuning")"""
    text_dropout: float = 0.1
    """probability of replacing a caption by "" and all its rewards by missing (CFG's unconditional branch)"""
    reward_dropout: float = 0.1
    """independent per-reward probability of marking a reward missing (at least one kept per sample)"""
    ema_decay: float = 0.999
    """EMA decay of the exported weights (official 0.9999 at 500k steps)"""
    ema_warmup: bool = True
    """use min(decay, (1+step)/(10+step)) so short runs get a useful EMA"""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA; on CPU bf16 autocast if the model's training pass is measured >= 1.15x faster
    in it, else fp32: the decision is kept in OUT/precision.json for resumes) | fp32 | bf16"""
    device: str = "auto"
    """auto | cpu | cuda | meta (tests: shapes without values, to find tensors made on the wrong device)"""
    parallel: str = "ddp"
    """multi-process strategy under torchrun: ddp (replicate, all-reduce gradients) | fsdp2 (shard parameters,
    gradients and optimizer state per block) | none"""
    reshard_after_forward: bool = True
    """fsdp2: free each block's gathered parameters after its forward (less memory, one more all-gather)"""
    activation_checkpointing: bool = False
    """recompute each block's activations in the backward pass instead of storing them (less memory, ~1/3
    more compute)"""
    compile: bool = False
    """torch.compile each block (in place; weights and checkpoints keep their names)"""
    compile_backend: str = "inductor"
    """torch.compile backend (inductor; aot_eager or eager for debugging)"""
    peak_tflops: float = 0.0
    """device peak TFLOP/s for the MFU metric (0 = look the GPU up in mirokit.train.mfu.PEAK_TFLOPS_BF16; on CPU,
    measure the matmul peak in the run's precision at start-up); metrics.jsonl logs it as peak_gflops"""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)"""
    log_every: int = 10
    """steps between metrics lines (metrics.jsonl + TensorBoard + W&B)"""
    report_to: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])
    """where rank 0 reports metrics and validation grids: jsonl (OUT/metrics.jsonl, the run's record: required) |
    tensorboard (OUT/tensorboard/) | wandb (Weights & Biases: pip install 'mirokit[wandb]'; see docs/TRAINING.md)"""
    wandb_project: str = ""
    """W&B project ("" = the WANDB_PROJECT environment variable, else mirokit); the entity is WANDB_ENTITY or the
    account's default"""
    wandb_run_name: str = ""
    """W&B run name ("" = the name of out_dir); the run id is kept in OUT/wandb_run.json so resumes continue it"""
    checkpoint_every: int = 500
    """steps between checkpoints (0 = only the final one)"""
    keep_checkpoints: int = 2
    """how many step checkpoints to keep (the final model is always kept)"""
    progress: bool = True
    """show a tqdm progress bar on rank 0"""
    trainable: list[str] = field(default_factory=list)
    """parameters to train, the rest frozen: globs over the names generator.<parameter> (and text_encoder.* for a
    trainable encoder), matched on any dotted tail, e.g. [conditioner.reward_embedders, conditioner.mixer]; [] =
    all (with lora: only the adapters, plus those named here)"""
    lora: LoraConfig | None = None
    """train low-rank adapters (peft: pip install 'mirokit[lora]') instead of the weights, e.g. {rank: 8, alpha: 8,
    targets: ["*"]}; null = none. Checkpoints keep the adapters; the exported model has them merged"""

    def __post_init__(self):
        if self.parallel not in ("none", "ddp", "fsdp2"):
            raise ValueError(f"unknown train.parallel {self.parallel!r}; known: none, ddp, fsdp2")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        unknown = [name for name in self.report_to if name not in REPORT_TO]
        if unknown:
            raise ValueError(f"unknown train.report_to {unknown[0]!r}; known: {', '.join(REPORT_TO)}")
        if "jsonl" not in self.report_to:
            raise ValueError("train.report_to must include jsonl (metrics.jsonl is the run's record), e.g. "
                             "[jsonl, wandb]")
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
    text_encoder: TextEncoderConfig = field(default_factory=TokenTextEncoderConfig)
    """text encoder: {kind: tokens, ...} (trainable, CPU) or {kind: hf_t5, name_or_path: ...} (frozen T5)"""
    image_space: ImageSpaceConfig = field(default_factory=PixelSpaceConfig)
    """the space the generator models: {kind: pixels}"""
    data: DataConfig = field(default_factory=ToyDataConfig)
    """training data: {kind: toy | jsonl | world (shapes-world plugin) | any registered source, ...}"""
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """how batches reach the step (DataLoader workers, prefetch, pinned memory)"""
    train: LoopConfig = field(default_factory=LoopConfig)
    """loop settings"""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """optimizer and schedule"""
    flow: FlowLossConfig = field(default_factory=FlowLossConfig)
    """flow-matching loss settings"""
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    """sample grids from the EMA weights during training"""
    sampling: dict = field(default_factory=dict)
    """sampling defaults stored with the exported model (pipeline.json "sampler_defaults"), a partial
    SamplingSettings such as {solver: ab2, steps: 6, guidance: 3}: `mirokit sample` and `MiroPipeline(...)` use
    them where neither an explicit setting nor a preset decides (mirokit.sampling.resolve)"""

    def __post_init__(self):
        from mirokit.sampling import check_partial

        self.sampling = check_partial(self.sampling, "config sampling")
        unknown = [k for name in ("rewards", "negative_rewards") for k in self.sampling.get(name, {})
                   if k not in self.model.reward_keys]
        if unknown:
            raise ValueError(f"config sampling: unknown reward key {unknown[0]!r}; the model has "
                             f"{', '.join(self.model.reward_keys) or 'none'}")


BUILTIN_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
"""Folder of the built-in run configs (cpu_tiny, demo_unet, demo_world)."""


def resolve_config(name: str | None) -> str | None:
    """A path, or the name of a built-in config (e.g. `cpu_tiny`) shipped in mirokit/configs/."""
    if name is None or Path(name).exists():
        return name
    builtin = BUILTIN_CONFIGS / f"{name}.yaml"
    return str(builtin) if builtin.is_file() else name


def load_run_config(path: str | None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file or built-in config name (or defaults when None) + `a.b=value` overrides -> RunConfig;
    errors are one line."""
    path = resolve_config(path)
    data = load_yaml(path) if path else {}
    apply_overrides(data, list(overrides or []))
    return from_dict(RunConfig, data)
