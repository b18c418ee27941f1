"""transformers' PIL CLIPImageProcessor == open_clip / OpenAI CLIP eval preprocessing (written out here)."""

import numpy as np
import pytest
from PIL import Image

from mirokit.rewards.clip_family import load_image_processor, preprocess_images

OPENAI_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
OPENAI_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def open_clip_eval_transform(image: Image.Image, size: int) -> np.ndarray:
    """Resize(size, bicubic) on the shortest side (long side truncated, as torchvision), CenterCrop(size) with
    round() offsets, RGB, ToTensor, Normalize(OpenAI mean/std) -> (3, size, size)."""
    image = image.convert("RGB")
    w, h = image.size
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    image = image.resize(new, Image.BICUBIC)
    left, top = round((new[0] - size) / 2.0), round((new[1] - size) / 2.0)
    image = image.crop((left, top, left + size, top + size))
    x = np.asarray(image, dtype=np.float32) / 255.0
    return ((x - OPENAI_MEAN) / OPENAI_STD).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def processor_224(tmp_path_factory):
    from transformers import CLIPImageProcessorPil

    d = tmp_path_factory.mktemp("proc")
    # the published ViT-H-14 / ViT-L-14 preprocessor_config.json values
    CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                          image_mean=OPENAI_MEAN.tolist(), image_std=OPENAI_STD.tolist()).save_pretrained(str(d))
    return load_image_processor(str(d), local_files_only=True)


@pytest.mark.parametrize("size,mode", [((256, 256), "RGB"), ((512, 512), "RGB"), ((300, 400), "RGB"),
                                       ((640, 360), "RGB"), ((200, 200), "L"), ((96, 128), "RGBA")])
def test_pil_processor_matches_the_open_clip_eval_transform(processor_224, size, mode):
    rng = np.random.default_rng(sum(size))
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    image = Image.fromarray(arr, mode)
    ours = preprocess_images(processor_224, [image])[0].numpy()
    ref = open_clip_eval_transform(image, 224)
    assert ours.shape == ref.shape == (3, 224, 224)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_processor_uses_the_pil_backend(processor_224):
    assert type(processor_224).__name__.endswith("Pil") or "torchvision" not in type(processor_224).__module__


def test_odd_crop_margins_differ_from_torchvision_by_one_pixel(processor_224):
    """Documented difference: for a crop margin of 4k+3 pixels torchvision rounds the offset half-to-even up
    (e.g. 1.5 -> 2) while transformers floors it (1); square images (the generator's) never hit this."""
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (224, 227, 3), dtype=np.uint8))  # 227 x 224: margin 3
    ours = preprocess_images(processor_224, [image])[0].numpy()
    assert not np.allclose(ours, open_clip_eval_transform(image, 224), atol=1e-5)
    floored = np.asarray(image, dtype=np.float32)[:, 1:225] / 255.0
    np.testing.assert_allclose(ours, ((floored - OPENAI_MEAN) / OPENAI_STD).transpose(2, 0, 1), atol=1e-5)
