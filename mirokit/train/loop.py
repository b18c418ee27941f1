"""One training loop for one CPU process, one GPU, or many ranks under torchrun (DDP / FSDP2).

Every step's randomness (data order, condition dropout, noise, signal levels) is drawn for the
*global* batch from a generator seeded by (seed, step); each rank takes its slice. That makes
resume exact and makes N ranks match one process at the same global batch.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from mirokit.config import to_dict
from mirokit.data.sampler import EpochShuffle
from mirokit.data.source import build_dataset
from mirokit.encoders.pixel import PixelSpace
from mirokit.encoders.text import build_text_encoder
from mirokit.flow.loss import draw_flow_noise, flow_matching_loss
from mirokit.models.generator import MiroGenerator
from mirokit.pipeline import MiroPipeline
from mirokit.train import checkpoint as ckpt
from mirokit.train.conditions import drop_conditions
from mirokit.train.config import RunConfig
from mirokit.train.distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from mirokit.train.ema import EMA
from mirokit.train.metrics import MetricsLogger
from mirokit.train.module import TrainModule
from mirokit.train.optim import build_optimizer, lr_factor
from mirokit.train.parallelize import unwrap, wrap_model

FINAL_MODEL_DIR = "model"


def step_generator(seed: int, step: int) -> torch.Generator:
    """CPU generator for optimizer step `step`: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def fetch_batch(dataset, indices: list[int], reward_keys: list[str]):
    """Load samples by index into a Batch (images (B, C, H, W) in [-1, 1], captions, rewards (B, K))."""
    if hasattr(dataset, "batch"):
        return dataset.batch(indices, reward_keys)
    from mirokit.data.batch import collate

    return collate([dataset[i] for i in indices], reward_keys)


