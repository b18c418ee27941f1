import math

import pytest
import torch

from mirokit.data import Batch, DataError, collate


def _sample(value, caption="a cat", scores=None):
    return torch.full((3, 4, 4), value), caption, scores if scores is not None else {}


def test_collate_stacks_and_marks_missing_rewards_nan():
    samples = [
        _sample(0.5, "one", {"clip": 0.25, "aes": 1.0, "unused": 0.3}),
        _sample(-0.5, "two", {"aes": 0.0}),
        _sample(0.0, "three", {"clip": None, "aes": math.nan}),
    ]
    batch = collate(samples, ["clip", "aes"])
    assert isinstance(batch, Batch) and len(batch) == 3
    assert batch.images.shape == (3, 3, 4, 4) and batch.images.dtype == torch.float32
    assert torch.equal(batch.images[1], torch.full((3, 4, 4), -0.5))
    assert batch.captions == ["one", "two", "three"]
    assert batch.rewards.shape == (3, 2) and batch.rewards.dtype == torch.float32
    expected = torch.tensor([[0.25, 1.0], [math.nan, 0.0], [math.nan, math.nan]])
    assert torch.equal(torch.isnan(batch.rewards), torch.isnan(expected))
    assert torch.equal(torch.nan_to_num(batch.rewards, 9.0), torch.nan_to_num(expected, 9.0))


def test_collate_with_no_reward_keys_gives_empty_columns():
    batch = collate([_sample(0.0), _sample(1.0)], [])
    assert batch.rewards.shape == (2, 0)


def test_batch_to_keeps_content():
    batch = collate([_sample(0.1, scores={"k": 0.5})], ["k"]).to("cpu")
    assert batch.rewards.item() == 0.5 and batch.captions == ["a cat"]


@pytest.mark.parametrize(
    "samples, match",
    [
        ([], "empty"),
        ([_sample(0.0), (torch.zeros(3, 5, 4), "x", {})], "sample 1: image shape"),
        ([_sample(0.0, scores={"k": 1.5})], r"sample 0: score 'k'=1.5 is outside \[0, 1\]"),
        ([_sample(0.0), _sample(0.0, scores={"k": "high"})], "sample 1: score 'k' is not a number"),
        ([_sample(0.0, caption=3)], "sample 0: caption is not a string"),
    ],
)
def test_collate_bad_input_names_the_sample(samples, match):
    with pytest.raises(DataError, match=match) as info:
        collate(samples, ["k"])
    assert "\n" not in str(info.value)
