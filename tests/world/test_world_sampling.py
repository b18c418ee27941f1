from collections import Counter

import numpy as np
import pytest

from mirokit.config import ConfigError, from_dict
from mirokit.world.prompts import load_shapes_eval
from mirokit.world.sampling import WorldConfig, extent, sample_scene, scene_for_metadata
from mirokit.world.scenes import (
    box_relations,
    claim_holds,
    scene_from_dict,
    scene_to_dict,
)
from mirokit.world.vocab import COLOURS


def _separated(a, b, gap):
    return (abs(a.cx - b.cx) >= extent(a) + extent(b) + gap - 1e-9
            or abs(a.cy - b.cy) >= extent(a) + extent(b) + gap - 1e-9)


@pytest.mark.parametrize("max_rotation", [0.0, 0.5])
def test_clean_scenes_are_inside_and_non_overlapping(max_rotation):
    cfg = WorldConfig(max_rotation=max_rotation)
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, cfg) for _ in range(600)]
    for scene in scenes:
        assert 1 <= len(scene.objects) <= 4
        for i, a in enumerate(scene.objects):
            e = extent(a)
            assert cfg.edge_margin - 1e-9 <= a.cx - e and a.cx + e <= 1 - cfg.edge_margin + 1e-9
            assert cfg.edge_margin - 1e-9 <= a.cy - e and a.cy + e <= 1 - cfg.edge_margin + 1e-9
            low = cfg.size_range[0] if len(scene.objects) <= 2 else cfg.crowded_size_range[0]
            assert a.size * cfg.image_size >= 4.0 - 1e-6 and a.size >= low - 1e-9
            assert abs(a.rotation) <= max_rotation
            for b in scene.objects[i + 1:]:
                assert _separated(a, b, cfg.min_gap)
    counts = Counter(len(s.objects) for s in scenes)
    for k, p in enumerate(cfg.object_count_probs, start=1):
        assert counts[k] / len(scenes) == pytest.approx(p, abs=0.06)
    assert len({o.shape for s in scenes for o in s.objects}) == 6
    assert len({o.colour for s in scenes for o in s.objects}) == 10


def test_backgrounds_are_grey_and_far_from_every_object_colour():
    cfg = WorldConfig(texture_prob=0.5)
    rng = np.random.default_rng(1)
    scenes = [sample_scene(rng, cfg) for _ in range(300)]
    colours = np.asarray(list(COLOURS.values()), dtype=float)
    for s in scenes:
        bg = np.asarray(s.background, dtype=float)
        assert np.ptp(bg) <= 2 * cfg.background_tint
        assert np.linalg.norm(colours - bg, axis=1).min() > 50
        assert s.texture == 0 or cfg.texture_range[0] <= s.texture <= cfg.texture_range[1]
    assert 0.35 < np.mean([s.texture > 0 for s in scenes]) < 0.65


def test_config_validation_and_overrides():
    with pytest.raises(ValueError, match="blur_rate"):
        WorldConfig(blur_rate=1.5)
    with pytest.raises(ValueError, match="object_count_probs"):
        WorldConfig(object_count_probs=(0.5, 0.2))
    with pytest.raises(ValueError, match="caption noise rates"):
        WorldConfig(wrong_colour_rate=0.5, count_off_rate=0.6)
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(WorldConfig, {"bogus": 1})
    cfg = from_dict(WorldConfig, {"object_count_probs": [0.5, 0.5], "blur_rate": 0.3})
    assert cfg.object_count_probs == (0.5, 0.5) and cfg.blur_rate == 0.3
    assert all(v == 0 for k, v in vars(cfg.clean()).items() if k.endswith("_rate"))


