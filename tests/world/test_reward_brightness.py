"""world_brightness: the fourth world reward (background luma), which the demo's three do not measure."""

import numpy as np
import pytest
from PIL import Image

from mirokit.rewards import available_scorers, build_scorer
from mirokit.world.noise import gaussian_blur, jpeg_roundtrip
from mirokit.world.render import render_scene
from mirokit.world.rewards import WorldBrightness
from mirokit.world.scenes import Scene, WorldObject


def _scene(grey: int, *objects: WorldObject) -> Scene:
    return Scene(objects=tuple(objects), background=(grey, grey, grey))


def test_registered_and_listed():
    scorer = build_scorer("world_brightness")
    assert isinstance(scorer, WorldBrightness) and scorer.key == "world_brightness"
    assert "world_brightness" in available_scorers()  # what `mirokit score --list` prints


def test_known_answers():
    b = WorldBrightness()
    flat = [np.full((32, 32, 3), g, np.uint8) for g in (0, 64, 128, 255)]
    assert b.score(flat).tolist() == pytest.approx([0.0, 64 / 255, 128 / 255, 1.0], abs=1e-6)
    tinted = np.zeros((16, 16, 3), np.uint8)
    tinted[..., 1] = 200  # green weighs 0.587 in the luma
    assert b.score([tinted])[0] == pytest.approx(0.587 * 200 / 255, abs=1e-5)
    # the background decides: a brighter background scores higher whatever the objects, and the objects'
    # colour, count and place do not move the score
    red, blue = WorldObject("star", "red", 0.3, 0.3, 0.15), WorldObject("square", "blue", 0.7, 0.7, 0.18)
    images = [render_scene(s, 32) for s in (_scene(100, red), _scene(160, red), _scene(100, blue),
                                             _scene(100, red, blue), _scene(100))]
    s = b.score(images)
    assert s[1] > s[0] + 0.2
    assert s[0] == pytest.approx(100 / 255, abs=1e-6) and np.allclose(s[[2, 3, 4]], s[0], atol=1e-6)


def test_blur_and_jpeg_leave_it_a_cut_object_barely_moves_it():
    rng = np.random.default_rng(0)
    greys = rng.integers(95, 166, 24)
    objs = [WorldObject("circle", "yellow", 0.5, 0.5, 0.2)]
    images = np.stack([render_scene(_scene(int(g), *objs), 32) for g in greys])
    b = WorldBrightness()
    clean = b.score(list(images))
    assert np.abs(b.score(list(gaussian_blur(images, 1.0))) - clean).max() < 0.01
    assert np.abs(b.score([jpeg_roundtrip(im, 15) for im in images]) - clean).max() < 0.03
    cut = render_scene(_scene(120, WorldObject("square", "black", 0.02, 0.5, 0.18)), 32)  # covers part of the border
    assert b.score([cut])[0] == pytest.approx(120 / 255, abs=0.01)


def test_batch_independent_deterministic_mixed_sizes():
    rng = np.random.default_rng(1)
    images = [render_scene(_scene(int(g), WorldObject("ring", "green", 0.4, 0.6, 0.15)), int(size))
              for g, size in zip(rng.integers(90, 170, 9), [32, 48, 32, 64, 32, 48, 32, 32, 64])]
    b = WorldBrightness()
    together = b.score(images, ["ignored"] * len(images))
    alone = np.concatenate([b.score([im]) for im in images])
    assert together.dtype == np.float32 and together.shape == (9,)
    assert np.array_equal(together, alone) and np.array_equal(b.score(images[::-1])[::-1], together)
    assert np.array_equal(b.score([Image.fromarray(im) for im in images]), together)  # PIL or arrays
    assert b.score([]).shape == (0,)


def test_bad_input_is_one_line():
    b = WorldBrightness()
    image = np.full((32, 32, 3), 128, np.uint8)
    for bad, match in (([image, np.zeros((8, 8))], "image 1 has shape"),
                       ([image, np.zeros((2, 2, 3), np.uint8)], "image 1 has shape"),
                       ([image, "not an image"], "image 1 has shape")):
        with pytest.raises(ValueError, match=match) as err:
            b.score(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="world_brightness: 2 images but 1 captions"):
        b.score([image, image], ["a photo of a circle"])


def test_spread_on_the_demo_world_and_independent_of_the_other_rewards():
    """The reward must vary on the world's data (else it cannot be learned): on the demo world its raw scores
    spread over the background range, calibrate to a near-uniform fill of the 64 bins, and barely correlate
    with the three rewards the demo trains on."""
    from mirokit.data.calibration import Calibration
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.sampling import demo_world_config
    from mirokit.world.source import WORLD_REWARDS, score_images

    dataset = WorldDataset(640, demo_world_config(0))
    pixels = dataset.pixels(list(range(len(dataset)))).permute(0, 2, 3, 1).numpy()
    raw = score_images(pixels, dataset.captions, [*WORLD_REWARDS, "world_brightness"])
    bright = raw["world_brightness"]
    lo, hi = np.percentile(bright, [5, 95])
    print(f"\nworld_brightness on the demo world: mean {bright.mean():.3f}, std {bright.std():.3f}, "
          f"5-95% {lo:.3f}-{hi:.3f}, {len(np.unique(bright))} distinct")
    assert bright.std() > 0.05 and hi - lo > 0.2 and 0.3 < lo and hi < 0.7
    calibrated = Calibration.fit({"world_brightness": bright}).apply_all({"world_brightness": bright},
                                                                          ["world_brightness"])[:, 0]
    counts = np.bincount(np.round(calibrated * 63).astype(int), minlength=64)
    assert counts.max() <= 3 * len(bright) / 64 and (counts > 0).sum() >= 48
    for key in WORLD_REWARDS:
        ok = np.isfinite(raw[key])
        r = np.corrcoef(bright[ok], raw[key][ok])[0, 1]
        print(f"  correlation with {key}: {r:+.3f}")
        assert abs(r) < 0.2, key
