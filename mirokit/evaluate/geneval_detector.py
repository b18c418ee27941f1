"""GenEval's object detector, Mask2Former Swin-S (COCO instances), on transformers' model class.

GenEval runs mmdet 2.x's `mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco` through `inference_detector`. The
test-time steps, as mmdet does them (written from reading mmdet/mmcv, not via transformers' image
processor, whose resizing and padding differ):

1. preprocessing (the config's test pipeline): resize keeping the aspect ratio so that the image fits
   (1333, 800) - scale = min(1333 / long side, 800 / short side), new size int(side * scale + 0.5) - with
   cv2.resize INTER_LINEAR (half-pixel centres, no antialiasing). mmdet 2.x resizes the uint8 image: OpenCV
   then works in 11-bit fixed point, reproduced here bit-exactly (cv2_linear_uint8; equal to opencv-python
   5.0's output on every size tried); mmdet 3.x resizes float32 (torch bilinear, within 0.005 grey levels
   of cv2's); normalise RGB with mean
   (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375); zero-pad bottom/right to a multiple of 32;
2. the network -> class logits (Q, C + 1) and mask logits (Q, H/4, W/4) of the padded input;
3. post-processing (MaskFormerHead.simple_test + MaskFormerFusionHead.instance_postprocess): mask logits
   upsampled bilinearly to the padded size, cropped to the resized image, upsampled to the original size;
   scores = softmax(class logits)[:, :-1]; the top 100 (query, class) pairs; mask = logit > 0; score = class
   probability x mean sigmoid inside the mask; box = the mask's tight box [x0, y0, x1 + 1, y1 + 1]
   (an empty mask gives [0, 0, 0, 0] and score 0).

Label i is GenEval's `object_names.txt` line i (COCO's 80 thing classes in order). Only a checkpoint made by
`mirokit convert geneval-detector` from GenEval's mmdet weights reproduces published GenEval numbers; the
facebook hub release (`facebook/mask2former-swin-small-coco-instance`, trained with detectron2) is accepted
as an alternative and logs a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FACEBOOK_HUB_ID = "facebook/mask2former-swin-small-coco-instance"
CONVERTED_MARKER = "mirokit_geneval.json"
"""written beside config.json by `mirokit convert geneval-detector` (source checkpoint, key layout)"""
NOT_CONVERTED_WARNING = ("GenEval detector {model!r} was not converted from GenEval's mmdet checkpoint "
                         "(no mirokit_geneval.json): only `mirokit convert geneval-detector` output reproduces "
                         "published GenEval numbers")

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """mmdet's test-time preprocessing of the Mask2Former COCO configs."""

    scale: tuple[int, int] = (1333, 800)
    """keep-ratio resize bounds (long edge, short edge), mmdet's img_scale"""
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    """RGB mean subtracted after resizing (0-255 units)"""
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    """RGB std divided after the mean"""
    size_divisor: int = 32
    """zero-pad bottom/right to a multiple of this"""
    uint8_resize: bool = True
    """resize the uint8 image in OpenCV's fixed point as mmdet 2.x (GenEval pins 2.27); False = float (mmdet 3.x)"""


@dataclass(frozen=True)
class InstanceDetection:
    """One detected instance (GenEval's bbox row + its mask)."""

    cls: str
    """GenEval class name"""
    box: tuple[float, float, float, float]
    """(x0, y0, x1, y1) in original-image pixels, x1/y1 exclusive"""
    score: float
    """class probability x mean mask probability"""
    mask: np.ndarray | None = None
    """(H, W) bool at the original size; None for detections at or below the detector's min_score"""