def test_scene_for_metadata_satisfies_every_shapes_eval_prompt():
    rng = np.random.default_rng(0)
    for item in load_shapes_eval():
        scene = scene_for_metadata(item, rng)
        assert claim_holds(scene, item, strict=True), item["prompt"]
        assert len(scene.objects) == sum(req["count"] for req in item["include"])
        for req in item["include"]:
            members = [o for o in scene.objects if o.shape == req["class"]]
            assert len(members) == req["count"]
            if "color" in req:
                assert all(o.colour == req["color"] for o in members)
            if "position" in req:
                relation, target = req["position"]
                (a,), (b,) = members, [o for o in scene.objects if o.shape == item["include"][target]["class"]]
                # the only relation under GenEval's rule, with margin: 0.1*(w_a+w_b) and then some
                assert box_relations(a.box, b.box) == {relation}
                assert box_relations(a.box, b.box, threshold=0.2, cut=0.6) == {relation}
                axis = 0 if relation in ("left of", "right of") else 1
                offsets = (a.cx - b.cx, a.cy - b.cy)
                assert abs(offsets[axis]) >= 0.5 * (2 * a.size + 2 * b.size)  # 5x GenEval's 0.1 * (w_a + w_b)
                assert abs(offsets[axis]) > 4 * abs(offsets[1 - axis])
        for req in item.get("exclude", []):
            assert sum(o.shape == req["class"] for o in scene.objects) < req["count"]


def test_scene_for_metadata_rejects_bad_items_in_one_line():
    rng = np.random.default_rng(0)
    bad = [
        ({"include": [{"class": "hexagon", "count": 1}], "prompt": "p1"}, "unknown class"),
        ({"include": [{"class": "star", "count": 1, "color": "teal"}], "prompt": "p2"}, "unknown color"),
        ({"include": [{"class": "star", "count": 3}], "exclude": [{"class": "star", "count": 3}], "prompt": "p3"},
         "contradict"),
        ({"include": [{"class": "star", "count": 5}], "prompt": "p4"}, "more than 4"),
        ({"include": [], "prompt": "p5"}, "non-empty"),
    ]
    for item, message in bad:
        with pytest.raises(ValueError, match=message) as err:
            scene_for_metadata(item, rng)
        assert item["prompt"] in str(err.value) and "\n" not in str(err.value)


def test_scene_dict_round_trip():
    scene = sample_scene(np.random.default_rng(3), WorldConfig(texture_prob=1.0))
    assert scene_from_dict(scene_to_dict(scene)) == scene


def test_grid_layout_puts_at_most_one_object_per_cell():
    cfg = WorldConfig(layout="grid", grid_cells=2, size_range=(0.15, 0.19), grid_jitter=0.03, seed=3)
    rng = np.random.default_rng(0)
    counts = Counter()
    for _ in range(300):
        scene = sample_scene(rng, cfg)
        cells = [(int(o.cx * 2), int(o.cy * 2)) for o in scene.objects]
        assert len(set(cells)) == len(cells)
        for o, (col, row) in zip(scene.objects, cells):
            assert abs(o.cx - (col + 0.5) / 2) <= 0.03 + 1e-9 and abs(o.cy - (row + 0.5) / 2) <= 0.03 + 1e-9
            assert 0.15 <= o.size <= 0.19 and o.cx - extent(o) > 0 and o.cx + extent(o) < 1
        counts[len(scene.objects)] += 1
    assert set(counts) == {1, 2, 3, 4}  # the count distribution still spans GenEval's counts


def test_grid_layout_scenes_for_metadata_and_validation():
    cfg = WorldConfig(layout="grid", size_range=(0.15, 0.19))
    rng = np.random.default_rng(1)
    for item in load_shapes_eval()[::7]:
        scene = scene_for_metadata(item, rng, cfg)
        assert claim_holds(scene, item, strict=True), item["prompt"]
        assert len({(int(o.cx * 2), int(o.cy * 2)) for o in scene.objects}) == len(scene.objects)
    with pytest.raises(ValueError, match="unknown layout"):
        WorldConfig(layout="hex")
    with pytest.raises(ValueError, match="half a cell"):
        WorldConfig(layout="grid", size_range=(0.2, 0.24))
    with pytest.raises(ValueError, match="grid_cells"):
        WorldConfig(layout="grid", grid_cells=1)
