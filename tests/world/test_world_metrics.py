"""The `shapes` metric registered by the world plugin: ground-truth renders score ~1, mismatched ones low, and
its value is GenEval's overall (the mean of per-tag accuracies)."""

import numpy as np
import pytest

from mirokit.evaluate.metrics import parse_metric
from mirokit.world.prompts import derangement
from mirokit.world.render import render_batch
from mirokit.world.sampling import WorldConfig, scene_for_metadata


def _render(records, sources):
    rng = np.random.default_rng(0)
    cfg = WorldConfig(image_size=32, seed=0)
    return render_batch([scene_for_metadata(records[s], rng, cfg) for s in sources], 32)


@pytest.fixture(scope="module")
def metric():
    return parse_metric("shapes")


def test_found_through_the_registry_with_shapeseval_prompts(metric):
    records = metric.prompts()
    assert metric.name == "shapes" and len(records) == 553
    assert {r["tag"] for r in records} == {"single_object", "two_object", "counting", "colors", "position",
                                           "color_attr"}


def test_ground_truth_scores_high_and_mismatched_renders_low(metric):
    records = metric.prompts()[::7]
    good = metric.score(_render(records, range(len(records))), records)
    bad = metric.score(_render(records, derangement(records, 0)), records)
    assert set(np.unique(good)) <= {0.0, 1.0}
    assert metric.summarize(good, records) >= 0.95
    assert metric.summarize(bad, records) <= 0.35


def test_value_is_the_mean_of_per_tag_accuracies(metric):
    records = [{"tag": "a"}, {"tag": "a"}, {"tag": "a"}, {"tag": "b"}]
    assert metric.summarize(np.array([1.0, 1.0, 0.0, 0.0]), records) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError, match="2 images but 1 records"):
        metric.score(np.zeros((2, 32, 32, 3), np.uint8), records[:1])
