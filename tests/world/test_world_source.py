import numpy as np
import pytest

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


def test_synthetic_captions_from_the_detector_train_with_their_own_scores(tmp_path):
    """build_world(synthetic=True): the decoded images recaptioned by the world's detector, scored with those
    captions, one calibration over both; the world source draws them by the caption mix."""
    import torch

    from mirokit.data.caption_mix import choose_caption
    from mirokit.world import experiment as X
    from mirokit.world.source import WorldDataConfig, world_source

    exp = X.ExperimentConfig(out_dir=str(tmp_path), num_samples=64, seed=0)
    dataset, latents = X.build_world(exp, progress=False, synthetic=True)
    captions, values = dataset.synthetic
    assert len(captions) == 64 and values.shape == (64, len(X.WORLD_REWARDS))
    assert sum(a != b for a, b in zip(captions, dataset.captions)) > 10  # the detector describes what it sees
    _, data = X.data_overrides(exp, dataset, latents)
    (path,) = (o.split("=", 1)[1] for o in X.synthetic_overrides(exp, dataset))
    options = dict(o.split("=", 1) for o in data if o.startswith(("data.scores", "data.calibration")))
    cfg = WorldDataConfig(num_samples=64, seed=0, scores=options["data.scores"],
                          calibration=options["data.calibration"], synthetic=path, caption_mix=1.0)
    source = world_source(cfg, image_size=32, channels=3)
    drawn = source.draw(5, torch.Generator())
    assert drawn.caption == captions[5]
    assert drawn.scores == pytest.approx(dict(zip(source.reward_keys_seen, values[5].tolist())), nan_ok=True)
    assert source[5].caption == dataset.captions[5]  # no generator: the world's caption
    assert choose_caption(["original", "synthetic"], torch.Generator(), mix=1.0, weights=None) == 1


def test_data_kind_world_scores_the_rewards_it_is_asked_for():
    cfg = from_dict(DataConfig, {"kind": "world", "num_samples": 64, "seed": 2,
                                 "rewards": [*WORLD_REWARDS, "world_brightness"]})
    ds = build_dataset(cfg, image_size=32, channels=3)
    assert ds.reward_keys_seen == [*WORLD_REWARDS, "world_brightness"]
    brightness = ds.batch(list(range(64)), ["world_brightness"]).rewards[:, 0].numpy()
    assert np.isfinite(brightness).all() and brightness.std() > 0.1  # calibrated on the grid, spread