class Trainer:
    """Builds everything from a RunConfig, resumes from the run folder if possible, and trains."""

    def __init__(self, cfg: RunConfig, dist: DistInfo | None = None, dataset=None):
        self.dist = dist or init_distributed(cfg.train.device)
        tc = cfg.train
        if tc.threads > 0:
            torch.set_num_threads(tc.threads)
        per_rank, rem = divmod(tc.batch_size, self.dist.world_size * tc.grad_accum)
        if rem or per_rank == 0:
            raise ValueError(f"train.batch_size={tc.batch_size} must be a multiple of "
                             f"world_size*grad_accum={self.dist.world_size * tc.grad_accum}")
        self.micro_batch = per_rank
        torch.manual_seed(tc.seed)
        self.text_encoder = build_text_encoder(dict(cfg.text_encoder))
        cfg = replace(cfg, model=replace(cfg.model, text_dim=self.text_encoder.dim))
        self.cfg = cfg
        self.generator = MiroGenerator(cfg.model)
        self.module = TrainModule(self.generator, self.text_encoder).to(self.dist.device)
        self.text_encoder.to(self.dist.device)
        # an in-memory dataset (e.g. a scored world) may be passed instead of cfg.data
        self.dataset = dataset if dataset is not None else build_dataset(
            cfg.data, image_size=cfg.model.image_size, channels=cfg.model.image_channels)
        self.order = EpochShuffle(len(self.dataset), tc.seed)
        self.optimizer = build_optimizer(self.module, cfg.optim)
        self.ema = EMA(self.module, tc.ema_decay, warmup=tc.ema_warmup)
        self.out_dir = Path(cfg.out_dir)
        self.step = 0
        latest = ckpt.latest_checkpoint(self.out_dir)
        if latest is not None:
            self._resume(latest)
        self.model = wrap_model(self.module, self.dist, strategy=cfg.train.parallel)
        self.metrics = MetricsLogger(self.out_dir, enabled=self.dist.is_main)
        if latest is not None:
            self.metrics.truncate_after(self.step)

    # -- state ------------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        loaded = ckpt.load_train_state(path, self.dist.device)
        self.module.load_state_dict(loaded["weights"])
        self.ema.load_state_dict(loaded["ema"])
        ckpt.restore_optimizer(self.optimizer, loaded)
        self.step = int(loaded["state"]["step"])
        if self.dist.is_main:
            print(f"resuming from {path} at step {self.step}")

    def export(self, directory: Path, *, use_ema: bool = True) -> None:
        """Write a loadable model folder (pipeline layout) with EMA (or raw) weights."""
        state = self.ema.state_dict() if use_ema else unwrap(self.model).state_dict()
        pipe = MiroPipeline(self.generator, self.text_encoder, PixelSpace(),
                            extra={"training": to_dict(self.cfg), "step": self.step})
        te_state = ckpt.split_prefix(state, "text_encoder") if self.module.text_encoder is not None else None
        pipe.save_pretrained(directory, generator_state=ckpt.split_prefix(state, "generator"),
                             text_encoder_state=te_state)
        calibration = getattr(self.dataset, "calibration", None)
        if calibration is not None:  # the reward calibration travels with the checkpoint
            calibration.save(Path(directory) / "calibration.json")

    def save(self) -> Path | None:
        """Checkpoint the current step (rank 0 writes; every rank joins the EMA gather)."""
        weights = unwrap(self.model).state_dict()
        ema_state = self.ema.state_dict()
        if not self.dist.is_main:
            return None
        return ckpt.save_checkpoint(
            self.out_dir, self.step, export_fn=self.export, weights=weights, ema=ema_state,
            optimizer=self.optimizer, keep=self.cfg.train.keep_checkpoints,
            state={"images_seen": self.step * self.cfg.train.batch_size, "config": to_dict(self.cfg)},
        )

    # -- one step ---------------------------------------------------------------------------
    def _autocast(self):
        prec = self.cfg.train.precision
        use_bf16 = prec == "bf16" or (prec == "auto" and self.dist.device.type == "cuda")
        if not use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dist.device.type, dtype=torch.bfloat16)

    def train_step(self) -> dict[str, float]:
        """One optimizer step over the global batch; returns metrics averaged over micro-batches."""
        tc, mc = self.cfg.train, self.cfg.model
        gen = step_generator(tc.seed, self.step)
        torch.manual_seed(tc.seed * 1_000_003 + self.step)  # any in-model randomness (e.g. dropout)
        indices = self.order.indices(self.step * tc.batch_size, tc.batch_size)
        captions_all = [None] * tc.batch_size
        rank_lo = self.dist.rank * self.micro_batch * tc.grad_accum
        rank_hi = rank_lo + self.micro_batch * tc.grad_accum
        batch = fetch_batch(self.dataset, indices[rank_lo:rank_hi], mc.reward_keys)
        # Dropout and noise are drawn for the global batch so every rank count sees the same numbers.
        captions_all[rank_lo:rank_hi] = batch.captions
        rewards_all = torch.zeros(tc.batch_size, len(mc.reward_keys))
        rewards_all[rank_lo:rank_hi] = batch.rewards
        captions_all, rewards_all = drop_conditions(
            [c or "" for c in captions_all], rewards_all, text_p=tc.text_dropout, reward_p=tc.reward_dropout,
            generator=gen)
        draw = draw_flow_noise((tc.batch_size, mc.image_channels, mc.image_size, mc.image_size), self.cfg.flow, gen)
        lr = self.cfg.optim.lr * lr_factor(self.step, self.cfg.optim)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        totals: dict[str, float] = {}
        device = self.dist.device
        for micro in range(tc.grad_accum):
            lo = rank_lo + micro * self.micro_batch
            hi = lo + self.micro_batch
            x0 = batch.images[lo - rank_lo:hi - rank_lo].to(device)
            conditions = {"rewards": rewards_all[lo:hi].to(device) if mc.reward_keys else None}
            if self.module.text_encoder is not None:
                conditions["captions"] = captions_all[lo:hi]
            else:
                with torch.no_grad():
                    text, mask = self.text_encoder(captions_all[lo:hi])
                conditions.update(text=text.to(device), text_mask=mask.to(device))
            last = micro == tc.grad_accum - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.model, "no_sync") else self.model.no_sync()
            with sync:
                with self._autocast():
                    loss, stats = flow_matching_loss(self.model, x0, conditions, draw.slice(lo, hi), self.cfg.flow)
                (loss / tc.grad_accum).backward()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value) / tc.grad_accum
        clip = self.cfg.optim.grad_clip
        params = [p for p in self.module.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model, self.ema.decay_at(self.step))
        self.step += 1
        totals.update(lr=lr, grad_norm=float(grad_norm))
        return totals

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train until cfg.train.steps, checkpointing and logging; returns the exported model folder."""
        tc = self.cfg.train
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
        bar = tqdm(total=tc.steps, initial=self.step, desc="training", unit="step",
                   disable=not (tc.progress and self.dist.is_main), dynamic_ncols=True)
        window_start, window_steps = time.perf_counter(), 0
        while self.step < tc.steps:
            stats = self.train_step()
            window_steps += 1
            bar.update(1)
            if not math.isfinite(stats["loss"]):
                raise FloatingPointError(f"loss became {stats['loss']} at step {self.step}; "
                                         "lower optim.lr or check the data")
            if self.step % tc.log_every == 0 or self.step == tc.steps:
                # each rank saw its own slice: log the global-batch average
                keys = sorted(k for k in stats if k not in ("lr", "grad_norm"))
                averaged = all_reduce_mean(torch.tensor([stats[k] for k in keys], device=self.dist.device))
                stats.update(zip(keys, averaged.tolist()))
                elapsed = time.perf_counter() - window_start
                stats["images_per_s"] = window_steps * tc.batch_size / max(elapsed, 1e-9)
                stats["images_seen"] = self.step * tc.batch_size
                self.metrics.log(self.step, stats)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", mse=f"{stats['mse']:.4f}")
                window_start, window_steps = time.perf_counter(), 0
            if tc.checkpoint_every and self.step % tc.checkpoint_every == 0 and self.step < tc.steps:
                self.save()
        bar.close()
        self.save()
        final = self.out_dir / FINAL_MODEL_DIR
        if self.dist.is_main:
            self.export(final)
        self.metrics.close()
        return final


def train(cfg: RunConfig, dataset=None) -> Path:
    """Run (or resume) the training described by `cfg` (on `dataset` if given); returns the exported model folder."""
    trainer = Trainer(cfg, dataset=dataset)
    try:
        return trainer.fit()
    finally:
        cleanup()
