import time

import numpy as np
import pytest
import torch

from mirokit.data import (
    TOY_COLOURS,
    TOY_REWARD_KEYS,
    TOY_SHAPES,
    DataError,
    ToyShapesDataset,
    collate,
    measure_brightness,
    toy_caption_list,
)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.double(), b.double()]))[0, 1].item()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    return torch.argsort(torch.argsort(x)).double()


def test_captions_and_keys():
    captions = toy_caption_list()
    assert len(captions) == 18 == len(set(captions))
    assert len(TOY_COLOURS) == 6 and len(TOY_SHAPES) == 3
    assert "a red circle" in captions and "a white triangle" in captions
    assert TOY_REWARD_KEYS == ["brightness", "size"]
    data = ToyShapesDataset(300, seed=1)
    assert set(data.captions) <= set(captions)
    assert len(set(data.captions)) == 18  # every combination occurs in 300 draws


def test_samples_have_the_documented_form_and_are_deterministic():
    a, b, c = ToyShapesDataset(64, seed=7), ToyShapesDataset(64, seed=7), ToyShapesDataset(64, seed=8)
    image, caption, scores = a[5][:3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    assert set(scores) == set(TOY_REWARD_KEYS) and all(0 <= v <= 1 for v in scores.values())
    # Access order does not matter: b draws a different chunk first.
    _ = b[63]
    assert torch.equal(a.images(range(64)), b.images(range(64)))
    assert a.captions == b.captions and torch.equal(a.rewards, b.rewards)
    assert not torch.equal(a.images(range(64)), c.images(range(64)))
    assert caption == a.captions[5]


def test_batch_matches_collate_of_items():
    data = ToyShapesDataset(20, image_size=24, seed=2)
    fast = data.batch([3, 0, 19], reward_keys=["size"])
    slow = collate([data[3], data[0], data[19]], ["size"])
    assert torch.equal(fast.images, slow.images) and fast.captions == slow.captions
    assert torch.allclose(fast.rewards, slow.rewards)
    with pytest.raises(DataError, match="no reward 'aesthetic'"):
        data.batch([0], reward_keys=["aesthetic"])
    with pytest.raises(IndexError):
        data[20]


def test_pixels_follow_the_rewards():
    data = ToyShapesDataset(400, seed=0)
    batch = data.batch(range(400))
    brightness, size = batch.rewards[:, 0], batch.rewards[:, 1]
    measured = measure_brightness(batch.images)
    assert measured.shape == (400,)
    assert _pearson(measured, brightness) > 0.95
    assert _pearson(_ranks(measured), _ranks(brightness)) > 0.95
    assert (measured - brightness).abs().max() < 0.01  # only uint8 rounding separates them
    # Object area (pixels that differ from the background) grows with the size reward, per shape.
    background = (batch.images[:, :, :1, :1] + 1) / 2
    area = (((batch.images + 1) / 2 - background).abs().amax(dim=1) > 0.02).sum(dim=(1, 2)).double()
    shapes = torch.as_tensor(data.params["shape"])
    for s in range(3):
        pick = shapes == s
        assert _pearson(_ranks(area[pick]), _ranks(size[pick])) > 0.9
    # Colour is drawn: the centre pixel of each object has its caption's colour.
    names = list(TOY_COLOURS)
    for i in range(10):
        cx, cy = int(data.params["cx"][i]), int(data.params["cy"][i])
        colour = np.asarray(TOY_COLOURS[names[data.params["colour"][i]]])
        pixel = ((batch.images[i, :, cy, cx] + 1) / 2).numpy()
        assert np.abs(pixel - colour).max() < 0.01, data.captions[i]


def test_measure_brightness_on_constant_images_and_grayscale():
    grey = torch.full((2, 3, 16, 16), 0.35 * 2 - 1)  # grey level 0.35: middle of [0.1, 0.6]
    assert torch.allclose(measure_brightness(grey), torch.tensor([0.5, 0.5]), atol=1e-6)
    assert torch.allclose(measure_brightness(torch.full((1, 1, 8, 8), 1.0)), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="expected"):
        measure_brightness(torch.zeros(3, 8, 8))


def test_scales_with_image_size_and_is_fast():
    big = ToyShapesDataset(8, image_size=64, seed=0)
    assert big[0][0].shape == (3, 64, 64)
    assert torch.allclose(measure_brightness(big.images(range(8))), big.rewards[:, 0], atol=0.01)
    start = time.perf_counter()
    data = ToyShapesDataset(10_000, seed=0)
    images = data.images(range(10_000))
    assert images.shape == (10_000, 3, 32, 32)
    assert time.perf_counter() - start < 10.0


@pytest.mark.parametrize("args, kwargs", [((0,), {}), ((5,), {"image_size": 8}), ((2.5,), {})])
def test_bad_arguments(args, kwargs):
    with pytest.raises(DataError, match="ToyShapesDataset"):
        ToyShapesDataset(*args, **kwargs)
