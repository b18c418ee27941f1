from collections import Counter

import numpy as np
import pytest

from mirokit.world.captions import CAPTION_NOISE, OPPOSITE
from mirokit.world.dataset import make_item
from mirokit.world.noise import NOISE_KINDS, degrade_images, draw_noise, noise_rates
from mirokit.world.render import render_batch
from mirokit.world.sampling import WorldConfig, sample_scene
from mirokit.world.scenes import box_relations, claim_holds

N = 2000
CFG = WorldConfig(wrong_colour_rate=0.15, count_off_rate=0.15, swap_relation_rate=0.15, missing_object_rate=0.15,
                  cut_border_rate=0.2, blur_rate=0.25, pixel_noise_rate=0.25, jpeg_rate=0.25, low_contrast_rate=0.25,
                  seed=5)


@pytest.fixture(scope="module")
def items():
    return [make_item(CFG, i) for i in range(N)]


def test_each_kind_is_applied_at_its_rate(items):
    counts = Counter(kind for it in items for kind in it.noise)
    for kind, rate in noise_rates(CFG).items():
        assert counts[kind] / N == pytest.approx(rate, abs=0.035), kind
    assert all(sum(k in it.noise for k in CAPTION_NOISE) <= 1 for it in items)
    assert all(it.scene.meta["noise"] is it.noise for it in items)
    assert sum(not it.noise for it in items) > 0.07 * N  # 0.4 * 0.8 * 0.75**4 = 0.10 expected
    clean = [make_item(CFG.clean(), i) for i in range(300)]
    assert not any(it.noise for it in clean)


def _members(scene, cls):
    return [o for o in scene.objects if o.shape == cls]


def test_caption_noise_falsifies_what_it_should(items):
    for it in items:
        scene, claim, noise = it.scene, it.claim, it.noise
        mentioned = sum(req["count"] for req in claim["include"])
        if "wrong_colour" in noise:
            claimed = noise["wrong_colour"]["claimed"]
            assert claimed not in {o.colour for o in scene.objects}
            assert any(req.get("color") == claimed for req in claim["include"]) and claimed in it.caption
            assert not claim_holds(scene, claim)
        elif "count_off" in noise:
            record = noise["count_off"]
            assert abs(record["claimed"] - record["true"]) == 1 and 2 <= record["claimed"] <= 4
            assert record["true"] == len(_members(scene, record["class"]))
            assert {"class": record["class"], "count": record["claimed"]}.items() <= next(
                r for r in claim["include"] if r["class"] == record["class"]).items()
            assert not claim_holds(scene, claim)
        elif "swap_relation" in noise:
            a_req, b_req = claim["include"][1], claim["include"][0]
            relation = a_req["position"][0]
            assert relation == noise["swap_relation"]["claimed"] == OPPOSITE[noise["swap_relation"]["true"]]
            (a,), (b,) = _members(scene, a_req["class"]), _members(scene, b_req["class"])
            assert OPPOSITE[relation] in box_relations(a.box, b.box) and relation not in box_relations(a.box, b.box)
            assert not claim_holds(scene, claim)
        elif "missing_object" in noise:
            omitted = noise["missing_object"]["omitted"]
            assert mentioned < len(scene.objects) and _members(scene, omitted)
            assert omitted not in {req["class"] for req in claim["include"]}
            assert claim_holds(scene, claim)  # incomplete, not false, under GenEval's rule
        else:
            assert mentioned == len(scene.objects)
            assert claim_holds(scene, claim, strict="cut_border" not in noise), it.caption


def test_cut_objects_extend_past_the_border(items):
    for it in items:
        boxes = [o.box for o in it.scene.objects]
        outside = [max(-b[0], -b[1], b[2] - 1, b[3] - 1) for b in boxes]
        if "cut_border" in it.noise:
            record = it.noise["cut_border"]
            x0, y0, x1, y1 = boxes[record["object"]]
            past = {"left": -x0, "right": x1 - 1, "top": -y0, "bottom": y1 - 1}[record["side"]]
            assert past == pytest.approx(record["outside"] * (x1 - x0), abs=1e-3) and past > 0.25 * (x1 - x0)
            assert sum(o > 0 for o in outside) == 1
        else:
            assert max(outside) < 0


def _high_frequency(images):
    x = images.astype(float)
    return (np.diff(x, axis=1) ** 2).mean() + (np.diff(x, axis=2) ** 2).mean()


def test_image_noise_changes_what_it_should():
    rng = np.random.default_rng(0)
    clean = render_batch([sample_scene(rng, WorldConfig()) for _ in range(64)], 32)
    none = [{}] * 64

    def apply(kind, **params):
        return degrade_images(clean, [{kind: params}] * 64)

    np.testing.assert_array_equal(degrade_images(clean, none), clean)
    assert _high_frequency(apply("blur", sigma=1.0)) < 0.5 * _high_frequency(clean)
    noisy = apply("pixel_noise", std=15.0, seed=3)
    assert _high_frequency(noisy) > 1.5 * _high_frequency(clean)
    np.testing.assert_array_equal(noisy, apply("pixel_noise", std=15.0, seed=3))
    assert (noisy.astype(float) - clean).std() == pytest.approx(15, rel=0.15)
    jpeg = apply("jpeg", quality=10)
    assert (jpeg != clean).mean() > 0.3 and abs(jpeg.astype(float).mean() - clean.mean()) < 3
    flat = apply("low_contrast", factor=0.4)
    ratio = flat.reshape(64, -1, 3).astype(float).std(axis=1) / clean.reshape(64, -1, 3).std(axis=1)
    assert np.median(ratio) == pytest.approx(0.4, abs=0.01) and ratio.max() < 0.5  # up to rounding
    with pytest.raises(ValueError, match="noise records"):
        degrade_images(clean, none[:3])


def test_draw_noise_is_deterministic_and_complete():
    a = draw_noise(np.random.default_rng(1), CFG)
    assert a == draw_noise(np.random.default_rng(1), CFG)
    assert set(NOISE_KINDS) == {k[: -len("_rate")] for k in vars(CFG) if k.endswith("_rate")}
