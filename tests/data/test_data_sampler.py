import pytest
import torch

from mirokit.data import EpochShuffle


def test_each_epoch_is_a_permutation():
    n = 37
    stream = EpochShuffle(n, seed=3).indices(0, 4 * n)
    epochs = [stream[e * n : (e + 1) * n] for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(n))
    assert len({tuple(order) for order in epochs}) == 4  # a fresh order each epoch


def test_epoch_permutation_matches_the_documented_generator():
    seed, epoch, n = 5, 2, 11
    generator = torch.Generator().manual_seed(seed * 1000003 + epoch)
    expected = torch.randperm(n, generator=generator).tolist()
    assert EpochShuffle(n, seed).indices(epoch * n, n) == expected


@pytest.mark.parametrize("start, a, b", [(0, 5, 7), (3, 10, 30), (95, 1, 0), (250, 0, 4), (17, 33, 64)])
def test_indices_are_additive_across_calls_and_epochs(start, a, b):
    sampler = EpochShuffle(10, seed=1)
    whole = sampler.indices(start, a + b)
    # A fresh object (as after a resume) gives the same stream.
    fresh = EpochShuffle(10, seed=1)
    assert whole == fresh.indices(start, a) + fresh.indices(start + a, b)
    assert len(whole) == a + b


def test_seed_changes_the_order_and_ranks_can_slice_a_global_batch():
    assert EpochShuffle(50, 0).indices(0, 50) != EpochShuffle(50, 1).indices(0, 50)
    sampler = EpochShuffle(50, 0)
    global_batch = sampler.indices(40, 16)
    per_rank = [EpochShuffle(50, 0).indices(40 + 4 * rank, 4) for rank in range(4)]
    assert sum(per_rank, []) == global_batch


@pytest.mark.parametrize("args", [(0, 1), (-3, 1), (5, -1), (5, 1.5)])
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError, match="EpochShuffle"):
        EpochShuffle(*args)


def test_bad_positions_raise():
    with pytest.raises(ValueError, match="start and count"):
        EpochShuffle(4, 0).indices(-1, 2)
