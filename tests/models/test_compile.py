"""torch.compile on the generators: no graph break in the network's forward (RIN and UNet, with and without
self-conditioning, under CPU bf16 autocast too), a bounded number of recompilations over batch sizes and text
lengths, sampling through a compiled network, and `train.compile: true` without graph breaks.

In make test the compiles use dynamo with the eager / aot_eager backends (seconds); inductor (C++ code generation,
~50 s per compiled network on our CPUs) runs in the slow tests.
"""

import sys
from pathlib import Path

import pytest
import torch
from conftest import make_conditions
from test_python_docs import _demo_like_model
from torch._dynamo.testing import CompileCounter, CompileCounterWithBackend
from torch._dynamo.utils import counters

from mirokit import MiroPipeline
from mirokit.models import ConditioningConfig, GeneratorConfig, MiroGenerator, RINConfig
from mirokit.models.unet import UNetConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from runs import TINY_RIN, TINY_UNET, tiny_run

BACKBONES = {
    "rin": RINConfig(patch_size=2, data_dim=32, latents_dim=32, num_latents=8, num_blocks=2, num_processing_layers=1,
                     read_write_heads=4, compute_heads=4, hidden_multiple=8),
    "unet": UNetConfig(channels=[16, 32], attention_levels=[1], cond_dim=32, heads=4, pooled_conditioning=True),
}
SHAPES = [(1, 5), (2, 5), (3, 5), (2, 7), (3, 9), (1, 9)]
"""(batch, text length) of the recompilation report, in call order"""


def _generator(kind: str) -> MiroGenerator:
    torch.manual_seed(0)
    return MiroGenerator(GeneratorConfig(
        image_channels=3, image_size=16, reward_keys=["a", "b"], text_dim=12, backbone=BACKBONES[kind],
        conditioning=ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4), logvar_channels=16)).eval()


def _inputs(batch: int, length: int = 5):
    conditions = make_conditions(batch, length=length)
    conditions["rewards"][0, 1] = float("nan")  # a missing reward takes its own path in the conditioner
    g = torch.Generator().manual_seed(batch)
    return torch.randn(batch, 3, 16, 16, generator=g), torch.rand(batch, generator=g), conditions


@pytest.mark.parametrize("kind", list(BACKBONES))
def test_the_network_forward_has_no_graph_break(kind):
    model = _generator(kind)
    y, gamma, conditions = _inputs(2)
    state = model(y, gamma, **conditions).self_cond
    for autocast, self_cond in ((False, None), (True, state)):  # sampling's first call; a bf16 training pass
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            explained = torch._dynamo.explain(model)(y, gamma, self_cond=self_cond, **conditions)
        reasons = [r.reason for r in explained.break_reasons]
        assert explained.graph_break_count == 0 and explained.graph_count == 1, (autocast, reasons)
        assert explained.op_count > 50  # the whole network was captured, not an empty graph


@pytest.mark.slow  # 12-20 s per backbone (make test keeps the 0-graph-break forwards and compiled sampling)
@pytest.mark.parametrize("kind", ["unet", "rin"])
def test_recompilations_over_batch_sizes_and_text_lengths(kind, capsys):
    """Dynamo compiles a frame for the first shape, recompiles once with a dynamic batch and once with a dynamic
    text length; batch 1 is specialised (its own frame); a call with a self-conditioning state is another frame.
    The 8 frames of this sweep reach dynamo's recompile limit (8 per code object), after which a new shape would
    silently run eagerly; `torch.compile(model, dynamic=True)` needs 4 (measured 2026-12-06)."""
    torch._dynamo.reset()
    model = _generator(kind)
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    report = []
    with torch.no_grad():
        for batch, length in SHAPES:
            y, gamma, conditions = _inputs(batch, length)
            before = counter.frame_count
            state = compiled(y, gamma, **conditions).self_cond
            compiled(y, gamma, self_cond=state, **conditions)
            report.append((batch, length, counter.frame_count - before))
    with capsys.disabled():
        print(f"\n{kind} recompilations (batch, text length, new frames for [no state, state]):", report)
    new = {(b, n): frames for b, n, frames in report}
    assert new[1, 5] == 2 and new[2, 5] == 2 and new[3, 5] == 0 and new[2, 7] == 2 and new[3, 9] == 0, report
    assert counter.frame_count <= torch._dynamo.config.recompile_limit, report


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("compile") / "model"
    _demo_like_model(path)
    return path


