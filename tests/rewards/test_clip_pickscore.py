"""pick_a_score_score (PickScore_v1) and sciscore_score (SciScore): logit_scale.exp() * cosine, as published."""

import numpy as np
import pytest
from clip_testkit import (
    CAPTIONS,
    check_scorer_basics,
    images,
    reference_cosine,
    reference_pixels,
    save_clip_folder,
    tiny_clip_model,
)

from mirokit.rewards import build_scorer


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("pick")
    model = tiny_clip_model(seed=1)
    return {"full": save_clip_folder(d / "full", model),
            "weights_only": save_clip_folder(d / "weights_only", model, processor=False),
            "processor": save_clip_folder(d / "processor", tiny_clip_model(seed=2))}


@pytest.mark.parametrize("key", ["pick_a_score_score", "sciscore_score"])
def test_score_is_logit_scale_exp_times_cosine(folders, key):
    scorer = build_scorer(key, model=folders["full"])
    a = check_scorer_basics(scorer)
    model = tiny_clip_model(seed=1)
    ref = model.logit_scale.exp().item() * reference_cosine(model, reference_pixels(model, images()), CAPTIONS)
    np.testing.assert_allclose(a, ref.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(a) <= np.exp(3.2) + 1e-4)  # |cos| <= 1 times the tiny model's exp(logit_scale)


def test_processor_from_another_folder(folders):
    """PickScore_v1's processor is published separately (LAION CLIP-H/14): processor= points at it."""
    ref = build_scorer("pick_a_score_score", model=folders["full"]).score(images(4), CAPTIONS[:4])
    scorer = build_scorer("pick_a_score_score", model=folders["weights_only"], processor=folders["processor"])
    assert scorer.describe()["processor"] == folders["processor"]
    np.testing.assert_allclose(scorer.score(images(4), CAPTIONS[:4]), ref, rtol=1e-6)


def test_default_processors_follow_the_published_usage(folders):
    assert build_scorer("pick_a_score_score").processor_path == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert build_scorer("pick_a_score_score").model_path == "yuvalkirstain/PickScore_v1"
    assert build_scorer("sciscore_score").processor_path == "Jialuo21/SciScore"
    assert build_scorer("pick_a_score_score", model=folders["full"]).processor_path == folders["full"]
    # a weights-only folder falls back to the published processor id (loaded lazily, so no download here)
    assert build_scorer("pick_a_score_score", model=folders["weights_only"]).processor_path.startswith("laion/")


def test_missing_processor_is_a_one_line_error(folders):
    scorer = build_scorer("sciscore_score", model=folders["weights_only"])
    with pytest.raises(OSError, match="sciscore_score: cannot load the tokenizer / image processor") as err:
        scorer.score(images(1), ["a"])
    assert "\n" not in str(err.value)
