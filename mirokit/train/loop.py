"""One training loop for one CPU process, one GPU, or many ranks under torchrun (DDP / FSDP2).

Build order (torchtitan's): text encoder -> generator -> `parallelize` (activation checkpointing,
compile, DDP or FSDP2 sharding) -> optimizer and EMA on the final parameters -> resume from the
run folder's newest checkpoint (any number of ranks) -> DataLoader for the remaining steps.

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
from torch import Tensor
from tqdm.auto import tqdm

from mirokit.atomic import SOLE_WRITER, write_atomic
from mirokit.config import to_dict
from mirokit.data.batch import Batch
from mirokit.data.loader import StepBatchSampler, batches, build_loader
from mirokit.data.sampler import EpochShuffle
from mirokit.data.source import TrainDataset, build_dataset, check_dataset
from mirokit.distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from mirokit.encoders.pixel import build_image_space
from mirokit.encoders.text import build_text_encoder, pad_tokens
from mirokit.flow.loss import draw_flow_noise, flow_matching_loss
from mirokit.models.generator import MiroGenerator
from mirokit.train.checkpoint import Checkpointer, ModelState, OptimizerState, checkpoint_name, latest_checkpoint
from mirokit.train.conditions import drop_conditions
from mirokit.train.config import RunConfig
from mirokit.train.ema import EMA
from mirokit.train.export import pipeline_from_ema
from mirokit.train.init_from import InitFrom
from mirokit.train.mfu import device_peak_tflops, throughput_stats, train_flops_per_image
from mirokit.train.module import TrainModule
from mirokit.train.optim import build_optimizer, lr_factor
from mirokit.train.parallelize import full_tensor, gradient_sync, is_sharded, parallelize
from mirokit.train.precision import measure_cpu_bf16, resolve_precision, synthetic_loss
from mirokit.train.reporting import open_metrics, wandb_run_id
from mirokit.train.trainable import describe, prepare

FINAL_MODEL_DIR = "model"


def step_generator(seed: int, step: int) -> torch.Generator:
    """CPU generator for optimizer step `step`: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class Trainer:
    """Builds everything from a RunConfig, resumes from the run folder if possible, and trains.

    `dataset` (any `TrainDataset`, e.g. an in-memory scored world) replaces `cfg.data` if given.
    """

    def __init__(self, cfg: RunConfig, dist: DistInfo | None = None, dataset: TrainDataset | None = None):
        self.dist = dist or init_distributed(cfg.train.device)
        tc = cfg.train
        if tc.threads > 0:
            torch.set_num_threads(tc.threads)
        per_rank, rem = divmod(tc.batch_size, self.dist.world_size * tc.grad_accum)
        if rem or per_rank == 0:
            raise ValueError(f"train.batch_size={tc.batch_size} must be a multiple of "
                             f"world_size*grad_accum={self.dist.world_size * tc.grad_accum}")
        self.micro_batch = per_rank
        torch.manual_seed(tc.seed)  # identical initial weights on every rank
        self.text_encoder = build_text_encoder(cfg.text_encoder)
        cfg = replace(cfg, model=replace(cfg.model, text_dim=self.text_encoder.dim))
        init = InitFrom.prepare(cfg, is_main=self.dist.is_main)  # train.init_from: a fresh run's parent (resume wins)
        self.cfg = cfg = init.cfg
        self.image_space = build_image_space(cfg.image_space).to(self.dist.device)
        self.generator = MiroGenerator(cfg.model)
        self.module = TrainModule(self.generator, self.text_encoder)
        init.load(self.module)  # before parallelize; the optimizer and the EMA start from these weights
        self.text_encoder.to(self.dist.device)
        data_channels, data_size = self.image_space.data_shape(cfg.model.image_channels, cfg.model.image_size)
        self.dataset = check_dataset(dataset) if dataset is not None else build_dataset(
            cfg.data, image_size=data_size, channels=data_channels)
        self.order = EpochShuffle(len(self.dataset), tc.seed)
        init.report(self.dataset.info)
        seen = self.dataset.info.reward_keys
        unscored = [k for k in cfg.model.reward_keys if seen and k not in seen]
        if unscored and self.dist.is_main:  # said, not silent: such a reward is missing (NaN) in every sample
            print(f"warning: the data carries no score for {', '.join(unscored)} (it has "
                  f"{', '.join(seen)}): missing in every training sample")
        self.out_dir = Path(cfg.out_dir)
        self.bf16, self.precision = resolve_precision(
            tc.precision, self.dist.device, self.out_dir, lambda: measure_cpu_bf16(self.module, synthetic_loss(
                cfg, self.micro_batch, self.text_encoder.max_length, captions=self.module.text_encoder is not None)),
            is_main=self.dist.is_main, agree=self._rank0_decides)
        if self.dist.is_main and self.precision["chosen_by"].startswith("auto:"):
            print(f"precision: {self.precision['precision']} ({self.precision['chosen_by']})")
        prepare(self.module, trainable=tc.trainable, lora=tc.lora)  # freeze / add LoRA adapters before sharding
        # Parallelize first: FSDP2 replaces the parameters, so optimizer and EMA come after.
        self.model = parallelize(
            self.module, self.dist, strategy=tc.parallel, bf16=self.bf16, compile=tc.compile,
            reshard_after_forward=tc.reshard_after_forward, activation_checkpointing=tc.activation_checkpointing,
            compile_backend=tc.compile_backend)
        self.sharded = is_sharded(self.model)
        self.optimizer = build_optimizer(self.module, cfg.optim)
        self.ema = EMA(self.module, tc.ema_decay, warmup=tc.ema_warmup)
        if self.dist.is_main:
            print(describe(self.module, self.ema.shadow))
        self.step = 0
        self.data_skipped = 0  # unreadable samples replaced so far (this rank)
        self.wandb_id: str | None = None  # the W&B run this run reports to (kept in checkpoints)
        self.checkpointer = Checkpointer(self.out_dir, dist=self.dist, keep=tc.keep_checkpoints, states={
            "model": ModelState(self.model), "ema": self.ema, "optim": OptimizerState(self.model, self.optimizer),
            "train": self})
        latest = latest_checkpoint(self.out_dir)
        if latest is not None:
            self.step = int(self.checkpointer.load(latest)["step"])
            if self.dist.is_main:
                print(f"resuming from {latest} at step {self.step}")
        for targets in cfg.validation.targets if cfg.validation.enabled else []:
            unknown = [k for k in targets if k not in cfg.model.reward_keys]
            if unknown:
                raise ValueError(f"validation.targets: unknown reward key {unknown[0]!r}; the model has "
                                 f"{', '.join(cfg.model.reward_keys) or 'none'}")
        forward = self.generator.flops_per_image(self.text_encoder.max_length)
        self.flops_per_image = train_flops_per_image(
            forward, cfg.flow.self_cond_prob if self.generator.has_self_conditioning else 0.0)
        self.peak_tflops = device_peak_tflops(self.dist.device, tc.peak_tflops,
                                              torch.bfloat16 if self.bf16 else torch.float32)
        # last: a W&B run starts only once nothing else here can fail
        self.metrics = open_metrics(cfg, enabled=self.dist.is_main, wandb_id=self.wandb_id)
        self.wandb_id = wandb_run_id(self.metrics) or self.wandb_id
        # a run killed before its first checkpoint starts over: its logged steps go too (and a torn last line)
        self.metrics.truncate_after(self.step)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The loop's own checkpointed state (JSON): images seen, unreadable samples so far (summed over ranks: a
        collective), the resolved config, the W&B run id (or None). The step is the checkpoint's own."""
        skipped = all_reduce_mean(torch.tensor([float(self.data_skipped)], device=self.dist.device)).item()
        return {"images_seen": self.step * self.cfg.train.batch_size, "config": to_dict(self.cfg),
                "data_skipped": int(round(skipped * self.dist.world_size)), "wandb_id": self.wandb_id}

    def load_state_dict(self, state: dict) -> None:
        """Take back the count of unreadable samples (kept on rank 0, which logs the sum) and the W&B run id."""
        self.data_skipped = int(state.get("data_skipped", 0)) if self.dist.is_main else 0
        self.wandb_id = state.get("wandb_id") or None

    @property
    def rows(self) -> tuple[int, int]:
        """This rank's rows [lo, hi) of every global batch."""
        per_rank = self.micro_batch * self.cfg.train.grad_accum
        return self.dist.rank * per_rank, (self.dist.rank + 1) * per_rank

    def ema_pipeline(self):
        """The EMA weights as a MiroPipeline in unsharded copies (every rank calls this: FSDP2 gathers); rank 0
        gets the pipeline, the others None."""
        ema_state = self.ema.full_state()
        if not self.dist.is_main:
            return None
        return pipeline_from_ema(self.cfg, ema_state, info=self.dataset.info, step=self.step,
                                 text_encoder=self.text_encoder, image_space=self.image_space, device=self.dist.device)

    def export(self, directory: Path) -> None:
        """Write a loadable model folder with the EMA weights (every rank calls this)."""
        pipe = self.ema_pipeline()
        if pipe is not None:
            pipe.save_pretrained(directory)

    def save(self) -> Path:
        """Checkpoint the current step (every rank writes its shard); unsharded runs also export the EMA model
        (rank 0 holds the full weights anyway), sharded ones only the data's files (`mirokit export` makes the
        model from any checkpoint)."""
        if self.sharded:
            return self.checkpointer.save(self.step, self.dataset.info.save)
        ema_state = self.ema.full_state()
        return self.checkpointer.save(self.step, lambda directory: pipeline_from_ema(
            self.cfg, ema_state, info=self.dataset.info, step=self.step, text_encoder=self.text_encoder,
            image_space=self.image_space).save_pretrained(directory))

    # -- one step ---------------------------------------------------------------------------
    def _rank0_decides(self, bf16: bool) -> bool:
        """Rank 0's precision decision on every rank (a collective)."""
        mine = torch.tensor([float(bf16 and self.dist.is_main)], device=self.dist.device)
        return bool(all_reduce_mean(mine).item() * self.dist.world_size > 0.5)

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dist.device.type, dtype=torch.bfloat16)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimizer step; `batch` holds this rank's rows of the step's global batch (see `rows`).

        Returns metrics averaged over micro-batches (this rank's): 0-d tensors on the device (nothing is read
        back to the host here: `fit` reads them at its logging steps) and the learning rate as a number.
        """
        tc, mc = self.cfg.train, self.cfg.model
        gen = step_generator(tc.seed, self.step)
        torch.manual_seed(tc.seed * 1_000_003 + self.step)  # any in-model randomness (e.g. dropout)
        lo, hi = self.rows
        if len(batch) != hi - lo:
            raise ValueError(f"train_step got {len(batch)} samples, this rank's share of the batch is {hi - lo}")
        # Dropout and noise are drawn for the global batch so every rank count sees the same numbers.
        captions_all = [""] * tc.batch_size
        captions_all[lo:hi] = batch.captions
        rewards_all = torch.zeros(tc.batch_size, len(mc.reward_keys))
        rewards_all[lo:hi] = batch.rewards
        captions_all, rewards_all, dropped = drop_conditions(
            captions_all, rewards_all, text_p=tc.text_dropout, reward_p=tc.reward_dropout, generator=gen)
        shape = (tc.batch_size, mc.image_channels, mc.image_size, mc.image_size)
        draw = draw_flow_noise(shape, self.cfg.flow, gen)
        # drawn after the flow's numbers, so pixel runs keep their stream
        latent_noise = torch.randn(shape, generator=gen)[lo:hi] if self.image_space.needs_noise else None
        lr = self.cfg.optim.lr * lr_factor(self.step, self.cfg.optim)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        device = self.dist.device
        images = self.image_space.to_model(batch.images.to(device, non_blocking=True),
                                           None if latent_noise is None else latent_noise.to(device))
        if tuple(images.shape[1:]) != shape[1:]:
            raise ValueError(f"the image space gives samples of shape {tuple(images.shape[1:])}, the model "
                             f"expects {shape[1:]} (model.image_channels, model.image_size)")
        text_all = self._precomputed_text(batch, dropped[lo:hi]) if batch.text is not None else None
        totals: dict[str, float] = {}
        self.data_skipped += batch.skipped
        for micro in range(tc.grad_accum):
            a, b = lo + micro * self.micro_batch, lo + (micro + 1) * self.micro_batch
            conditions = {"rewards": rewards_all[a:b].to(device) if mc.reward_keys else None}
            if text_all is not None:
                conditions.update(text=text_all[0][a - lo:b - lo].to(device),
                                  text_mask=text_all[1][a - lo:b - lo].to(device))
            elif self.module.text_encoder is not None:
                conditions["captions"] = captions_all[a:b]
            else:
                with torch.no_grad():
                    text, mask = self.text_encoder(captions_all[a:b])
                conditions.update(text=text.to(device), text_mask=mask.to(device))
            with gradient_sync(self.model, micro == tc.grad_accum - 1):
                with self._autocast():
                    loss, stats = flow_matching_loss(self.model, images[a - lo:b - lo], conditions, draw.slice(a, b),
                                                     self.cfg.flow,
                                                     self_conditioning=self.generator.has_self_conditioning)
                (loss / tc.grad_accum).backward()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float() / tc.grad_accum
        clip = self.cfg.optim.grad_clip
        params = [p for p in self.module.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.module, self.ema.decay_at(self.step))
        self.step += 1
        totals.update(lr=lr, grad_norm=full_tensor(grad_norm).detach().float())
        return totals

    def read_stats(self, stats: dict) -> dict[str, float]:
        """The step's statistics as numbers: the per-rank values averaged over ranks (grad_norm is already
        global) -- the one read of device values (a sync on a GPU), done at logging and checkpoint steps."""
        keys = sorted(k for k in stats if k not in ("lr", "grad_norm"))
        local = torch.stack([stats[k].reshape(()) for k in keys] + [stats["grad_norm"].reshape(())])
        averaged = torch.cat([all_reduce_mean(local[:-1]), local[-1:]]).tolist()
        return {**dict(zip(keys, averaged[:-1])), "grad_norm": averaged[-1], "lr": stats["lr"]}

    def _precomputed_text(self, batch: Batch, dropped: Tensor) -> tuple[Tensor, Tensor]:
        """The batch's precomputed text states (b, L, D) and mask (b, L), with dropped captions replaced by
        the dataset's empty-prompt states (what the unconditional branch sees when sampling)."""
        uncond = self.dataset.info.uncond_text
        if uncond is None:
            raise ValueError("the dataset carries precomputed text states but no empty-prompt states "
                             "(uncond_text); caption dropout needs them")
        if batch.text.shape[-1] != self.cfg.model.text_dim:
            raise ValueError(f"the dataset's text states are {batch.text.shape[-1]}-d; the text encoder "
                             f"({self.cfg.text_encoder.kind}) gives {self.cfg.model.text_dim}")
        length = max(batch.text.shape[1], uncond.shape[0])
        text, mask = pad_tokens(batch.text, length), pad_tokens(batch.text_mask, length)
        empty = pad_tokens(uncond.unsqueeze(0), length)[0]
        empty_mask = torch.arange(length) < uncond.shape[0]
        text = torch.where(dropped.view(-1, 1, 1), empty, text)
        mask = torch.where(dropped.view(-1, 1), empty_mask, mask)
        return text, mask

    def validate(self) -> Path | None:
        """Write the validation grid of the current step (every rank calls this; rank 0 samples)."""
        from mirokit.train.validation import validate

        pipe = self.ema_pipeline()
        return None if pipe is None else validate(self.cfg.validation, pipe, self.step, self.out_dir, self.metrics)

    # -- the loop ---------------------------------------------------------------------------
    def loader(self):
        """A DataLoader over this rank's rows of the steps still to run."""
        tc = self.cfg.train
        sampler = StepBatchSampler(self.order, global_batch=tc.batch_size, rows=self.rows, start_step=self.step,
                                   end_step=tc.steps)
        return build_loader(self.dataset, sampler, self.cfg.model.reward_keys, self.cfg.loader, self.dist.device)

    def fit(self) -> Path:
        """Train until cfg.train.steps, checkpointing and logging; returns the exported model folder."""
        tc = self.cfg.train
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out_dir / "config.yaml", yaml.safe_dump(to_dict(self.cfg), sort_keys=False), SOLE_WRITER)
        bar = tqdm(total=tc.steps, initial=self.step, desc="training", unit="step",
                   disable=not (tc.progress and self.dist.is_main), dynamic_ncols=True)
        window_start, window_steps, waited = time.perf_counter(), 0, 0.0
        ready = time.perf_counter()
        for batch in batches(self.loader()):
            waited += time.perf_counter() - ready
            stats = self.train_step(batch)
            window_steps += 1
            bar.update(1)
            logging = self.step % tc.log_every == 0 or self.step == tc.steps
            saving = tc.checkpoint_every and self.step % tc.checkpoint_every == 0 and self.step < tc.steps
            if logging or saving:  # values are read only here (each rank saw its own slice: the global average)
                stats = self.read_stats(stats)
                if not math.isfinite(stats["loss"]):  # before a checkpoint could keep the damage
                    raise FloatingPointError(f"loss became {stats['loss']} by step {self.step}; "
                                             "lower optim.lr or check the data")
            if logging:
                elapsed = time.perf_counter() - window_start
                stats.update(throughput_stats(window_steps * tc.batch_size, elapsed, self.dist.world_size,
                                              self.flops_per_image, self.peak_tflops))
                stats["data_wait"] = waited / max(elapsed, 1e-9)
                skipped = all_reduce_mean(torch.tensor([float(self.data_skipped)], device=self.dist.device)).item()
                stats["data_skipped"] = round(skipped * self.dist.world_size)
                stats["images_seen"] = self.step * tc.batch_size
                self.metrics.log(self.step, stats)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", mse=f"{stats['mse']:.4f}")
                window_start, window_steps, waited = time.perf_counter(), 0, 0.0
            if saving:
                self.save()
            if self.cfg.validation.enabled and self.step % self.cfg.validation.every == 0:
                self.validate()
            ready = time.perf_counter()
        bar.close()
        latest = latest_checkpoint(self.out_dir)
        if latest is None or latest.name != checkpoint_name(self.step):
            self.save()
        final = self.out_dir / FINAL_MODEL_DIR
        self.export(final)
        self.metrics.close()
        return final


def train(cfg: RunConfig, dataset: TrainDataset | None = None) -> Path:
    """Run (or resume) the training described by `cfg` (on `dataset` if given); returns the exported model folder."""
    trainer = Trainer(cfg, dataset=dataset)
    try:
        return trainer.fit()
    except BaseException:
        trainer.metrics.close(exit_code=1)  # a W&B run is marked failed and its service process ends
        raise
    finally:
        trainer.metrics.close()
        cleanup()
