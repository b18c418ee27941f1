"""Model FLOPs utilisation: how much of the device's peak the training step turns into model math.

FLOPs per trained image come from the model itself (`MiroGenerator.flops_per_image`, analytic,
multiply-add = 2): a training step runs the forward and the backward (2x the forward), plus, for
the fraction `self_cond_prob` of samples, the detached self-conditioning forward. Text encoders,
the optimizer and data loading are not counted. MFU = achieved FLOP/s per device / peak FLOP/s.
"""

from __future__ import annotations

import torch

PEAK_TFLOPS_BF16: dict[str, float] = {
    # dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity); first match wins
    "H200": 989.0,
    "GH200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,  # SXM
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "MI300X": 1307.0,
}
"""Device-name substring -> dense bf16 peak TFLOP/s (override with train.peak_tflops)."""


def train_flops_per_image(forward_flops: int, self_cond_prob: float) -> float:
    """FLOPs of one trained image: forward + backward (3x forward) + the self-conditioning forward."""
    return forward_flops * (3.0 + self_cond_prob)


_MEASURED: dict[tuple, float] = {}


def measured_peak_tflops(dtype: torch.dtype = torch.float32, size: int = 512, repeats: int = 5) -> float:
    """The CPU's matmul TFLOP/s in `dtype` with this process's threads, measured once (a size x size matmul,
    the best of `repeats` after a warm-up; ~0.1-1 s) and cached per (dtype, threads): the peak a CPU run's MFU
    is reported against. Machines of our kind differ (a bf16 matmul runs ~4x fp32 on avx512_bf16, no faster without)."""
    import time

    key = (dtype, torch.get_num_threads(), size)
    if key not in _MEASURED:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        _MEASURED[key] = 2 * size ** 3 / best / 1e12
    return _MEASURED[key]


def device_peak_tflops(device: torch.device, override: float = 0.0,
                       dtype: torch.dtype = torch.float32) -> float | None:
    """Peak TFLOP/s of `device`: `override` if > 0; on CPU the matmul peak measured in `dtype` (the precision the
    run computes in); on CUDA the table entry matching the device name, else None (unknown GPUs report achieved
    GFLOP/s only)."""
    if override > 0:
        return float(override)
    if device.type == "cpu":
        return measured_peak_tflops(dtype)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_TFLOPS_BF16.items():
        if key in name:
            return peak
    return None


def throughput_stats(images: int, seconds: float, world_size: int, flops_per_image: float,
                     peak_tflops: float | None) -> dict[str, float]:
    """{"images_per_s" (global), "gflops_per_s" (achieved, per device), "mfu" and the "peak_gflops" it is
    against (if the peak is known)}."""
    seconds = max(seconds, 1e-9)
    per_device = images * flops_per_image / seconds / max(world_size, 1)
    out = {"images_per_s": images / seconds, "gflops_per_s": per_device / 1e9}
    if peak_tflops:
        out["mfu"] = per_device / (peak_tflops * 1e12)
        out["peak_gflops"] = peak_tflops * 1e3
    return out
