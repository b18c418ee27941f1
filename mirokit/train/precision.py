"""`train.precision: auto`: bf16 where it is measured to be clearly faster for this model on this device.

On CUDA auto means bf16 autocast (every GPU we target has bf16 tensor cores). On a CPU it depends on the CPU and
on the model: a matmul runs 4x faster in bf16 on an AVX512-BF16 core, but a small network's step gains far less
(casts and per-op costs; BENCHMARKS.md, "Precision on CPU"), and CPUs without native bf16 get slower. So on CPU
auto times the model's own training forward and backward (a copy of it, on a synthetic batch of the run's shape)
in fp32 and in bf16 autocast, and takes bf16 when it is at least CLEAR_SPEEDUP faster. The decision is written
to OUT/precision.json and reused when the run resumes (so a resumed run trains in the precision it started in,
and continues bit-identically); on several ranks, rank 0's measurement decides for all.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mirokit.atomic import write_json_atomic
from mirokit.flow.loss import draw_flow_noise, flow_matching_loss

CLEAR_SPEEDUP = 1.15
"""bf16 is taken on CPU when its training step is at least this much faster than fp32's (1.15: beyond the
run-to-run noise of a few timed steps on a shared machine)"""
PRECISION_FILE = "precision.json"


def synthetic_loss(cfg, batch: int, text_length: int, *, captions: bool = False
                   ) -> Callable[[torch.nn.Module], torch.Tensor]:
    """The training loss of a synthetic batch of `batch` samples of the run's shapes (cfg: a RunConfig; images
    (batch, C, H, W), rewards (batch, K), text (batch, text_length, D) or `captions` for a trainable text encoder),
    as a function of the TrainModule: what `train.precision: auto` times on CPU."""
    mc = cfg.model
    gen = torch.Generator().manual_seed(0)
    shape = (batch, mc.image_channels, mc.image_size, mc.image_size)
    draw, images = draw_flow_noise(shape, cfg.flow, gen), torch.randn(shape, generator=gen)
    conditions = {"rewards": torch.rand(batch, len(mc.reward_keys), generator=gen) if mc.reward_keys else None}
    if captions:
        conditions["captions"] = ["a probe caption"] * batch
    else:
        conditions.update(text=torch.randn(batch, text_length, mc.text_dim, generator=gen),
                          text_mask=torch.ones(batch, text_length, dtype=torch.bool))
    return lambda module: flow_matching_loss(module, images, conditions, draw, cfg.flow,
                                             self_conditioning=module.generator.has_self_conditioning)[0]


def time_train_pass(module: torch.nn.Module, loss_of: Callable[[torch.nn.Module], torch.Tensor], *, bf16: bool,
                    repeats: int = 3) -> float:
    """Seconds of one forward + backward of `loss_of(module)` (the best of `repeats` after a warm-up), in bf16 CPU
    autocast or fp32. Gradients are left on `module` (give it a copy)."""
    best = float("inf")
    for i in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of(module)
        loss.backward()
        module.zero_grad(set_to_none=True)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def measure_cpu_bf16(module: torch.nn.Module, loss_of: Callable[[torch.nn.Module], torch.Tensor],
                     repeats: int = 3) -> dict:
    """Time the training pass of a copy of `module` in fp32 and bf16 -> {"fp32_s", "bf16_s", "speedup"}.

    The global RNG is saved and restored (the probe draws nothing the run would see)."""
    probe = copy.deepcopy(module)
    rng = torch.get_rng_state()
    try:
        fp32 = time_train_pass(probe, loss_of, bf16=False, repeats=repeats)
        bf16 = time_train_pass(probe, loss_of, bf16=True, repeats=repeats)
    finally:
        torch.set_rng_state(rng)
    return {"fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16}


def resolve_precision(requested: str, device: torch.device, out_dir: Path, measure: Callable[[], dict], *,
                      is_main: bool = True, agree: Callable[[bool], bool] = lambda x: x) -> tuple[bool, dict]:
    """-> (train in bf16?, the record of why). `requested` is fp32 | bf16 | auto; auto on CUDA is bf16. Auto on a
    CPU: rank 0 (`is_main`) reuses OUT/precision.json if an earlier start of this run wrote it, else calls
    `measure()` (see measure_cpu_bf16), decides and writes the record; every rank then takes rank 0's decision
    from `agree` (a broadcast; called on every rank)."""
    if requested != "auto":
        return requested == "bf16", {"precision": requested, "chosen_by": "train.precision"}
    if device.type == "cuda":
        return True, {"precision": "bf16", "chosen_by": "auto (cuda)"}
    if device.type != "cpu":
        return False, {"precision": "fp32", "chosen_by": f"auto ({device.type})"}
    record = {"chosen_by": "rank 0's measurement"}
    if is_main:
        record = _decide_on_cpu(Path(out_dir) / PRECISION_FILE, measure)
    bf16 = agree(record.get("precision") == "bf16")
    return bf16, {**record, "precision": "bf16" if bf16 else "fp32"}


def _decide_on_cpu(path: Path, measure: Callable[[], dict]) -> dict:
    if path.is_file():
        try:
            record = json.loads(path.read_text())
            if record.get("precision") in ("fp32", "bf16"):
                return record
        except ValueError:
            pass  # a torn or foreign file: measure again
    timing = measure()
    bf16 = timing["speedup"] >= CLEAR_SPEEDUP
    record = {"precision": "bf16" if bf16 else "fp32",
              "chosen_by": f"auto: a bf16 training pass ran {timing['speedup']:.2f}x fp32's on this CPU "
                           f"(bf16 needs >= {CLEAR_SPEEDUP}x)",
              **{k: round(v, 6) for k, v in timing.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record, "rank0", indent=1)  # its only writer
    return record
