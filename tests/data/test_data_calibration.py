import numpy as np
import pytest

from mirokit.data.calibration import NUM_BINS, Calibration, fit_reward


def test_values_are_on_the_grid_and_near_uniform():
    rng = np.random.default_rng(0)
    raw = {"a": rng.normal(3.0, 2.0, 20_000), "b": rng.exponential(1.0, 20_000)}
    raw["a"][:100] = np.nan
    cal = Calibration.fit(raw)
    for key in raw:
        out = cal.apply(key, raw[key])
        finite = out[~np.isnan(out)]
        assert np.allclose(finite * 63, np.round(finite * 63), atol=1e-5)
        assert finite.min() == 0.0 and finite.max() == 1.0
        counts = np.bincount(np.round(finite * 63).astype(int), minlength=NUM_BINS)
        assert counts.min() > 0.8 * len(finite) / NUM_BINS and counts.max() < 1.2 * len(finite) / NUM_BINS
    assert np.isnan(cal.apply("a", raw["a"])[:100]).all()
    assert cal.rewards["a"].missing == 100 and cal.rewards["a"].count == 20_000


def test_ranks_are_preserved_and_out_of_range_values_clamp():
    raw = np.linspace(-1, 1, 1000)
    rc = fit_reward(raw)
    out = rc.apply(raw)
    assert (np.diff(out) >= 0).all()
    assert rc.apply(np.array([-50.0, 50.0])).tolist() == [0.0, 1.0]


def test_quantiles_are_over_unique_scores():
    # a heavily repeated value does not take over the bins: edges come from unique values
    raw = np.concatenate([np.zeros(10_000), np.linspace(1, 2, 640)])
    rc = fit_reward(raw)
    assert rc.apply(np.array([0.0]))[0] == 0.0
    assert len(set(np.round(rc.apply(np.linspace(1, 2, 640)) * 63).astype(int))) > 60


def test_save_load_round_trip_and_errors(tmp_path):
    cal = Calibration.fit({"q": np.arange(500.0)})
    cal.save(tmp_path / "cal.json")
    loaded = Calibration.load(tmp_path / "cal.json")
    x = np.array([0.5, 100.2, 499.0, np.nan])
    np.testing.assert_array_equal(loaded.apply("q", x), cal.apply("q", x))
    with pytest.raises(ValueError, match="no calibration for reward 'zz'; calibrated: q"):
        cal.apply("zz", x)
    with pytest.raises(ValueError, match="all 3 scores are missing"):
        fit_reward(np.full(3, np.nan), "nanonly")
    with pytest.raises(ValueError, match="no scores"):
        fit_reward(np.array([]), "empty")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a mirokit calibration file"):
        Calibration.load(tmp_path / "bad.json")
