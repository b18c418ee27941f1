"""GenEval's detector and colour classifier on a non-CPU device without a GPU (tests/devices.py), with the suite's
tiny Mask2Former and CLIP: the networks run there and the post-processing reads back a few tensors per image."""

import numpy as np
import pytest
from devices import on_device, stopped_in
from geneval_testkit import save_clip, tiny_mask2former
from PIL import Image

from mirokit.evaluate.geneval_colour import ClipColourClassifier
from mirokit.evaluate.geneval_detector import InstanceDetection, Mask2FormerDetector


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("geneval")
    tiny_mask2former({15: 10.0, 16: 10.0}).save_pretrained(root / "m2f")
    return {"detector": root / "m2f", "clip": save_clip(root / "clip")}


@pytest.mark.parametrize("device", ["meta", "cuda"])
def test_the_detector_runs_on_the_device(folders, device):
    """Per image: the top-100 (query, class) pairs come back once (scores, indices), then the masks of the chosen
    queries (their scores and pixels): no copy per detection."""
    images = [Image.new("RGB", (48, 40), (250, 0, 0)), Image.new("RGB", (30, 64), (0, 0, 250))]
    with on_device(device) as dev:
        detector = Mask2FormerDetector(str(folders["detector"]), min_score=0.3, device=device)
        results = detector.detect(images)
        assert next(detector.model.parameters()).device.type == device
    assert [sum(len(v) for v in r.values()) for r in results] == [100, 100]
    # with no values every pair is query 0: one mask per image (its score, then its pixels at the image's size)
    assert dev.readbacks == [(100,), (100,), (1,), (1, 40, 48), (100,), (100,), (1,), (1, 64, 30)]


@pytest.mark.parametrize("device", ["meta", "cuda"])
def test_the_colour_classifier_runs_on_the_device(folders, device):
    """fake CUDA: the whole classification (GenEval's fp16 autocast is asked for on CUDA; torch turns it off without
    a GPU); meta: the CLIP text tower stops where transformers reads its padding mask."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:30, 10:40] = True
    detections = [InstanceDetection("dog", (10, 5, 40, 30), 0.9, mask),
                  InstanceDetection("dog", (0, 0, 50, 40), 0.8, None)]
    with on_device(device) as dev:
        classifier = ClipColourClassifier(folders["clip"], device=device)
        if device == "meta":
            with pytest.raises(RuntimeError, match="cannot be called on meta tensors") as caught:
                classifier.classify(image, detections, "dog")
        else:  # GenEval's fp16 autocast is asked for; torch turns it off without CUDA
            with pytest.warns(UserWarning, match="CUDA is not available .* Disabling autocast"):
                assert classifier.amp and len(classifier.classify(image, detections, "dog")) == 2
    if device == "meta":
        assert stopped_in(caught.value, "transformers/masking_utils.py")
    else:
        assert dev.readbacks == [(2, 10)]
