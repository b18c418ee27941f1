"""Intervals of a setting's metric: centred on the metric's own value (plain mean or GenEval's mean of tag means),
and paired differences centred on the difference of the two values."""

import numpy as np
import pytest

from mirokit.evaluate.settings_eval import metric_interval, paired_difference

RECORDS = [{"tag": "a"}] * 3 + [{"tag": "b"}] * 2  # 5 prompts: tag a has 3, tag b has 2
PAIRS = [(i, j) for i in range(5) for j in range(2)]
GROUPS = [i for i, _ in PAIRS]


def _tag_mean(per_image):
    per_prompt = np.asarray(per_image, dtype=float).reshape(5, 2).mean(1)
    return (per_prompt[:3].mean() + per_prompt[3:].mean()) / 2


def _result(per_image):
    recs = [RECORDS[i] for i in GROUPS]
    value = _tag_mean(per_image)
    return {"per_image": np.asarray(per_image, dtype=float), "pairs": PAIRS,
            "metric": {"value": value, "ci": metric_interval(per_image, recs, GROUPS, value)}}


def test_interval_is_centred_on_a_mean_of_tag_means():
    per_image = [1, 1, 0, 1, 1, 1, 0, 0, 0, 1]
    res = _result(per_image)
    assert res["metric"]["ci"]["centred"] and "strata" in res["metric"]["ci"]
    assert res["metric"]["ci"]["mean"] == pytest.approx(res["metric"]["value"])
    plain = metric_interval(per_image, [RECORDS[i] for i in GROUPS], GROUPS, float(np.mean(per_image)))
    assert plain["centred"] and "strata" not in plain and plain["n_groups"] == 5


def test_paired_difference_is_centred_on_the_difference_of_values():
    a = _result([1, 1, 0, 1, 1, 1, 0, 0, 0, 1])
    b = _result([0] * 10)  # all zeros: its plain and stratified centres coincide
    diff = paired_difference(a, b, RECORDS)
    assert diff["mean"] == pytest.approx(a["metric"]["value"] - b["metric"]["value"])
    same = paired_difference(a, a, RECORDS)
    assert same["mean"] == 0 and same["half_width"] == 0
