import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mirokit.world.detector import Detection, DetectorConfig, ShapesDetector
from mirokit.world.noise import gaussian_blur, low_contrast, pixel_noise
from mirokit.world.render import render_batch, render_scene
from mirokit.world.sampling import WorldConfig, sample_scene
from mirokit.world.scenes import Scene, WorldObject
from mirokit.world.vocab import SHAPES


def _scene_correct(scene, detections, threshold=0.3):
    """GenEval-style: same multiset of (class, colour) and every object's centre found within 0.1."""
    kept = [d for d in detections if d.score > threshold]
    if sorted((o.shape, o.colour) for o in scene.objects) != sorted((d.cls, d.colour) for d in kept):
        return False
    centre = lambda d: ((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2)
    return all(any(d.cls == o.shape and d.colour == o.colour and abs(centre(d)[0] - o.cx) < 0.1
                   and abs(centre(d)[1] - o.cy) < 0.1 for d in kept) for o in scene.objects)


def _accuracy(scenes, images, label):
    detector = ShapesDetector()
    start = time.perf_counter()
    results = detector.detect_batch(images)
    speed = len(images) / (time.perf_counter() - start)
    found, total = Counter(), Counter()
    for scene, dets in zip(scenes, results):
        kept = [d for d in dets if d.score > 0.3]
        for o in scene.objects:
            total[o.shape] += 1
            found[o.shape] += any(d.cls == o.shape and d.colour == o.colour for d in kept)
    accuracy = float(np.mean([_scene_correct(s, d) for s, d in zip(scenes, results)]))
    per_class = {c: round(found[c] / total[c], 4) for c in SHAPES if total[c]}
    print(f"\n{label}: scene accuracy {accuracy:.4f} on {len(scenes)} scenes; per class {per_class}; "
          f"{speed:.0f} images/s (one process)")
    return accuracy, results


def test_clean_world_scenes_are_detected():
    rng = np.random.default_rng(123)
    cfg = WorldConfig()
    scenes = [sample_scene(rng, cfg) for _ in range(600)]
    accuracy, results = _accuracy(scenes, render_batch(scenes, cfg.image_size), "clean 32 px (hard edges)")
    assert accuracy >= 0.98
    scores = np.asarray([d.score for dets in results for d in dets])
    assert np.mean(scores > 0.9) > 0.98  # clean objects pass GenEval's counting threshold


def test_clean_antialiased_64px_scenes_are_detected():
    rng = np.random.default_rng(7)
    cfg = WorldConfig(image_size=64)
    scenes = [sample_scene(rng, cfg) for _ in range(150)]
    accuracy, _ = _accuracy(scenes, render_batch(scenes, 64, antialias=True), "clean 64 px (antialiased)")
    assert accuracy >= 0.98


def test_single_object_box_colour_and_types():
    obj = WorldObject("ring", "blue", 0.4, 0.6, 0.2)
    image = render_scene(Scene(objects=(obj,), background=(120, 125, 118)), 32)
    dets = ShapesDetector().detect(Image.fromarray(image))  # PIL input
    assert len(dets) == 1
    d = dets[0]
    assert isinstance(d, Detection) and d.cls == "ring" and d.colour == "blue" and 0.9 < d.score <= 1.0
    assert np.allclose(d.box, obj.box, atol=1 / 32 + 1e-6)
    assert set(d.to_json()) == {"class", "colour", "score", "box", "area"}


def test_empty_image_and_bad_input():
    detector = ShapesDetector()
    assert detector.detect(np.full((32, 32, 3), 128, np.uint8)) == []
    assert detector.detect_batch([]) == []
    with pytest.raises(ValueError, match="not \\(H, W, 3\\)"):
        detector.detect(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="share a size"):
        detector.detect_batch([np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="unknown detector option"):
        ShapesDetector(min_alpah=0.5)
    assert ShapesDetector(DetectorConfig(min_area=6)).config.min_area == 6


def test_degradations_lower_confidence():
    rng = np.random.default_rng(11)
    scenes = [sample_scene(rng, WorldConfig()) for _ in range(60)]
    clean = render_batch(scenes, 32)
    detector = ShapesDetector()

    def mean_best(images):  # mean over objects of the score of a correct detection (0 if missed)
        out = []
        for scene, dets in zip(scenes, detector.detect_batch(images)):
            for o in scene.objects:
                out.append(max([d.score for d in dets if d.cls == o.shape and d.colour == o.colour], default=0.0))
        return float(np.mean(out))

    base = mean_best(clean)
    degraded = {
        "blur": gaussian_blur(clean, 1.4),
        "noise": np.stack([pixel_noise(im, 22, i) for i, im in enumerate(clean)]),
        "low contrast": low_contrast(clean, np.full(len(clean), 0.3)),
    }
    for name, images in degraded.items():
        assert mean_best(images) < base - 0.1, name
