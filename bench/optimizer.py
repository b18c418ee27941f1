"""Cost of one optimizer step on CPU: torch's default AdamW (per-tensor loop), foreach, and fused, which
`mirokit.train.optim.build_optimizer` picks for CPU parameters; plus the EMA update and gradient clipping.

A benchmark, never a test: prints a markdown table of milliseconds per step with ratios to torch's default.

    .venv/bin/python bench/optimizer.py [--config demo_world] [--threads 1] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mirokit.models.generator import MiroGenerator
from mirokit.train.config import load_run_config
from mirokit.train.ema import EMA
from mirokit.train.optim import build_optimizer, param_groups


def ms_per_call(fn, repeats: int) -> float:
    """Median of 5 timings of `repeats` calls (after 5 warm-up calls), in ms per call."""
    for _ in range(5):
        fn()
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        runs.append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(runs)


def main() -> None:
    """Time the optimizer variants on the generator of --config and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo_world")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_run_config(args.config)
    model = MiroGenerator(cfg.model)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    variants = {"torch default (per-tensor loop)": dict(foreach=False), "foreach": dict(foreach=True),
                "fused": dict(fused=True)}
    # fresh groups for each optimizer: torch writes its defaults into the group dicts it is given
    times = {name: ms_per_call(torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=1e-4, **kw).step,
                               args.repeats)
             for name, kw in variants.items()}
    times["build_optimizer (mirokit)"] = ms_per_call(build_optimizer(model, cfg.optim).step, args.repeats)
    ema = EMA(model, 0.999)
    extra = {"EMA update": ms_per_call(lambda: ema.update(model), args.repeats),
             "clip_grad_norm_": ms_per_call(lambda: torch.nn.utils.clip_grad_norm_(params, 1e9), args.repeats)}
    base = times["torch default (per-tensor loop)"]
    print(f"## Optimizer step on CPU ({args.config}: {sum(p.numel() for p in params) / 1e6:.2f}M parameters in "
          f"{len(params)} tensors, {args.threads} thread(s), {torch.__version__})\n")
    print("| AdamW | ms/step | vs torch default |")
    print("|---|---:|---:|")
    for name, ms in times.items():
        print(f"| {name} | {ms:.2f} | {base / ms:.2f}x |")
    print("\n| per step, besides | ms |")
    print("|---|---:|")
    for name, ms in extra.items():
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()
