"""mirokit.evaluate.stats: t-intervals (plain, clustered, stratified), the exact best-of-N estimator, Spearman."""

import itertools

import numpy as np
import pytest

from mirokit.evaluate.stats import (
    best_of_n_curve,
    best_of_n_weights,
    expected_best_of_n,
    first_n_reaching,
    mean_ci,
    spearman,
    stratified_mean_ci,
)


def test_t_interval_of_a_known_case():
    ci = mean_ci([1, 2, 3, 4, 5])
    # mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.776445: half width 2.776445 * sqrt(2.5 / 5)
    assert ci["mean"] == 3 and ci["n"] == 5
    assert ci["half_width"] == pytest.approx(2.776445 * np.sqrt(0.5), rel=1e-6)
    assert ci["low"] == pytest.approx(3 - ci["half_width"]) and ci["high"] == pytest.approx(3 + ci["half_width"])


def test_nan_is_dropped_and_counted_and_one_value_has_no_interval():
    ci = mean_ci([1.0, np.nan, 3.0])
    assert ci["mean"] == 2 and ci["missing"] == 1 and ci["n"] == 2
    one = mean_ci([4.0])
    assert one["mean"] == 4 and np.isnan(one["half_width"])


def test_clustered_interval_equals_the_interval_of_prompt_means_for_equal_clusters():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 4)) + rng.normal(size=(7, 1)) * 3  # 7 prompts x 4 images, strong prompt effect
    groups = np.repeat(np.arange(7), 4)
    clustered = mean_ci(values.reshape(-1), groups)
    of_means = mean_ci(values.mean(1))
    assert clustered["mean"] == pytest.approx(of_means["mean"])
    assert clustered["half_width"] == pytest.approx(of_means["half_width"], rel=1e-9)
    assert clustered["n_groups"] == 7 and clustered["n"] == 28
    # ignoring the clusters would claim a far narrower interval
    assert mean_ci(values.reshape(-1))["half_width"] < 0.7 * clustered["half_width"]


def test_t_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(2000):
        ci = mean_ci(rng.normal(2.0, 1.0, size=8))
        hits += ci["low"] <= 2.0 <= ci["high"]
    assert 0.935 <= hits / 2000 <= 0.965


def test_stratified_interval_is_centred_on_the_mean_of_stratum_means():
    values = np.array([1, 1, 0, 1, 0, 0, 0, 1, 1, 1], dtype=float)
    strata = np.array(["a"] * 4 + ["b"] * 6)
    ci = stratified_mean_ci(values, strata)
    assert ci["mean"] == pytest.approx((0.75 + 0.5) / 2) and ci["strata"] == 2
    var = (values[:4].var(ddof=1) / 4 + values[4:].var(ddof=1) / 6) / 4
    assert ci["half_width"] == pytest.approx(1.959964 * np.sqrt(var), rel=1e-6)


def _brute_force(scores, n):
    return np.mean([max(c) for c in itertools.combinations(scores, n)])


@pytest.mark.parametrize("m", [1, 5, 8])
def test_best_of_n_equals_enumeration_of_all_subsets(m):
    scores = np.random.default_rng(m).normal(size=m)
    for n in range(1, m + 1):
        assert expected_best_of_n(scores, n) == pytest.approx(_brute_force(scores, n), abs=1e-12)
    assert expected_best_of_n(scores, 1) == pytest.approx(scores.mean())
    assert expected_best_of_n(scores, m) == pytest.approx(scores.max())


def test_best_of_n_with_ties_and_a_separate_reported_score():
    select = np.array([0.1, 0.5, 0.5, 0.9, 0.2, 0.5])
    report = np.array([3.0, -1.0, 2.0, 0.0, 7.0, 5.0])
    for n in range(1, 7):
        brute = []
        for c in itertools.combinations(range(6), n):
            best = max(c, key=lambda i: (select[i], i))  # ties -> the later position, as the stable sort
            brute.append(report[best])
        assert expected_best_of_n(select, n, report) == pytest.approx(np.mean(brute), abs=1e-12)


def test_best_of_n_weights_sum_to_one_for_large_pools_and_errors():
    w = best_of_n_weights(1000, 128)
    assert w.sum() == pytest.approx(1.0) and (w[:127] == 0).all() and w[-1] == pytest.approx(0.128)
    with pytest.raises(ValueError, match="N <= pool size"):
        expected_best_of_n([1.0, 2.0], 3)
    with pytest.raises(ValueError, match="finite"):
        expected_best_of_n([1.0, np.nan], 1)


def test_curve_over_prompts_and_first_n_reaching():
    pools = [np.arange(8.0), np.arange(8.0) + 10, [np.nan, 1.0, 2.0]]
    curve = best_of_n_curve(pools, [1, 2, 4])
    assert curve[1]["mean"] == pytest.approx((3.5 + 13.5 + 1.5) / 3)
    assert curve[4]["n"] == 2 and curve[4]["missing"] == 1  # the third pool has only 2 scored samples
    assert first_n_reaching({1: 0.2, 2: 0.5, 4: 0.7}, 0.5) == 2
    assert first_n_reaching({1: 0.2, 2: 0.5}, 0.9) is None


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, size=40).astype(float)
    b = a + rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, np.nan, 4], [1, 2, 5, 3]) == pytest.approx(spearmanr([1, 2, 4], [1, 2, 3]).statistic)


def test_paired_interval_drops_nan_pairs_and_averages_per_prompt():
    from mirokit.evaluate.stats import paired_mean_ci

    a = [1.0, 0.0, 1.0, np.nan, 1.0, 1.0]
    b = [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    groups = [0, 0, 1, 1, 2, 2]
    # per prompt: (1 + 0) / 2, 1 (the NaN pair is left out), (1 + 0) / 2
    expected = mean_ci([0.5, 1.0, 0.5])
    got = paired_mean_ci(a, b, groups)
    assert got["mean"] == pytest.approx(expected["mean"]) and got["half_width"] == pytest.approx(expected["half_width"])
    assert got["n_groups"] == 3
    # stratified: the centre is the difference of the two means of per-stratum means
    strata = ["x", "x", "x", "x", "y", "y"]
    a2, b2 = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    centre = lambda v: (np.mean(v[:4]) + np.mean(v[4:])) / 2
    got = paired_mean_ci(a2, b2, groups, strata)
    assert got["mean"] == pytest.approx(centre(np.array(a2)) - centre(np.array(b2))) and got["strata"] == 2
    with pytest.raises(ValueError, match="equal lengths"):
        paired_mean_ci([1.0], [1.0, 2.0], [0, 0])
