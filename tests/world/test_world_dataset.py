import json
import math

import numpy as np
import pytest
import torch

from mirokit.data.batch import DataError, collate
from mirokit.world.dataset import WorldDataset, make_item
from mirokit.world.sampling import WorldConfig
from mirokit.world.scenes import scene_from_dict


def test_same_seed_same_samples_and_index_independence():
    a, b = WorldDataset(300, WorldConfig(seed=3)), WorldDataset(40, WorldConfig(seed=3), chunk_size=16)
    idx = list(range(0, 40, 3))
    assert torch.equal(a.pixels(idx), b.pixels(idx))  # sample i depends on (seed, i) only
    assert a.captions[:40] == b.captions
    assert a.metadata(7) == b.metadata(7)
    c = WorldDataset(40, WorldConfig(seed=4))
    assert not torch.equal(a.pixels(idx), c.pixels(idx)) and a.captions[:40] != c.captions
    assert len(set(a.captions)) > 150


def test_items_images_and_metadata():
    ds = WorldDataset(50, WorldConfig(image_size=48))
    image, caption, scores = ds[5][:3]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32 and scores == {}
    assert -1.0 <= image.min() and image.max() <= 1.0 and caption == ds.captions[5]
    meta = ds.metadata(5)
    assert meta["prompt"] == caption and meta["index"] == 5 and {"tag", "include", "noise", "scene"} <= set(meta)
    json.dumps(meta)  # JSON-ready
    assert scene_from_dict(meta["scene"]) == ds.item(5).scene
    assert ds.images([5, -1]).shape == (2, 3, 48, 48) and len(ds) == 50
    with pytest.raises(IndexError, match="out of range"):
        ds[50]


def test_scores_become_batch_rewards():
    ds = WorldDataset(20)
    with pytest.raises(DataError, match="no reward 'align'"):
        ds.batch([0, 1], ["align"])
    values = np.linspace(0, 1, 40, dtype=np.float32).reshape(20, 2)
    values[3, 1] = np.nan
    ds.set_scores(["align", "quality"], values)
    batch = ds.batch([3, 4], ["quality", "align"])
    assert batch.images.shape == (2, 3, 32, 32) and batch.captions == [ds.captions[3], ds.captions[4]]
    assert math.isnan(batch.rewards[0, 0]) and batch.rewards[1].tolist() == pytest.approx([values[4, 1], values[4, 0]])
    ds.set_scores(["extra"], np.full((20, 1), 0.5))
    assert ds.reward_keys_seen == ["align", "quality", "extra"] and ds.batch([0]).rewards.shape == (1, 3)
    reference = collate([ds[3], ds[4]], ["quality", "align"])
    assert torch.equal(reference.images, batch.images)
    assert torch.allclose(reference.rewards, batch.rewards, equal_nan=True)
    with pytest.raises(DataError, match="sample 2: score 'align'=1.5"):
        bad = np.zeros((20, 1))
        bad[2] = 1.5
        ds.set_scores(["align"], bad)
    with pytest.raises(DataError, match="shape"):
        ds.set_scores(["align"], np.zeros((19, 1)))


def test_iter_samples_streams_the_same_samples():
    ds = WorldDataset(70, chunk_size=32)
    streamed = list(ds.iter_samples(start=10, stop=45))
    assert [s[0] for s in streamed] == list(range(10, 45))
    pixels = ds.pixels(range(10, 45)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(np.stack([s[1] for s in streamed]), pixels)
    assert [s[2] for s in streamed] == ds.captions[10:45]
    assert streamed[0][3] == ds.metadata(10) == make_item(ds.cfg, 10).metadata()


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(DataError, match="num_samples"):
        WorldDataset(0)
