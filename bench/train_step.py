"""Throughput of the mirokit generators: training step, forward pass, forward FLOPs and the sampler.

A benchmark, never a test: it prints side-by-side numbers (markdown tables, ready for
BENCHMARKS.md) and asserts nothing about speed.

    .venv/bin/python bench/train_step.py             # defaults: 2 threads, batch 32, 5 repeats
    .venv/bin/python bench/train_step.py --quick     # seconds-long smoke run of every code path
    .venv/bin/python bench/train_step.py --only vs-official [--compile]   # mirokit vs the official network

Every timing runs one warm-up call first (excluded) and reports the median of `--repeats` calls.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import mirokit
from mirokit.config import from_dict, load_yaml
from mirokit.encoders import TokenTextEncoder, TokenTextEncoderConfig
from mirokit.flow.loss import FlowLossConfig, draw_flow_noise, flow_matching_loss
from mirokit.models.generator import (
    GeneratorConfig,
    MiroGenerator,
    cpu_tiny_rin_config,
    official_rin_config,
)
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, generate
from mirokit.train.optim import OptimConfig, build_optimizer

OFFICIAL_REWARD_KEYS = ["clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score",
                        "hpsv2_score", "vqa_score", "sciscore_score"]
"""The 7 official reward keys, in order (docs/METHOD.md §2)."""
PAPER_TFLOPS_50_STEPS_GUIDED = 4.16
"""Paper: TFLOPs per image for 50 Euler steps with guidance (2 branches per step)."""
TINY_TEXT_DIM = 64
TINY_TEXT_LEN = 16  # TokenTextEncoderConfig().max_length, what the sampler's encoder produces
OFFICIAL_TEXT_LEN = 77  # FLAN-T5-XL tokens
DEMO_CONFIG = Path(mirokit.__file__).parent / "configs" / "demo_unet.yaml"
WORLD_CONFIG = Path(mirokit.__file__).parent / "configs" / "demo_world.yaml"


# -- helpers ------------------------------------------------------------------------------------
def cpu_model_name() -> str:
    """The 'model name' line of /proc/cpuinfo (platform.processor() as a fallback)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(device: torch.device) -> list[str]:
    """Human-readable description of where the numbers come from."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [f"CPU: {cpu_model_name()} ({os.cpu_count()} logical cores, {usable} usable by this process)",
             f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, device {device}"]
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    if hasattr(os, "getloadavg"):
        lines.append("load average (1/5/15 min) at start: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
    return lines


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Run fn once as warm-up (excluded), then `repeats` times; median wall seconds per call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fake_inputs(cfg: GeneratorConfig, batch: int, text_len: int, device: torch.device,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Random x0 (B, C, H, W), gamma (B,) and model conditions (text (B,L,D), text_mask (B,L), rewards (B,K))."""
    g = torch.Generator().manual_seed(seed)
    x0 = 0.5 * torch.randn(batch, cfg.image_channels, cfg.image_size, cfg.image_size, generator=g)
    gamma = torch.rand(batch, generator=g)
    mask = torch.ones(batch, text_len, dtype=torch.bool)
    mask[:, text_len // 2:] = torch.rand(batch, text_len - text_len // 2, generator=g) < 0.5  # some padding
    conditions = {"text": torch.randn(batch, text_len, cfg.text_dim, generator=g), "text_mask": mask,
                  "rewards": torch.rand(batch, len(cfg.reward_keys), generator=g) if cfg.reward_keys else None}
    conditions = {k: v.to(device) if v is not None else None for k, v in conditions.items()}
    return x0.to(device), gamma.to(device), conditions


def forward_gflops(model: MiroGenerator, text_len: int, device: torch.device) -> float:
    """Forward GFLOPs for one image (batch of 1) with a self-conditioning state (every sampling step but
    the first has one), counted by FlopCounterMode; checked against the model's analytic count.

    Attention is forced onto the math SDPA backend while counting: the fused CPU kernel
    (`_scaled_dot_product_flash_attention_for_cpu`) has no FLOP formula and would count as 0.
    """
    x, gamma, conditions = fake_inputs(model.config, 1, text_len, device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad():
        state = model(x, gamma, **conditions).self_cond
        with sdpa_kernel([SDPBackend.MATH]), counter:
            model(x, gamma, self_cond=state, **conditions)
    counted = counter.get_total_flops()
    if counted != model.flops_per_image(text_len):
        print(f"warning: counted {counted} FLOPs, the model's analytic count is {model.flops_per_image(text_len)}")
    return counted / 1e9


# -- measurements ---------------------------------------------------------------------------------
def bench_forward(model: MiroGenerator, batch: int, text_len: int, repeats: int, device: torch.device) -> float:
    """Forward-only images/s (eval mode, no_grad, self-conditioning state None)."""
    x, gamma, conditions = fake_inputs(model.config, batch, text_len, device)
    was_training = model.training
    model.eval()

    def step() -> None:
        with torch.no_grad():
            model(x, gamma, **conditions)

    seconds = median_seconds(step, repeats, device)
    model.train(was_training)
    return batch / seconds


def bench_train(model: MiroGenerator, batch: int, text_len: int, repeats: int, device: torch.device) -> float:
    """Training images/s for the trainer's step: flow_matching_loss (self-conditioning 0.9, uncertainty
    weighting: a no_grad self-conditioning forward + a forward) + backward + grad clipping + AdamW step."""
    x0, _, conditions = fake_inputs(model.config, batch, text_len, device)
    flow_cfg = FlowLossConfig(self_cond_prob=0.9, uncertainty_weighting=True)
    optim_cfg = OptimConfig(name="adamw")
    optimizer = build_optimizer(model, optim_cfg)
    gen = torch.Generator(device=device).manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()

    def step() -> None:
        draw = draw_flow_noise(tuple(x0.shape), flow_cfg, gen)
        loss, _ = flow_matching_loss(model, x0, conditions, draw, flow_cfg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, optim_cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return batch / median_seconds(step, repeats, device)


def bench_sampler(model: MiroGenerator, images: int, steps: int, repeats: int, device: torch.device) -> float:
    """images/s of `mirokit.sampling.generate`: Euler, `steps` steps, joint guidance (2 branches)."""
    encoder = TokenTextEncoder(TokenTextEncoderConfig(dim=model.config.text_dim))
    pipe = MiroPipeline(model, encoder).to(device)
    prompts = [f"a small red ball number {i}" for i in range(images)]
    settings = SamplingSettings(steps=steps, solver="euler", guidance=7.0, batch_size=images)
    return images / median_seconds(lambda: generate(pipe, prompts, settings), repeats, device)


# -- models ---------------------------------------------------------------------------------------
def tiny_configs() -> dict[str, GeneratorConfig]:
    """The CPU RIN, the pixel UNet (mirokit/configs/demo_unet.yaml `model`), the shapes-world demo's latent
    UNet (demo_world.yaml) and, beside it, the wider latent trunk it replaced; all with 64-d text."""
    demo = dict(load_yaml(DEMO_CONFIG)["model"], text_dim=TINY_TEXT_DIM)
    world = dict(load_yaml(WORLD_CONFIG)["model"], text_dim=TINY_TEXT_DIM)
    former = dict(world, backbone=dict(world["backbone"], channels=[64, 128], attention_levels=[0, 1]))
    return {"cpu tiny RIN (3x32x32 px)": cpu_tiny_rin_config(["brightness", "size"], text_dim=TINY_TEXT_DIM),
            "demo UNet (3x32x32 px)": from_dict(GeneratorConfig, demo),
            "demo latent UNet (4x8x8, 32/64, attention 4x4)": from_dict(GeneratorConfig, world),
            "former demo latent UNet (4x8x8, 64/128, attention 8x8+4x4)": from_dict(GeneratorConfig, former)}


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--batch", type=int, default=32, help="training / forward batch of the tiny models")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median reported)")
    parser.add_argument("--official-batch", type=int, default=2, help="forward batch of the official model")
    parser.add_argument("--steps", type=int, default=20, help="Euler steps of the sampler")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 4, 1 repeat, 2 sampler steps")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--only", choices=["tiny", "official", "vs-official", "precision"], action="append",
                        help="run only these sections (repeatable; default: all)")
    parser.add_argument("--compile", action="store_true", help="vs-official: also time both with compiled blocks")
    parser.add_argument("--rounds", type=int, default=7, help="vs-official: alternating timing rounds")
    parser.add_argument("--vs-config", choices=["cpu", "official"], default=None,
                        help="vs-official network size (default: official on CUDA, cpu on CPU)")
    parser.add_argument("--vs-batch", type=int, default=None, help="vs-official batch (default 64 on CUDA, 8 on CPU)")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (0 = table lookup)")
    args = parser.parse_args()
    sections = set(args.only or ["tiny", "official", "vs-official", "precision"])
    if args.quick:
        args.batch, args.repeats, args.official_batch, args.steps = 4, 1, 1, 2
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even: the sampler runs batch/2 images x 2 guidance branches")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(0)

    print("## Machine\n")
    for line in machine_lines(device):
        print(f"- {line}")

    if "tiny" in sections:
        section_tiny(args, device)
    if "official" in sections:
        section_official(args, device)
    if "vs-official" in sections:
        section_vs_official(args, device)
    if "precision" in sections:
        section_precision(args, device)


def cpu_flags() -> str:
    """The bf16-related flags of this CPU (avx512_bf16, amx_bf16, ...), or "no native bf16"."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "flags unknown"
    found = sorted({f for f in flags.split(":", 1)[1].split() if "bf16" in f or f.startswith("amx")})
    return ", ".join(found) or "no native bf16"


def section_precision(args, device: torch.device) -> None:
    """fp32 vs bf16 autocast: the matmul peaks the trainer's MFU is measured against, and the training step of
    the CPU models (each at its achieved fraction of the peak of its precision)."""
    from mirokit.train.mfu import measured_peak_tflops, train_flops_per_image

    peaks = {"fp32": measured_peak_tflops(torch.float32), "bf16": measured_peak_tflops(torch.bfloat16)}
    print(f"\n## Precision ({device}, {torch.get_num_threads()} threads, batch {args.batch}; "
          f"CPU bf16: {cpu_flags()})\n")
    print(f"matmul peak (512x512): fp32 {1e3 * peaks['fp32']:.0f} GFLOP/s, bf16 {1e3 * peaks['bf16']:.0f} GFLOP/s "
          f"({peaks['bf16'] / peaks['fp32']:.2f}x)\n")
    print("| model | fp32 train img/s | bf16 train img/s | bf16 / fp32 | fp32 share of fp32 peak "
          "| bf16 share of bf16 peak |")
    print("|---|---:|---:|---:|---:|---:|")
    ratio = None
    for name, cfg in tiny_configs().items():
        if name.startswith("former"):
            continue
        rates = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = MiroGenerator(cfg).to(device)
            context = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                       else contextlib.nullcontext())
            with context:
                rates[precision] = bench_train(model, args.batch, TINY_TEXT_LEN, args.repeats, device)
        flops = train_flops_per_image(MiroGenerator(cfg).flops_per_image(TINY_TEXT_LEN), 0.9)
        share = {p: rates[p] * flops / (peaks[p] * 1e12) for p in rates}
        print(f"| {name} | {rates['fp32']:.1f} | {rates['bf16']:.1f} | {rates['bf16'] / rates['fp32']:.2f}x | "
              f"{share['fp32']:.1%} | {share['bf16']:.1%} |")
        if name.startswith("demo latent"):
            ratio = rates["bf16"] / rates["fp32"]
    print(f"\ndemo trunk train images/s bf16/fp32 = {ratio:.2f}x (this CPU: {cpu_flags()})")


def section_tiny(args, device: torch.device) -> None:
    """The CPU models: forward, sampler, training step."""
    # forward, then the sampler right after it (its efficiency compares the two, so they should see the
    # same machine load), then the training step.
    images, branches = args.batch // 2, 2
    tiny: dict[str, dict] = {}
    for name, cfg in tiny_configs().items():
        model = MiroGenerator(cfg).to(device)
        row = {"params": param_count(model), "gflops": forward_gflops(model, TINY_TEXT_LEN, device)}
        row["fwd"] = bench_forward(model, args.batch, TINY_TEXT_LEN, args.repeats, device)
        row["sampler"] = bench_sampler(model, images, args.steps, args.repeats, device)
        row["train"] = bench_train(model, args.batch, TINY_TEXT_LEN, args.repeats, device)
        tiny[name] = row
        del model
    print(f"\n## Training step and forward pass (batch {args.batch}, {TINY_TEXT_LEN} text tokens x "
          f"{TINY_TEXT_DIM}-d, median of {args.repeats})\n")
    print("| model | params | fwd GFLOP/img | train img/s | fwd img/s | train ÷ fwd |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in tiny.items():
        print(f"| {name} | {fmt_params(r['params'])} | {r['gflops']:.3f} | {r['train']:.1f} | {r['fwd']:.1f} "
              f"| {r['train'] / r['fwd']:.3f} |")
    print("\ntrain ÷ fwd by FLOPs alone would be about 0.25: a training step is a no_grad self-conditioning "
          "forward + a forward + a backward (~2 forwards); below that is backward/optimizer overhead.")

    print(f"\n## Sampler (`mirokit.sampling.generate`, {images} images, Euler {args.steps} steps, joint guidance "
          f"= {branches} branches, so each model call has {images * branches} rows like the forward "
          f"benchmark; median of {args.repeats})\n")
    print("| model | sampler img/s | expected img/s = fwd img/s ÷ (steps x branches) | efficiency |")
    print("|---|---:|---:|---:|")
    for name, r in tiny.items():
        expected = r["fwd"] / (args.steps * branches)
        print(f"| {name} | {r['sampler']:.2f} | {expected:.2f} | {r['sampler'] / expected:.3f} |")


def section_official(args, device: torch.device) -> None:
    """The official ~360M configuration: forward throughput and FLOPs."""
    official = MiroGenerator(official_rin_config(OFFICIAL_REWARD_KEYS)).to(device)
    n_params = param_count(official)
    gflops = forward_gflops(official, OFFICIAL_TEXT_LEN, device)
    fwd = bench_forward(official, args.official_batch, OFFICIAL_TEXT_LEN, args.repeats, device)
    del official
    implied_tflops = gflops * 50 * 2 / 1e3
    print(f"\n## Official RIN (4x32x32 latents, {OFFICIAL_TEXT_LEN} text tokens x 2048-d, 7 rewards; "
          f"forward batch {args.official_batch}, no_grad, median of {args.repeats})\n")
    print("| model | params | fwd img/s | fwd GFLOP/img | 50 steps x 2 branches, TFLOP/img | paper TFLOP/img "
          "| ours ÷ paper |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| official RIN | {fmt_params(n_params)} | {fwd:.2f} | {gflops:.1f} | {implied_tflops:.2f} "
          f"| {PAPER_TFLOPS_50_STEPS_GUIDED:.2f} | {implied_tflops / PAPER_TFLOPS_50_STEPS_GUIDED:.3f} |")
    print("\nFLOPs from torch.utils.flop_counter (1 multiply-add = 2 FLOPs; matmuls, convolutions and "
          "attention only), batch of 1, generator only (no text encoder, no VAE).")
    macs_one_branch = gflops / 2 * 50 / 1e3
    print(f"Counted as fvcore does (1 multiply-add = 1 FLOP) and for one branch: {macs_one_branch:.2f} TFLOP/img "
          f"for 50 steps, {macs_one_branch / PAPER_TFLOPS_50_STEPS_GUIDED:.3f} x the paper's figure.")



def section_vs_official(args, device: torch.device) -> None:
    """mirokit's RIN and the official network (miro-t2i) at the same configuration and weights."""
    try:
        import miro  # noqa: F401 - only checks that miro-t2i is installed
        import official as side_by_side  # bench/official.py
    except ImportError as err:
        print(f"\n## mirokit vs the official network: skipped ({err}; pip install --no-deps miro-t2i==0.1.4 einops)")
        return
    from mirokit.train.mfu import device_peak_tflops

    cuda = device.type == "cuda"
    name = args.vs_config or ("official" if cuda else "cpu")
    batch = args.vs_batch or (64 if cuda else 8)
    if args.quick:
        batch = 2
    text_len, bf16 = 77, cuda
    pair = side_by_side.build_pair(name, batch, text_len, device, bf16)
    fwd_flops = pair.generator.flops_per_image(text_len)
    params = sum(p.numel() for p in pair.generator.parameters())
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    peak = device_peak_tflops(device, args.peak_tflops)
    rounds, repeats = (1, 1) if args.quick else (args.rounds, 2 if cuda else 1)
    rows = []
    for compiled in ([False, True] if args.compile else [False]):
        if compiled:
            side_by_side.compile_blocks(pair)
        for what, a, b, flops in (("network fwd+bwd", pair.official, pair.ours, 3 * fwd_flops),
                                  ("training step (self-cond 0.9)", pair.official_step, pair.ours_step,
                                   3.9 * fwd_flops)):
            t_off, t_ours, ratio = side_by_side.interleaved(a, b, rounds, repeats, sync)
            achieved = batch * flops / t_ours
            rows.append((what, "compiled" if compiled else "eager", batch / t_off, batch / t_ours, ratio,
                         achieved / 1e12, achieved / (peak * 1e12) if peak else None))
    print(f"\n## mirokit vs the official network ({name} configuration, {params / 1e6:.1f}M parameters, batch {batch}, "
          f"{text_len} text tokens, {'bf16 autocast' if bf16 else 'fp32'}, {rounds} alternating rounds)\n")
    print("| measurement | mode | official img/s | mirokit img/s | mirokit ÷ official | mirokit TFLOP/s | MFU |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for what, mode, off, ours, ratio, tflops, mfu in rows:
        mfu_text = f"{mfu:.1%}" if mfu is not None else "n/a"
        print(f"| {what} | {mode} | {off:.2f} | {ours:.2f} | {ratio:.3f} | {tflops:.3f} | {mfu_text} |")
    print("\nSame weights (official state dict mapped by mirokit.models.official), same batch; ratio = median over "
          "rounds of time(official) ÷ time(mirokit). FLOPs from MiroGenerator.flops_per_image (training: forward + "
          "2x backward, plus 0.9 self-conditioning forwards in the training step).")


if __name__ == "__main__":
    main()