def rescale_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv.rescale_size for a (long, short) bound -> (new_width, new_height)."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def _linear_taps(src: int, dst: int, clamp: bool):
    """OpenCV's INTER_LINEAR taps along one axis -> (index0, index1, weight0, weight1), weights in 1/2048."""
    f = ((np.arange(dst) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    start = np.floor(f).astype(np.int64)
    f = (f - start).astype(np.float32)
    if clamp:  # columns: the weight is moved onto the border pixel; rows keep it and repeat the border row
        f[start < 0], start[start < 0] = 0, 0
        f[start >= src - 1], start[start >= src - 1] = 0, src - 1
    w1 = np.rint(f * 2048).astype(np.int64)
    w0 = np.rint((np.float32(1) - f) * 2048).astype(np.int64)
    return np.clip(start, 0, src - 1), np.clip(start + 1, 0, src - 1), w0, w1


def cv2_linear_uint8(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(array, (width, height), interpolation=INTER_LINEAR) for (H, W, C) uint8, as OpenCV computes
    it: 11-bit fixed-point weights, a horizontal pass in integers, then the vertical pass of its SIMD kernel,
    ((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16) + 2 >> 2 (OpenCV's VResizeLinearVec_32s8u)."""
    x0, x1, a0, a1 = _linear_taps(array.shape[1], width, clamp=True)
    y0, y1, b0, b1 = _linear_taps(array.shape[0], height, clamp=False)
    src = array.astype(np.int64)
    rows = src[:, x0] * a0[None, :, None] + src[:, x1] * a1[None, :, None]
    out = (((rows[y0] >> 4) * b0[:, None, None]) >> 16) + (((rows[y1] >> 4) * b1[:, None, None]) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def mmdet_preprocess(image, cfg: PreprocessConfig = PreprocessConfig()):
    """PIL RGB image or (H, W, 3) uint8 array -> (pixels (3, Hp, Wp) float32, (h, w) resized size).

    Hp, Wp are h, w rounded up to cfg.size_divisor; the padding is 0 after normalisation.
    """
    import torch
    import torch.nn.functional as F

    array = np.array(image, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {array.shape}")
    height, width = array.shape[:2]
    new_w, new_h = rescale_size(width, height, cfg.scale)
    if (new_h, new_w) != (height, width) and cfg.uint8_resize:
        array = cv2_linear_uint8(array, new_w, new_h)
    x = torch.from_numpy(array).permute(2, 0, 1)[None].float()
    if (new_h, new_w) != (height, width) and not cfg.uint8_resize:
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=False)
    x = (x[0] - torch.tensor(cfg.mean).view(3, 1, 1)) / torch.tensor(cfg.std).view(3, 1, 1)
    div = cfg.size_divisor
    pad_h, pad_w = -new_h % div, -new_w % div
    return F.pad(x, (0, pad_w, 0, pad_h)), (new_h, new_w)


def mask_to_box(masks):
    """mmdet's mask2bbox: (K, H, W) bool -> (K, 4) float32 [x0, y0, x1 + 1, y1 + 1]; empty masks give zeros."""
    import torch

    boxes = torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    x_any, y_any = masks.any(dim=1), masks.any(dim=2)
    for i in range(masks.shape[0]):
        xs, ys = torch.where(x_any[i])[0], torch.where(y_any[i])[0]
        if len(xs) and len(ys):
            boxes[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return boxes


def instance_postprocess(class_logits, mask_logits, *, padded_hw: tuple[int, int], resized_hw: tuple[int, int],
                         original_hw: tuple[int, int], max_per_image: int = 100, min_score: float = 0.0,
                         chunk: int = 16) -> dict:
    """mmdet's instance post-processing of one image.

    class_logits: (Q, C + 1) with the last column "no object"; mask_logits: (Q, h, w) for the padded input
    of size padded_hw; resized_hw: the resized image inside the padding; original_hw: the output size.
    Returns {"labels": (K,) int64, "scores": (K,) float32, "boxes": (K, 4) float32, "masks": list of K
    (H, W) bool numpy arrays or None (None where score <= min_score)}, K = min(max_per_image, Q * C), in
    top-k order (not sorted).
    """
    import torch
    import torch.nn.functional as F

    num_queries, num_classes = class_logits.shape[0], class_logits.shape[1] - 1
    probs = F.softmax(class_logits.float(), dim=-1)[:, :-1]
    top, index = probs.flatten().topk(min(max_per_image, num_queries * num_classes), sorted=False)
    # the chosen (query, class) pairs are read on the host once: which masks get upsampled depends on them (on a GPU
    # one copy here instead of a sync per detection below)
    top, index = top.cpu(), index.cpu()
    labels, queries = index % num_classes, index // num_classes
    unique, inverse = torch.unique(queries, return_inverse=True)
    height, width = original_hw
    scores = torch.zeros(len(top))
    boxes = torch.zeros((len(top), 4))
    masks: list = [None] * len(top)
    for start in range(0, len(unique), chunk):
        part = mask_logits[unique[start:start + chunk].to(mask_logits.device)].float()[None]
        part = F.interpolate(part, size=padded_hw, mode="bilinear", align_corners=False)
        part = part[..., :resized_hw[0], :resized_hw[1]]
        part = F.interpolate(part, size=(height, width), mode="bilinear", align_corners=False)[0]
        binary = part > 0
        mask_scores = ((part.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)).cpu()
        binary = binary.cpu()
        part_boxes = mask_to_box(binary)
        for u in range(part.shape[0]):
            for k in torch.where(inverse == start + u)[0].tolist():
                scores[k] = top[k] * mask_scores[u]
                boxes[k] = part_boxes[u]
                if scores[k] > min_score:
                    masks[k] = binary[u].numpy()
    return {"labels": labels, "scores": scores, "boxes": boxes, "masks": masks}


def is_converted(folder: str | Path) -> bool:
    """True if `folder` holds a `mirokit convert geneval-detector` output (its marker file)."""
    return (Path(folder) / CONVERTED_MARKER).is_file()


class Mask2FormerDetector:
    """GenEval's detector on `Mask2FormerForUniversalSegmentation` (folder evaluation's detector interface).

    model: a converted folder (recommended) or a hub id / local copy of the facebook release; device: torch
    device string; dtype: fp32 (GenEval's), bf16 or fp16; min_score: masks are kept only for
    detections scoring above it (GenEval's rules never look at others: pass the lowest rule threshold);
    max_per_image: mmdet's test_cfg.max_per_image.
    """

    def __init__(self, model: str = FACEBOOK_HUB_ID, *, device: str = "cpu", dtype: str = "fp32",
                 min_score: float = 0.0, max_per_image: int = 100,
                 preprocess: PreprocessConfig = PreprocessConfig()):
        from mirokit.dtypes import dtype_name, dtype_named
        from mirokit.sources import locate

        self.model_path, self.is_local = locate(model, "GenEval detector")
        if self.is_local and not (Path(self.model_path) / "config.json").is_file():
            raise FileNotFoundError(f"GenEval detector folder {self.model_path} has no config.json "
                                    "(make one with `mirokit convert geneval-detector SRC.pth OUT/`)")
        self.device, where = device, "GenEval detector dtype"
        self.dtype_name, self.dtype = dtype_name(dtype, where), dtype_named(dtype, where)
        self.min_score, self.max_per_image, self.preprocess = min_score, max_per_image, preprocess
        self.converted = self.is_local and is_converted(self.model_path)
        self.model = None
        self.class_names: list[str] = []

    def load(self) -> Mask2FormerDetector:
        """Load the network now (otherwise on the first detect)."""
        if self.model is not None:
            return self
        from transformers import Mask2FormerForUniversalSegmentation

        from mirokit.evaluate.geneval_data import load_object_names

        if not self.converted:
            log.warning(NOT_CONVERTED_WARNING.format(model=self.model_path))
        try:
            model = Mask2FormerForUniversalSegmentation.from_pretrained(
                self.model_path, dtype=self.dtype, **({"local_files_only": True} if self.is_local else {}))
        except (OSError, ValueError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise FileNotFoundError(f"cannot load GenEval detector {self.model_path!r}: {first}") from None
        num_labels = model.config.num_labels
        if num_labels == 80:
            self.class_names = load_object_names()
        else:
            self.class_names = [model.config.id2label[i] for i in range(num_labels)]
        self.model = model.to(self.device).eval()
        return self

    def detect(self, images: list) -> list[dict[str, list[InstanceDetection]]]:
        """N PIL RGB images -> N {class name: [InstanceDetection]} (top-100 (query, class) pairs per image).

        Images whose padded inputs have the same size run as one batch (as one image each in mmdet:
        no padding masks, so only same-size inputs batch without changing results).
        """
        import torch

        self.load()
        inputs = [mmdet_preprocess(im, self.preprocess) for im in images]
        groups: dict[tuple, list[int]] = {}
        for i, (pixels, _) in enumerate(inputs):
            groups.setdefault(tuple(pixels.shape), []).append(i)
        results: list = [None] * len(images)
        with torch.no_grad():
            for indices in groups.values():
                batch = torch.stack([inputs[i][0] for i in indices]).to(self.device, self.dtype)
                out = self.model(pixel_values=batch)
                for row, i in enumerate(indices):
                    width, height = images[i].size
                    res = instance_postprocess(out.class_queries_logits[row], out.masks_queries_logits[row],
                                               padded_hw=tuple(batch.shape[-2:]), resized_hw=inputs[i][1],
                                               original_hw=(height, width), max_per_image=self.max_per_image,
                                               min_score=self.min_score)
                    results[i] = self._group(res)
        return results

    def _group(self, res: dict) -> dict[str, list[InstanceDetection]]:
        grouped: dict[str, list[InstanceDetection]] = {}
        for label, score, box, mask in zip(res["labels"].tolist(), res["scores"].tolist(),
                                           res["boxes"].tolist(), res["masks"]):
            name = self.class_names[label]
            grouped.setdefault(name, []).append(InstanceDetection(name, tuple(box), float(score), mask))
        return grouped

    def describe(self) -> dict:
        """What runs: model, whether it is a converted GenEval checkpoint, its source, dtype, preprocessing."""
        info = {"model": self.model_path, "converted_from_mmdet": self.converted, "dtype": self.dtype_name,
                "max_per_image": self.max_per_image, "preprocess": asdict(self.preprocess)}
        if self.converted:
            marker = json.loads((Path(self.model_path) / CONVERTED_MARKER).read_text())
            info["source"] = {k: marker.get(k) for k in ("source", "sha256", "layout")}
        return info
