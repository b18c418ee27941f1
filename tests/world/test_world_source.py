import numpy as np

from mirokit.config import from_dict
from mirokit.data.source import DataConfig, build_dataset
from mirokit.world.sampling import WorldConfig
from mirokit.world.source import WORLD_REWARDS, scored_world


def test_scored_world_is_calibrated_on_the_grid_and_near_uniform():
    ds, raw = scored_world(1500, WorldConfig(seed=1))
    batch = ds.batch(list(range(len(ds))), WORLD_REWARDS)
    values = batch.rewards.numpy()
    finite = values[~np.isnan(values)]
    assert np.allclose(finite * 63, np.round(finite * 63), atol=1e-4)
    quality = np.round(values[:, WORLD_REWARDS.index("world_quality")] * 63).astype(int)
    counts = np.bincount(quality, minlength=64)
    # bins are quantiles of the *unique* raw scores (official): clean images tie at the top score and all
    # land in the last bin; the distinct (degraded) scores fill the other 63 bins about evenly
    tied = int((raw["world_quality"] == raw["world_quality"].max()).sum())
    assert tied > len(ds) / 4 and counts[63] >= tied
    distinct = len(np.unique(raw["world_quality"]))
    assert counts[:63].min() >= 0.4 * distinct / 64 and counts[:63].max() <= 1.8 * distinct / 64
    # calibration preserves order: higher raw score, higher calibrated value
    order = np.argsort(raw["world_quality"])
    assert (np.diff(values[order, WORLD_REWARDS.index("world_quality")]) >= 0).all()
    assert set(ds.info.calibration.keys) == set(WORLD_REWARDS) and ds.info.reward_keys == tuple(WORLD_REWARDS)


def test_data_kind_world_builds_a_scored_dataset():
    cfg = from_dict(DataConfig, {"kind": "world", "num_samples": 64, "seed": 2, "world": {"blur_rate": 0.5}})
    ds = build_dataset(cfg, image_size=32, channels=3)
    assert len(ds) == 64 and ds.reward_keys_seen == WORLD_REWARDS
    blurred = sum("blur" in ds.metadata(i)["noise"] for i in range(64))
    assert 16 <= blurred <= 48
