import math

import numpy as np
import pytest

from mirokit.world.render import render_batch, render_scene, texture_pattern
from mirokit.world.scenes import Scene, WorldObject
from mirokit.world.vocab import COLOURS, SHAPES

BG = (128, 128, 128)


def _mask(image, colour):
    return np.all(image == np.asarray(COLOURS[colour], dtype=np.uint8), axis=-1)


def _one(shape, size=64, radius=0.3, colour="red", **kw):
    return render_scene(Scene(objects=(WorldObject(shape, colour, 0.5, 0.5, radius, **kw),), background=BG), size)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_fills_its_nominal_box(shape):
    size, radius = 64, 0.3
    mask = _mask(_one(shape, size, radius), "red")
    ys, xs = np.nonzero(mask)
    r = radius * size
    # every shape's tight box is its nominal box (cx +- r), up to a pixel (the star is 0.95 r wide)
    width = 0.95 if shape == "star" else 1.0
    assert xs.min() == pytest.approx(size / 2 - width * r, abs=1.5)
    assert xs.max() + 1 == pytest.approx(size / 2 + width * r, abs=1.5)
    assert ys.min() == pytest.approx(size / 2 - 0.905 * r if shape == "star" else size / 2 - r, abs=1.5)
    area = mask.sum() / r**2  # area in units of r^2
    expected = {"circle": math.pi, "square": 4.0, "triangle": 2.0, "cross": 2 * 4 / 3 - 4 / 9,
                "ring": math.pi * 0.75, "star": 1.12}[shape]
    assert area == pytest.approx(expected, rel=0.08)


def test_ring_has_a_hole_and_cross_a_background_corner():
    ring, cross = _one("ring"), _one("cross")
    assert tuple(ring[32, 32]) == BG  # the hole
    assert tuple(cross[32 - 15, 32 - 15]) == BG and tuple(cross[32, 32]) == COLOURS["red"]


def test_star_has_five_tips():
    mask = _mask(_one("star", 128, 0.4), "red")
    ys, xs = np.nonzero(mask)
    angles = np.arctan2(ys + 0.5 - 64 - 0.0955 * 0.4 * 128, xs + 0.5 - 64)
    radii = np.hypot(ys + 0.5 - 64 - 0.0955 * 0.4 * 128, xs + 0.5 - 64)
    bins = np.digitize(angles, np.linspace(-math.pi, math.pi, 73)) - 1
    profile = np.zeros(72)
    np.maximum.at(profile, bins, radii)
    peaks = [i for i in range(72)
             if profile[i] > 0.8 * 51.2 and profile[i] >= profile[i - 1] and profile[i] > profile[(i + 1) % 72]]
    assert len(peaks) == 5


def test_batch_matches_single_renders_and_supports_32_to_64():
    scenes = [Scene(objects=(WorldObject(s, c, 0.3 + 0.05 * i, 0.6, 0.15),), background=(100 + i, 120, 140))
              for i, (s, c) in enumerate(zip(SHAPES, COLOURS))]
    for size in (32, 48, 64):
        batch = render_batch(scenes, size)
        assert batch.shape == (len(scenes), size, size, 3) and batch.dtype == np.uint8
        for scene, image in zip(scenes, batch):
            np.testing.assert_array_equal(render_scene(scene, size), image)


def test_later_objects_are_painted_on_top_and_rotation_turns_a_square():
    a, b = WorldObject("square", "red", 0.5, 0.5, 0.2), WorldObject("circle", "blue", 0.5, 0.5, 0.1)
    image = render_scene(Scene(objects=(a, b)), 32)
    assert tuple(image[16, 16]) == COLOURS["blue"]
    upright, turned = _mask(_one("square"), "red"), _mask(_one("square", rotation=math.pi / 4), "red")
    assert upright[14, 14] and not turned[14, 14]  # the corner of the box is empty once rotated by 45 degrees
    assert abs(upright.sum() - turned.sum()) < 0.05 * upright.sum()


def test_texture_is_light_and_antialiasing_blends_edges():
    plain = render_scene(Scene(objects=(), background=BG), 32)
    textured = render_scene(Scene(objects=(), background=BG, texture=8.0, texture_seed=3), 32)
    assert (plain == 128).all()
    diff = textured.astype(int) - 128
    assert 4 <= np.abs(diff).max() <= 8 and textured.std() > 1
    assert not np.array_equal(texture_pattern(np.array([1]), 32), texture_pattern(np.array([2]), 32))
    scene = Scene(objects=(WorldObject("circle", "white", 0.5, 0.5, 0.3),), background=BG)
    soft = render_scene(scene, 32, antialias=True)
    assert len(np.unique(soft[..., 0])) > 2 and len(np.unique(render_scene(scene, 32)[..., 0])) == 2


def test_bad_input_names_the_scene():
    with pytest.raises(ValueError, match="scene 1"):
        render_batch([Scene(objects=()), Scene(objects=(WorldObject("hexagon", "red", 0.5, 0.5, 0.2),))])
    with pytest.raises(ValueError, match="render size"):
        render_batch([], 4)
