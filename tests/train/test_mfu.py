"""FLOPs per image (analytic, checked against torch's FLOP counter) and the MFU arithmetic."""

import pytest
import torch
from conftest import make_conditions
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mirokit.config import from_dict
from mirokit.models import GeneratorConfig, MiroGenerator
from mirokit.train.mfu import device_peak_tflops, throughput_stats, train_flops_per_image

BACKBONES = {
    "rin": {"kind": "rin", "patch_size": 2, "data_dim": 32, "latents_dim": 32, "num_latents": 8, "num_blocks": 2,
            "num_processing_layers": 2, "read_write_heads": 4, "compute_heads": 4, "hidden_multiple": 8},
    "rin_no_self_cond": {"kind": "rin", "patch_size": 4, "data_dim": 48, "latents_dim": 32, "num_latents": 4,
                         "num_blocks": 1, "num_processing_layers": 1, "read_write_heads": 4, "compute_heads": 2,
                         "hidden_multiple": 8, "self_conditioning": False},
    "unet": {"kind": "unet", "channels": [16, 32, 32], "attention_levels": [1, 2], "cond_dim": 32, "heads": 4,
             "self_attention": True, "blocks_per_level": 2},
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_analytic_flops_equal_the_counter(name):
    cfg = from_dict(GeneratorConfig, {"image_channels": 3, "image_size": 16, "reward_keys": ["a", "b"], "text_dim": 12,
                                      "backbone": BACKBONES[name],
                                      "conditioning": {"num_registers": 3, "mixer_layers": 2, "mixer_heads": 4}})
    model = MiroGenerator(cfg).eval()
    conditions = make_conditions(1, length=7)
    state = model(torch.randn(1, 3, 16, 16), torch.rand(1), **conditions).self_cond  # a training call has one
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), counter:  # the fused CPU kernel has no FLOP formula
        model(torch.randn(1, 3, 16, 16), torch.rand(1), self_cond=state, **conditions)
    assert counter.get_total_flops() > 1e6
    assert model.flops_per_image(7) == counter.get_total_flops()


def test_mfu_arithmetic_and_peaks():
    assert train_flops_per_image(100, 0.9) == pytest.approx(390.0)  # fwd + 2x bwd + self-cond fwd
    stats = throughput_stats(images=64, seconds=2.0, world_size=4, flops_per_image=1e12, peak_tflops=100.0)
    assert stats["images_per_s"] == 32.0
    assert stats["gflops_per_s"] == pytest.approx(8e3)  # 32 img/s x 1 TFLOP / 4 devices
    assert stats["mfu"] == pytest.approx(0.08)
    assert "mfu" not in throughput_stats(64, 2.0, 1, 1e9, None)
    assert stats["peak_gflops"] == pytest.approx(1e5)
    assert device_peak_tflops(torch.device("cpu"), override=50.0) == 50.0


def test_a_cpu_run_reports_mfu_against_the_peak_measured_in_its_precision():
    """On CPU the peak is measured (a matmul in the run's precision, cached), not looked up: it is a real
    rate (between 1 GFLOP/s and 100 TFLOP/s on any CPU), the same on a second call, and bf16's is its own."""
    fp32 = device_peak_tflops(torch.device("cpu"))
    assert 1e-3 < fp32 < 100 and device_peak_tflops(torch.device("cpu")) == fp32
    bf16 = device_peak_tflops(torch.device("cpu"), dtype=torch.bfloat16)
    assert 1e-3 < bf16 < 100 and bf16 != fp32
