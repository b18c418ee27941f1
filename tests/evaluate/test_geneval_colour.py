"""GenEval's colour classification: crop and background as evaluate_images.py prepares them, open_clip's
transform (torchvision's rounding of the centre crop), and the template-averaged zero-shot classifier
checked against a direct transformers computation on a tiny CLIP."""

import numpy as np
import pytest
import torch
from geneval_testkit import save_clip
from PIL import Image

from mirokit.evaluate.geneval_colour import (
    OPENAI_MEAN,
    OPENAI_STD,
    TEMPLATES,
    ClipColourClassifier,
    clip_transform,
    object_crop,
)
from mirokit.evaluate.geneval_detector import InstanceDetection
from mirokit.evaluate.geneval_rules import COLORS


def _image():
    """12 x 10 (w x h): left half red, right half blue."""
    a = np.zeros((10, 12, 3), dtype=np.uint8)
    a[:, :6] = (255, 0, 0)
    a[:, 6:] = (0, 0, 255)
    return Image.fromarray(a)


def test_object_crop_masks_onto_grey_then_crops_the_rounded_box():
    image = _image()
    mask = np.zeros((10, 12), dtype=bool)
    mask[3:7, 4:8] = True
    mask[3, 4] = False                     # a hole inside the box shows the background
    crop = np.asarray(object_crop(image, (4, 3, 8, 7, 0.9), mask))
    assert crop.shape == (4, 4, 3)
    assert tuple(crop[0, 0]) == (153, 153, 153)          # "#999"
    assert tuple(crop[1, 1]) == (255, 0, 0) and tuple(crop[1, 3]) == (0, 0, 255)
    # PIL rounds a float box half to even: (3.5, 2.5, 8.5, 7.5) -> (4, 2, 8, 8)
    assert object_crop(image, (3.5, 2.5, 8.5, 7.5), None).size == (4, 6)
    # "original" background keeps the pixels; crop=False keeps the whole composited image
    assert np.array_equal(np.asarray(object_crop(image, (4, 3, 8, 7), mask, background="original")),
                          np.asarray(image)[3:7, 4:8])
    full = np.asarray(object_crop(image, (4, 3, 8, 7), mask, crop=False))
    assert full.shape == (10, 12, 3) and tuple(full[0, 0]) == (153, 153, 153) and tuple(full[5, 5]) == (255, 0, 0)
    with pytest.raises(ValueError, match="does not match the image"):
        object_crop(image, (0, 0, 4, 4), np.ones((4, 4), dtype=bool))


def test_clip_transform_centre_crop_rounds_like_torchvision():
    def columns(w, h):
        a = np.zeros((h, w, 3), dtype=np.uint8)
        a[:, :, 0] = np.arange(w)[None, :] * 10
        a[:, :, 1] = np.arange(h)[:, None] * 10
        return Image.fromarray(a)

    def unnormalise(x):
        return np.rint((x.numpy() * np.array(OPENAI_STD)[:, None, None] + np.array(OPENAI_MEAN)[:, None, None]) * 255)

    x = unnormalise(clip_transform([columns(5, 2)], size=2)[0])   # no resize; left = int(round(1.5)) = 2
    assert x[0].tolist() == [[20, 30], [20, 30]]
    x = unnormalise(clip_transform([columns(2, 7)], size=2)[0])   # top = int(round(2.5)) = 2 (half to even)
    assert x[1].tolist() == [[20, 20], [30, 30]]
    x = clip_transform([columns(4, 2), columns(3, 9)], size=4)    # resized: shorter side -> 4, bicubic
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return ClipColourClassifier(save_clip(tmp_path_factory.mktemp("clip")))


def test_classifier_is_the_template_average_of_geneval(classifier):
    """100 x normalised image embedding @ (per colour: mean of the normalised template embeddings, renormalised)."""
    model, tok = classifier.load().model, classifier.tokenizer
    weights = classifier.text_weights("dog")
    assert weights.shape == (model.config.projection_dim, 10)
    torch.testing.assert_close(weights.norm(dim=0), torch.ones(10))
    crops = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (20 + 3 * k, 30, 3), dtype=np.uint8))
             for k in range(5)]
    texts = [t.format(c=c, object="dog") for c in COLORS for t in TEMPLATES]
    inputs = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    pixel_values=clip_transform(crops, model.config.vision_config.image_size))
    per_colour = out.text_embeds.view(10, 3, -1).mean(1)
    expected = 100 * out.image_embeds @ (per_colour / per_colour.norm(dim=-1, keepdim=True)).T
    torch.testing.assert_close(classifier.logits(crops, "dog"), expected, rtol=1e-4, atol=1e-4)
    # classify = argmax over the crops of the detections (box + mask), in GenEval's colour order
    image = Image.fromarray(np.random.default_rng(9).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:30, 10:40] = True
    dets = [InstanceDetection("dog", (10, 5, 40, 30), 0.9, mask), InstanceDetection("dog", (0, 0, 50, 40), 0.8, None)]
    logits = classifier.logits([object_crop(image, d.box, d.mask) for d in dets], "dog")
    assert classifier.classify(image, dets, "dog") == [COLORS[int(i)] for i in logits.argmax(1)]
    assert classifier.classify(image, [], "dog") == []


def test_classifier_options_are_checked(tmp_path, classifier):
    with pytest.raises(FileNotFoundError, match="GenEval colour CLIP weights not found"):
        ClipColourClassifier(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        ClipColourClassifier(str(tmp_path))
    with pytest.raises(ValueError, match="neither a colour nor 'original'"):
        ClipColourClassifier(classifier.model_path, background="not-a-colour")
