"""Every reward scorer's batch on a non-CPU device without a GPU (tests/devices.py), on the suite's tiny models of
the real classes: the model, the pixels and the tokens on the device, one copy back per batch and nothing else."""

import pytest
import torch
from clip_testkit import CAPTIONS, images
from devices import DeviceMismatch, on_device, stopped_in
from scorer_kit import tiny_scorer_options

from mirokit.rewards import build_scorer
from mirokit.rewards.registry import SCORERS

TEXT_SCORERS = ["clip_score", "pick_a_score_score", "sciscore_score", "hpsv2_score", "image_reward_score",
                "vqa_score"]


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    """{scorer key: its build options} on tiny random weights (the reward tests' fixtures)."""
    return tiny_scorer_options(tmp_path_factory.mktemp("scorers"))


def test_every_registered_scorer_is_covered(options):
    built_in = {key for key in SCORERS.known() if not key.startswith("world_")}  # the world plugin's: numpy
    assert built_in == set(options)


@pytest.mark.parametrize("key", ["aesthetic_score", *TEXT_SCORERS])
def test_a_scorers_batches_run_on_fake_cuda(options, key):
    """3 images in batches of 2: the scores of each batch come back once, as (2,) then (1,); nothing else does."""
    with on_device("cuda") as dev:
        scorer = build_scorer(key, device="cuda", batch_size=2, **options[key])
        scores = scorer.score(images(3), CAPTIONS[:3])
        assert all(p.device.type == "cuda" for p in scorer.model.parameters())
    assert scores.shape == (3,) and dev.readbacks == [(2,), (1,)]


def test_the_vision_scorer_runs_on_meta_and_text_towers_stop_in_transformers(options):
    """meta: the aesthetic scorer (vision tower + head) runs; a text tower stops where transformers reads its
    padding mask (masking_utils, skipped for fake tensors only; docs/TESTING.md)."""
    with on_device("meta") as dev:
        scorer = build_scorer("aesthetic_score", device="meta", batch_size=2, **options["aesthetic_score"])
        assert scorer.score(images(3), CAPTIONS[:3]).shape == (3,)
        with pytest.raises(RuntimeError, match="cannot be called on meta tensors") as caught:
            build_scorer("clip_score", device="meta", **options["clip_score"]).score(images(1), CAPTIONS[:1])
    assert dev.readbacks == [(2,), (1,)] and stopped_in(caught.value, "transformers/masking_utils.py")


def test_a_host_tensor_planted_in_a_scorer_fails(options, monkeypatch):
    """The test above can fail: the aesthetic head fed a host copy of the embeddings meets its weights on the
    device."""
    from mirokit.rewards.clip_family import AestheticScore

    planted = AestheticScore.image_embeds
    monkeypatch.setattr(AestheticScore, "image_embeds", lambda self, ims: torch.zeros(planted(self, ims).shape))
    for device, error in (("meta", RuntimeError), ("cuda", DeviceMismatch)):
        with on_device(device), pytest.raises(error, match="device"):
            build_scorer("aesthetic_score", device=device, **options["aesthetic_score"]).score(images(2), CAPTIONS[:2])
