"""The detector side of GenEval: mmdet's test-time preprocessing and instance post-processing on inputs with
known answers, and Mask2FormerDetector on a tiny transformers model whose outputs are set by hand."""

import logging

import numpy as np
import pytest
import torch
from geneval_testkit import tiny_mask2former
from PIL import Image

from mirokit.evaluate.geneval_detector import (
    NOT_CONVERTED_WARNING,
    Mask2FormerDetector,
    PreprocessConfig,
    cv2_linear_uint8,
    instance_postprocess,
    mask_to_box,
    mmdet_preprocess,
    rescale_size,
)

MEAN, STD = np.array(PreprocessConfig().mean), np.array(PreprocessConfig().std)


def test_rescale_size_is_mmcv_keep_ratio_to_1333_by_800():
    assert rescale_size(512, 512, (1333, 800)) == (800, 800)
    assert rescale_size(1024, 1024, (1333, 800)) == (800, 800)
    assert rescale_size(640, 480, (1333, 800)) == (1067, 800)    # short edge bound: 800 / 480
    assert rescale_size(2000, 100, (1333, 800)) == (1333, 67)    # long edge bound: 1333 / 2000
    assert rescale_size(100, 2000, (1333, 800)) == (67, 1333)


def test_preprocess_resizes_bilinear_half_pixel_rounds_normalises_and_pads():
    row = np.array([[0, 101], [0, 101]], dtype=np.uint8)
    image = np.repeat(row[:, :, None], 3, axis=2)
    for uint8, expected in ((True, [0, 25, 76, 101]), (False, [0, 25.25, 75.75, 101])):
        cfg = PreprocessConfig(scale=(4, 4), size_divisor=8, uint8_resize=uint8)
        pixels, resized = mmdet_preprocess(image, cfg)
        assert resized == (4, 4) and pixels.shape == (3, 8, 8)
        values = pixels[:, :4, :4].numpy() * STD[:, None, None] + MEAN[:, None, None]
        np.testing.assert_allclose(values, np.broadcast_to(np.array(expected, dtype=float), (3, 4, 4)), atol=1e-4)
        assert torch.count_nonzero(pixels[:, 4:, :]) == 0 and torch.count_nonzero(pixels[:, :, 4:]) == 0
    # OpenCV's fixed point, not the rounded exact value: [0, 5] -> 5 columns gives [0, 1, 3, 4, 5]
    # (exact [0, 0.5, 2.5, 4.5, 5]; cv2.resize of opencv-python 5.0 gives this row)
    image = np.repeat(np.array([[0, 5], [0, 5]], dtype=np.uint8)[:, :, None], 3, axis=2)
    assert cv2_linear_uint8(image, 5, 2)[0, :, 0].tolist() == [0, 1, 3, 4, 5]
    assert cv2_linear_uint8(image, 2, 2).tolist() == image.tolist()
    pixels, resized = mmdet_preprocess(Image.new("RGB", (640, 480), (128, 64, 32)))
    assert resized == (800, 1067) and pixels.shape == (3, 800, 1088)
    np.testing.assert_allclose(pixels[:, 10, 10].numpy(), (np.array([128, 64, 32]) - MEAN) / STD, rtol=1e-5)
    with pytest.raises(ValueError, match="expected an RGB image"):
        mmdet_preprocess(np.zeros((4, 4), dtype=np.uint8))


def test_mask_to_box_is_mmdet_mask2bbox():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:5] = True
    masks[1, 5, 0] = masks[1, 0, 7] = True
    boxes = mask_to_box(masks)
    assert boxes.tolist() == [[2, 1, 5, 4], [0, 0, 8, 6], [0, 0, 0, 0]]


def test_instance_postprocess_known_answer():
    """3 queries, 2 classes; padded 8x8 input whose resized image is the top 4 rows; original 2 x 4."""
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.45, 0.05, 0.5]])
    masks = torch.full((3, 8, 8), -5.0)
    masks[0, 0:2, 4:8] = 3.0       # -> original row 0, columns 2-3
    masks[1, 0:4, 0:8] = 1.0       # -> the whole original image
    masks[2, 4:8, :] = 10.0        # only in the padding: cropped away -> empty mask
    res = instance_postprocess(probs.log(), masks, padded_hw=(8, 8), resized_hw=(4, 8), original_hw=(2, 4),
                               max_per_image=4, min_score=0.1)
    got = {(int(label), round(float(score), 5)): box for label, score, box in
           zip(res["labels"], res["scores"], res["boxes"].tolist())}
    sig3, sig1 = float(torch.sigmoid(torch.tensor(3.0))), float(torch.sigmoid(torch.tensor(1.0)))
    expected = {(0, round(0.7 * sig3, 5)): [2, 0, 4, 1], (1, round(0.6 * sig1, 5)): [0, 0, 4, 2],
                (1, round(0.2 * sig3, 5)): [2, 0, 4, 1], (0, 0.0): [0, 0, 0, 0]}
    assert got == expected
    # masks at the original size, kept only above min_score
    kept = {int(lab): m for lab, s, m in zip(res["labels"], res["scores"], res["masks"]) if m is not None}
    assert len([m for m in res["masks"] if m is not None]) == 3
    assert kept[0].shape == (2, 4) and kept[0].tolist() == [[False, False, True, True], [False, False, False, False]]


def test_detector_on_a_tiny_model_with_known_outputs(tmp_path, caplog):
    folder = tmp_path / "m2f"
    tiny_mask2former({15: 10.0, 16: 10.0}).save_pretrained(folder)   # every query: cat or dog, whole image
    detector = Mask2FormerDetector(str(folder), min_score=0.3)
    with caplog.at_level(logging.WARNING):
        detector.load()
    assert NOT_CONVERTED_WARNING.format(model=str(folder)) in caplog.text and not detector.converted
    images = [Image.new("RGB", (48, 40), (250, 0, 0)), Image.new("RGB", (30, 64), (0, 0, 250)),
              Image.new("RGB", (48, 40), (0, 250, 0))]
    results = detector.detect(images)
    p = float(torch.softmax(torch.tensor([10.0, 10.0] + [0.0] * 79), 0)[0]) * float(torch.sigmoid(torch.tensor(32.0)))
    for image, dets in zip(images, results):
        assert sum(len(v) for v in dets.values()) == 100
        for name in ("cat", "dog"):
            strong = [d for d in dets[name] if d.score > 0.3]
            assert len(strong) == 6 and all(abs(d.score - p) < 1e-5 for d in strong)
            assert all(d.box == (0.0, 0.0, float(image.width), float(image.height)) for d in strong)
            assert all(d.mask.shape == (image.height, image.width) and d.mask.all() for d in strong)
        weak = [d for v in dets.values() for d in v if d.score <= 0.3]
        assert len(weak) == 88 and all(d.mask is None for d in weak)
    # same-size images batch together without changing anything
    single = detector.detect(images[2:])[0]
    assert {k: [d.score for d in v] for k, v in single.items()} == \
        {k: [d.score for d in v] for k, v in results[2].items()}


def test_detector_paths_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="GenEval detector weights not found"):
        Mask2FormerDetector(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        Mask2FormerDetector(str(tmp_path))
