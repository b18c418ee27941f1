"""Inference on a non-CPU device without a GPU (tests/devices.py): the pipeline (every solver, guidance, the token
and T5 text encoders, pixels and the VAE, every output type) and the loader's pinned, non-blocking transfer, on `meta`
and on fake CUDA. A tensor made without a device that meets the model's is an error there, as on a GPU."""

import pytest
import torch
from devices import DeviceMismatch, ValueOnDevice, on_device, stopped_in
from test_python_docs import _demo_like_model
from torch import nn

from mirokit import MiroPipeline
from mirokit.pipeline_call import OUTPUT_TYPES
from mirokit.sampling.solvers import SOLVERS

DEVICES = ["meta", "cuda"]
MISMATCH = {"meta": (RuntimeError, "is not on the expected device meta"),
            "cuda": (DeviceMismatch, "a cuda tensor met a tensor on another device")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("devices") / "model"
    _demo_like_model(path)
    return path


@pytest.mark.parametrize("device", DEVICES)
def test_the_helper_rejects_host_tensors_and_value_reads(device):
    """What the device tricks promise, on a Linear: a host tensor meeting a device one fails (a 0-dim one may, as
    on CUDA), a value read fails, a copy back gives zeros and is counted, a copy there is recorded."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    with on_device(device) as dev:
        layer.to(dev.device)
        assert layer.weight.device.type == device
        x = torch.randn(2, 4).to(dev.device, non_blocking=True)
        y = layer(x) * torch.tensor(2.0)  # a 0-dim host tensor is a scalar to CUDA kernels
        assert y.device.type == device and tuple(y.shape) == (2, 3)
        error, message = MISMATCH[device]
        with pytest.raises(error, match=message):
            _ = y + torch.zeros(3)
        with pytest.raises((RuntimeError, ValueOnDevice), match="item"):
            y.sum().item()
        back = y.cpu()
        assert back.device.type == "cpu" and torch.equal(back, torch.zeros(2, 3))
    assert dev.readbacks == [(2, 3)] and dev.where[0].startswith(__file__ + ":")
    assert [(c.shape, c.non_blocking) for c in dev.copies][-1] == ((2, 4), True)


@pytest.mark.parametrize("device", DEVICES)
def test_the_pipeline_samples_and_decodes_on_the_device(demo, device):
    """Every solver and output type; guidance on (two branches) and separate scales (three); nothing is copied
    to or from the device per step: only the call's inputs go there and only the images come back."""
    pipe = MiroPipeline.from_pretrained(demo)
    with on_device(device) as dev:
        pipe.to(dev.device)
        assert pipe.device.type == device
        traffic = {}
        for solver in SOLVERS.known():
            for steps in (2, 4):
                before = (len(dev.copies), len(dev.readbacks))
                out = pipe(["a red circle", "two squares"], num_inference_steps=steps, solver=solver,
                           output_type="latent", text_guidance=2.0, reward_guidance=1.0)
                assert out.images.device.type == device and tuple(out.images.shape) == (2, 3, 16, 16)
                traffic[solver, steps] = (len(dev.copies) - before[0], len(dev.readbacks) - before[1])
        for output_type in OUTPUT_TYPES:
            before = len(dev.readbacks)
            out = pipe("a red circle", num_inference_steps=2, num_images_per_prompt=2, output_type=output_type)
            assert len(out.images) == 2 and len(dev.readbacks) - before == (output_type not in ("pt", "latent"))
    assert all(traffic[s, 2] == traffic[s, 4] for s in SOLVERS.known()), traffic  # the same with twice the steps
    assert all(back == 0 for _, back in traffic.values()), traffic       # latents stay on the device
    assert dev.readbacks[-1] == (2, 16, 16, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_a_host_tensor_planted_in_the_sampler_fails(demo, device, monkeypatch):
    """The tests above can fail: the solver's signal levels made without a device (`torch.full((n,), g)`) meet
    the model's tensors on the device."""
    import mirokit.sampling.solvers as solvers

    class NoDevice:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def full(size, value, device=None, **kwargs):
            return torch.full(size, value, **kwargs)

    pipe = MiroPipeline.from_pretrained(demo)
    monkeypatch.setattr(solvers, "torch", NoDevice())
    error, message = MISMATCH[device]
    with on_device(device) as dev:
        pipe.to(dev.device)
        with pytest.raises(error, match=message):
            pipe("a red circle", num_inference_steps=2, output_type="latent")


@pytest.fixture(scope="module")
def hf_parts(tmp_path_factory):
    from conftest import build_tiny_vae_and_t5

    return build_tiny_vae_and_t5(tmp_path_factory.mktemp("hf"))


def _latent_pipeline(root, text: str) -> MiroPipeline:
    """A RIN on the tiny VAE's 4x8x8 latents with the tiny T5 (text="t5") or the token encoder."""
    from mirokit.encoders import TokenTextEncoder, TokenTextEncoderConfig
    from mirokit.encoders.text_hf import HFTextEncoder, HFTextEncoderConfig
    from mirokit.encoders.vae import VAESpace, VAESpaceConfig
    from mirokit.models import ConditioningConfig, GeneratorConfig, MiroGenerator, RINConfig

    torch.manual_seed(0)
    if text == "t5":
        encoder = HFTextEncoder(HFTextEncoderConfig(name_or_path=str(root / "t5"), max_length=8))
    else:
        encoder = TokenTextEncoder(TokenTextEncoderConfig(vocab_size=64, dim=32, max_length=8, num_layers=1,
                                                          num_heads=4))
    generator = MiroGenerator(GeneratorConfig(
        image_channels=4, image_size=8, reward_keys=["a", "b"], text_dim=32,
        backbone=RINConfig(patch_size=2, data_dim=32, latents_dim=32, num_latents=8, num_blocks=1,
                           num_processing_layers=1, read_write_heads=4, compute_heads=4, hidden_multiple=8),
        conditioning=ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4), logvar_channels=16))
    return MiroPipeline(generator, encoder, VAESpace(VAESpaceConfig(name_or_path=str(root / "vae"))))


def test_t5_and_the_vae_run_in_bf16_on_fake_cuda(hf_parts):
    """On a GPU `to(dtype)` casts the T5 and the VAE too (on CPU they stay float32): that branch runs here."""
    pipe = _latent_pipeline(hf_parts, "t5")
    with on_device("cuda") as dev:
        pipe.to("cuda", torch.bfloat16)
        out = pipe(["a red circle", "big blue square"], num_inference_steps=2, rewards={"a": 0.3})
        assert pipe.text_encoder.load()._loaded[1].dtype == torch.bfloat16
        assert pipe.image_space.vae.dtype == torch.bfloat16
        assert next(pipe.generator.parameters()).dtype == torch.bfloat16
    assert [im.size for im in out] == [(16, 16)] * 2 and dev.readbacks == [(2, 16, 16, 3)]


def test_the_vae_decodes_on_meta_and_t5_stops_in_transformers(hf_parts):
    """meta runs the VAE; the T5 stops where transformers reads its padding mask (`fast_all`, skipped for fake
    tensors only): a limit of meta for every transformers text tower (docs/TESTING.md)."""
    pipe = _latent_pipeline(hf_parts, "tokens")
    with on_device("meta") as dev:
        pipe.to("meta")
        out = pipe("a red circle", num_inference_steps=2, output_type="pt")
        assert out.images.device.type == "meta" and tuple(out.images.shape) == (1, 3, 16, 16)
        t5 = _latent_pipeline(hf_parts, "t5").to("meta")
        with pytest.raises(RuntimeError, match="cannot be called on meta tensors") as caught:
            t5("a red circle", num_inference_steps=2, output_type="latent")
    assert stopped_in(caught.value, "transformers/masking_utils.py") and dev.readbacks == []  # "pt" stays there


def test_pinned_memory_is_asked_for_cuda_only():
    from mirokit.data.loader import LoaderConfig, pin_memory_for

    cuda, cpu, meta = torch.device("cuda", 0), torch.device("cpu"), torch.device("meta")
    assert pin_memory_for(LoaderConfig(), cuda) and not pin_memory_for(LoaderConfig(pin_memory=False), cuda)
    assert not pin_memory_for(LoaderConfig(), cpu) and not pin_memory_for(LoaderConfig(), meta)
    assert not pin_memory_for(LoaderConfig(pin_memory=True), cpu)  # asking for it on a CPU run changes nothing


def test_the_loaders_batches_reach_fake_cuda_pinned_and_non_blocking():
    """The loader's batches, pinned as the DataLoader's pin thread does (torch's own `pin_memory(data)`), then
    moved with `non_blocking=True`: every copy is asynchronous from pinned memory, nothing else is copied."""
    from torch.utils.data._utils.pin_memory import pin_memory

    from mirokit.data.loader import LoaderConfig, StepBatchSampler, batches, build_loader
    from mirokit.data.sampler import EpochShuffle
    from mirokit.data.toy import ToyDataConfig, toy_source

    dataset = toy_source(ToyDataConfig(num_samples=16), image_size=16, channels=3)
    keys = list(dataset.info.reward_keys)
    sampler = StepBatchSampler(EpochShuffle(len(dataset), seed=0), global_batch=4, rows=(0, 4), start_step=0,
                               end_step=2)
    loader = build_loader(dataset, sampler, keys, LoaderConfig(num_workers=0), torch.device("cuda", 0))
    assert loader.pin_memory == torch.cuda.is_available()
    with on_device("cuda") as dev:
        moved = [pin_memory(batch).to("cuda", non_blocking=True) for batch in batches(loader)]
    assert len(moved) == 2 and all(b.images.device.type == "cuda" and b.rewards.device.type == "cuda" for b in moved)
    assert [(c.shape, c.non_blocking, c.pinned) for c in dev.copies] == \
        [((4, 3, 16, 16), True, True), ((4, len(keys)), True, True)] * 2
