"""MiroPipeline's call in the official package's names and the diffusers habits (mirokit/pipeline_call.py), on a
small demo-like model: output types, list behaviour, generators, dtypes, callbacks and the errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from test_python_docs import _demo_like_model

from mirokit import MiroPipeline
from mirokit.sampling import SamplingCancelled


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("call") / "model"
    _demo_like_model(path)
    return path


@pytest.fixture
def pipe(folder):
    return MiroPipeline.from_pretrained(folder)


def test_the_result_is_a_list_of_images_with_images_and_settings(pipe):
    out = pipe(["a red circle", "two squares"], num_images_per_prompt=2, num_inference_steps=2)
    assert isinstance(out, list) and len(out) == 4 and all(isinstance(im, Image.Image) for im in out)
    assert out[0] is out.images[0] and [im for im in out] == out.images
    assert out.settings.steps == 2 and out.prompts == ["a red circle"] * 2 + ["two squares"] * 2
    assert out.indices == [(0, 0), (0, 1), (1, 0), (1, 1)] and out.noise == "seed"


def test_official_and_mirokit_names_are_the_same_setting(pipe):
    official = pipe("a red circle", reward_targets={"world_quality": 0.2}, num_inference_steps=2, guidance_scale=1.5,
                    output_type="numpy")
    ours = pipe("a red circle", rewards={"world_quality": 0.2}, steps=2, guidance=1.5, output_type="numpy")
    assert np.array_equal(official, ours) and official.settings == ours.settings
    other = pipe("a red circle", rewards={"world_quality": 0.9}, steps=2, guidance=1.5, output_type="numpy")
    assert not np.array_equal(other, ours)
    with pytest.raises(ValueError, match="give num_inference_steps= or steps=, not both"):
        pipe("a red circle", num_inference_steps=2, steps=3)
    with pytest.raises(ValueError, match="give generator= or seed="):
        pipe("a red circle", generator=torch.Generator().manual_seed(0), seed=1)
    with pytest.raises(ValueError, match="unknown output_type 'tensor'; known: pil, numpy, np, pt, latent"):
        pipe("a red circle", output_type="tensor")
    with pytest.raises(ValueError, match="num_images .* must be an integer >= 1"):
        pipe("a red circle", num_images_per_prompt=0)


def test_output_types_agree(pipe):
    call = dict(num_inference_steps=2, num_images_per_prompt=2)
    pil = pipe("a red circle", **call)
    uint8 = pipe("a red circle", output_type="numpy", **call)
    floats = pipe("a red circle", output_type="np", **call)
    tensor = pipe("a red circle", output_type="pt", **call)
    latent = pipe("a red circle", output_type="latent", **call)
    assert uint8.shape == (2, 16, 16, 3) and uint8.dtype == np.uint8
    assert np.array_equal(uint8, np.stack([np.asarray(im) for im in pil]))
    assert floats.images.shape == (2, 16, 16, 3) and floats.images.dtype == np.float32
    assert np.abs(floats.images * 255 - uint8).max() <= 0.5 + 1e-4  # pixels round to uint8
    assert tuple(tensor.images.shape) == (2, 3, 16, 16) and torch.allclose(
        tensor.images.permute(0, 2, 3, 1), torch.from_numpy(floats.images))
    assert tuple(latent.images.shape) == (2, 3, 16, 16) and latent.images.min() < 0  # model space, [-1, 1]
    assert torch.allclose(pipe.image_space.decode(latent.images).clamp(0, 1), tensor.images)


def test_generators_draw_the_noise_the_official_way(pipe):
    call = dict(num_inference_steps=2, num_images_per_prompt=2, output_type="latent", guidance_scale=0.0)
    one = pipe("a red circle", generator=torch.Generator().manual_seed(3), **call)
    # one generator: a single (B, C, H, W) draw; a list: image k from generator k (diffusers)
    several = pipe("a red circle", generator=[torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)],
                   **call)
    assert one.noise == "generator" and torch.equal(one.images[0], several.images[0])
    assert not torch.equal(one.images[1], several.images[1])
    with pytest.raises(ValueError, match="got 1 generators for 2 images"):
        pipe("a red circle", generator=[torch.Generator()], **call)


@pytest.mark.parametrize("move", ["to(torch.bfloat16)", "to('cpu', torch.float16)", "torch_dtype=torch.bfloat16",
                                  "to(device='cpu', dtype=torch.bfloat16)"])
def test_half_precision_in_every_form_samples(folder, move):
    if move.startswith("torch_dtype"):
        pipe = MiroPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)
    else:
        pipe = eval(f"MiroPipeline.from_pretrained(folder).{move}")
    expected = torch.float16 if "float16" in move and "bfloat16" not in move else torch.bfloat16
    assert next(pipe.generator.parameters()).dtype == expected
    half = pipe("a red circle", num_inference_steps=2, output_type="numpy")
    full = MiroPipeline.from_pretrained(folder)("a red circle", num_inference_steps=2, output_type="numpy")
    assert half.shape == full.shape and half.std() > 1
    assert np.abs(half.astype(int) - full.astype(int)).mean() < 20  # the same image, up to half-precision rounding


def test_bad_to_arguments_are_one_line_errors(pipe):
    with pytest.raises(ValueError, match="floating point"):
        pipe.to(torch.int64)
    with pytest.raises(ValueError, match="MiroPipeline.to"):
        pipe.to("not-a-device")


def test_callback_on_step_end_sees_and_replaces_the_latents(pipe):
    seen = []

    def zero_at_the_end(p, step, timestep, kwargs):
        seen.append((p is pipe, step, round(float(timestep), 4), tuple(kwargs["latents"].shape)))
        return {"latents": torch.zeros_like(kwargs["latents"])} if step == 2 else kwargs

    out = pipe("a red circle", num_inference_steps=3, output_type="latent", callback_on_step_end=zero_at_the_end)
    assert seen == [(True, 0, 0.6667, (1, 3, 16, 16)), (True, 1, 0.3333, (1, 3, 16, 16)),
                    (True, 2, 0.0, (1, 3, 16, 16))]
    assert torch.equal(out.images, torch.zeros(1, 3, 16, 16))

    def stop(p, step, timestep, kwargs):
        p.interrupt = step >= 1
        return kwargs

    with pytest.raises(SamplingCancelled, match="after step 2 of 4"):
        pipe("a red circle", num_inference_steps=4, callback_on_step_end=stop)
    with pytest.raises(ValueError, match="only 'latents'"):
        pipe("a red circle", num_inference_steps=2, callback_on_step_end=stop,
             callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_the_pipeline_samples_to_latents_on_the_meta_device(folder):
    """Every tensor a call makes must be made on the pipeline's device: on `meta` a CPU tensor meeting a meta one is
    an error, and nothing may be read back per step (the time grid stays on the host)."""
    pipe = MiroPipeline.from_pretrained(folder).to("meta")
    for solver in ("euler", "heun", "ab2"):
        out = pipe("a red circle", num_inference_steps=3, solver=solver, output_type="latent")
        assert out.images.device.type == "meta" and tuple(out.images.shape) == (1, 3, 16, 16)