def _sample(pipe, **extra):
    return pipe(["a red circle", "two squares"], num_inference_steps=3, num_images_per_prompt=2, output_type="latent",
                **extra).images


def test_sampling_through_a_compiled_generator_equals_eager(demo):
    """Compiled in place (`generator.compile()`: the pipeline keeps its module); dynamo + AOTAutograd with the eager
    kernels give the same bits; guidance's two branches and the self-conditioning state are two frames."""
    torch._dynamo.reset()
    pipe = MiroPipeline.from_pretrained(demo)
    eager = _sample(pipe)
    counter = CompileCounterWithBackend("aot_eager")
    pipe.generator.compile(backend=counter)
    compiled = _sample(pipe)
    assert torch.equal(compiled, eager) and counter.frame_count == 2
    assert not torch.equal(_sample(pipe, guidance=1.0), eager) and counter.frame_count == 2  # no recompile


@pytest.mark.slow
def test_sampling_through_an_inductor_compiled_generator(demo):
    """inductor fuses and reorders float32 operations: the latents after 3 steps differ by float noise (measured
    2026-12-06: 8.8e-6 on values up to 5.7, 1.5e-6 relative); bound 1e-4 relative, while a change of guidance moves
    them by O(1)."""
    torch._dynamo.reset()
    pipe = MiroPipeline.from_pretrained(demo)
    eager, other = _sample(pipe), _sample(pipe, guidance=1.0)
    pipe.generator.compile(backend="inductor")
    compiled = _sample(pipe)
    scale = eager.abs().max()
    assert (compiled - eager).abs().max() <= 1e-4 * scale < (other - eager).abs().max()


def _compiled_training(tmp_path, base, backend: str, steps: int = 2):
    from mirokit.train.loop import train
    from mirokit.train.metrics import read_metrics

    counters.clear()
    torch._dynamo.reset()
    common = ["model.reward_keys=[brightness,size]", "train.batch_size=8", f"train.steps={steps}", "train.log_every=1",
              "optim.warmup_steps=1", "train.checkpoint_every=0", "train.precision=fp32"]
    compile_options = ["train.compile=true", f"train.compile_backend={backend}"] if backend else []
    train(tiny_run(tmp_path / (backend or "plain"), *common, *compile_options, base=base))
    return torch.tensor([r["loss"] for r in read_metrics(tmp_path / (backend or "plain"))])


@pytest.mark.slow  # 12 s; make test trains compiled in tests/train/test_parallel_options.py
def test_compiled_training_has_no_graph_break(tmp_path, capsys):
    """`train.compile: true` compiles each unit of `blocks()` (the UNet's levels here; the RIN's losses are compared
    with plain training in tests/train/test_parallel_options.py): no graph break in the forward or backward."""
    losses = _compiled_training(tmp_path, TINY_UNET, "aot_eager")
    graphs = counters["stats"]["unique_graphs"]
    with capsys.disabled():
        print(f"\ncompiled UNet training, 2 steps: {graphs} graphs, graph breaks {dict(counters['graph_break'])}")
    assert len(losses) == 2 and torch.isfinite(losses).all()
    assert not counters["graph_break"] and 0 < graphs <= 12


@pytest.mark.slow
def test_inductor_training_matches_plain_training(tmp_path):
    """The RIN with `train.compile: true` on inductor: the same losses as plain training up to float noise (the
    first step's loss before any update: float32 ulps; the second after one Adam step)."""
    plain = _compiled_training(tmp_path, TINY_RIN, "")
    compiled = _compiled_training(tmp_path, TINY_RIN, "inductor")
    assert not counters["graph_break"]
    torch.testing.assert_close(compiled, plain, atol=1e-4, rtol=1e-4)
