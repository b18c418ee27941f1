import logging
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from mirokit.rewards import build_scorer
from mirokit.world.captions import caption_noise_feasible, caption_scene
from mirokit.world.noise import cut_by_border, gaussian_blur, jpeg_roundtrip, low_contrast, pixel_noise
from mirokit.world.render import render_batch, render_scene
from mirokit.world.rewards import WorldAlignment, WorldComposition, WorldQuality
from mirokit.world.sampling import WorldConfig, sample_scene
from mirokit.world.scenes import Scene, WorldObject


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(2024)
    cfg = WorldConfig()
    scenes = [sample_scene(rng, cfg) for _ in range(120)]
    return rng, scenes, render_batch(scenes, cfg.image_size)


def test_registry_builds_each_world_scorer():
    for key, cls in (("world_alignment", WorldAlignment), ("world_quality", WorldQuality),
                     ("world_composition", WorldComposition)):
        scorer = build_scorer(key)
        assert isinstance(scorer, cls) and scorer.key == key
    with pytest.raises(ValueError, match="world_quality: noise_scale"):
        build_scorer("world_quality", noise_scale=0)


def test_scores_are_batched_deterministic_float32(world):
    _, scenes, images = world
    captions = [caption_scene(s, np.random.default_rng(i))[0] for i, s in enumerate(scenes)]
    pil = [Image.fromarray(im) for im in images]
    # mixed sizes in one call are fine
    mixed = pil[:3] + [Image.fromarray(render_scene(scenes[3], 48))]
    for key in ("world_alignment", "world_quality", "world_composition"):
        scorer = build_scorer(key)
        start = time.perf_counter()
        a = scorer.score(pil, captions)
        ms = (time.perf_counter() - start) / len(pil) * 1e3
        print(f"\n{key}: {ms:.2f} ms/image (32 px, batch {len(pil)})")
        b = scorer.score(pil, captions)
        assert a.dtype == np.float32 and a.shape == (len(pil),) and np.array_equal(a, b, equal_nan=True)
        assert scorer.score(mixed, captions[:4]).shape == (4,)
        assert scorer.score([], []).shape == (0,)
        with pytest.raises(ValueError, match="2 images but 1 captions"):
            scorer.score(pil[:2], captions[:1])
        with pytest.raises(ValueError, match="image 1 has shape"):
            scorer.score([pil[0], np.zeros((8, 8))], captions[:2])


def test_quality_drops_for_each_degradation(world):
    *_, images = world
    q = WorldQuality()
    clean = q.score(list(images))
    degraded = {
        "blur": gaussian_blur(images, 1.0),
        "pixel noise": np.stack([pixel_noise(im, 12, i) for i, im in enumerate(images)]),
        "jpeg": np.stack([jpeg_roundtrip(im, 15) for im in images]),
        "low contrast": low_contrast(images, np.full(len(images), 0.5)),
    }
    for name, x in degraded.items():
        worse = q.score(list(x))
        print(f"\nworld_quality {name}: clean {clean.mean():.2f} -> {worse.mean():.2f}")
        assert np.mean(worse < clean) >= 0.95, name
        assert worse.mean() < clean.mean() - 0.3, name


def _corrupt(caption_kind, scene, rng):
    return caption_scene(scene, rng, noise=caption_kind, free_form_prob=0.0)[0]


def test_alignment_drops_for_wrong_colour_count_and_relation(world):
    _, scenes, images = world
    align = WorldAlignment()
    true = [caption_scene(s, np.random.default_rng(i))[0] for i, s in enumerate(scenes)]
    base = align.score(list(images), true)
    assert np.nanmean(base) > 0.97 and not np.isnan(base).any()
    for kind in ("wrong_colour", "count_off", "swap_relation"):
        idx = [i for i, s in enumerate(scenes) if caption_noise_feasible(s, kind)]
        wrong = [_corrupt(kind, scenes[i], np.random.default_rng(i)) for i in idx]
        scores = align.score([images[i] for i in idx], wrong)
        print(f"\nworld_alignment {kind}: {base[idx].mean():.3f} -> {scores.mean():.3f} (n={len(idx)})")
        assert len(idx) >= 10 and np.mean(scores < base[idx]) >= 0.9, kind


def test_alignment_hand_made_templates():
    a, b = WorldObject("star", "red", 0.25, 0.5, 0.15), WorldObject("ring", "blue", 0.75, 0.5, 0.15)
    image = Image.fromarray(render_scene(Scene(objects=(a, b)), 32))
    captions = {
        "a photo of a red star and a blue ring": 1.0,
        "a photo of a star left of a ring": 1.0,
        "a red star next to a blue ring on a grey background": 1.0,
        "a photo of a blue star and a blue ring": 0.5,
        "a photo of a star right of a ring": 0.5,
        "a photo of two stars": 0.5,  # include star>=2 fails, exclude star>=3 holds
        "a photo of a star and a square": 0.5,
        "a photo of a red star below a blue ring": 0.5,  # colour and position are one clause
    }
    scores = WorldAlignment().score([image] * len(captions), list(captions))
    assert scores.tolist() == pytest.approx(list(captions.values()))


def test_unparseable_caption_is_nan_and_counted(caplog):
    align = WorldAlignment()
    image = render_scene(Scene(objects=(WorldObject("star", "red", 0.5, 0.5, 0.2),)), 32)
    with caplog.at_level(logging.WARNING):
        scores = align.score([image, image, image], ["a photo of a dog", "a red star", None])
    assert np.isnan(scores[0]) and scores[1] == 1.0 and np.isnan(scores[2])
    assert align.unparseable == 2 and "2 of 3 captions could not be parsed" in caplog.text


def test_cut_object_lowers_composition_not_quality(world):
    _, scenes, images = world
    pairs = [(i, cut_by_border(s, np.random.default_rng(i))) for i, s in enumerate(scenes)]
    pairs = [(i, r[0]) for i, r in pairs if r is not None]
    cut = render_batch([s for _, s in pairs], 32)
    kept = images[[i for i, _ in pairs]]
    comp, qual = WorldComposition(), WorldQuality()
    c0, c1 = comp.score(list(kept)), comp.score(list(cut))
    q0, q1 = qual.score(list(kept)), qual.score(list(cut))
    print(f"\ncut by the border: composition {c0.mean():.2f} -> {c1.mean():.2f}; "
          f"quality {q0.mean():.2f} -> {q1.mean():.2f}")
    assert np.mean(c1 < c0) >= 0.95 and c1.mean() < c0.mean() - 0.3
    assert abs(q1.mean() - q0.mean()) < 0.1
    # a sharp image with a cut object: high quality, low composition
    assert np.mean((q1 > np.percentile(q0, 5)) & (c1 < np.percentile(c0, 5))) > 0.8


def test_composition_penalises_touching_and_tiny_objects():
    comp = WorldComposition()
    square, circle = WorldObject("square", "red", 0.25, 0.5, 0.15), WorldObject("circle", "blue", 0.75, 0.5, 0.15)
    apart = Scene(objects=(square, circle))
    touching = Scene(objects=(replace(square, cx=0.4), replace(circle, cx=0.65)))
    tiny = Scene(objects=(WorldObject("square", "red", 0.5, 0.5, 0.04),))
    empty = Scene(objects=())
    s = comp.score([render_scene(x, 32) for x in (apart, touching, tiny, empty)])
    assert s[0] > 0.7 and s[1] < 0.3 and s[2] < 0.3 and s[3] == 0.0
