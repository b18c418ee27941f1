"""The shapes world's rewards, computed from pixels (and the caption) only.

Three scorers, registered in mirokit.rewards.registry, each `score(images, captions) -> (N,) float32`:
- `world_alignment` (VQAScore's analogue): the fraction of the caption's GenEval clauses (objects
  with count / colour / position, and exclusions) that ShapesDetector's detections satisfy under
  GenEval's rules; NaN for a caption that names no shape it can parse.
- `world_quality` (the aesthetic score's analogue): edge sharpness relative to contrast and colour
  purity (how close objects come to their palette colour: contrast loss), minus a pixel noise estimate.
  Blur, pixel noise, JPEG and low contrast all lower it; where objects sit, and which colour they are,
  does not (an optional vividness term, off by default, would pay for colours far from the grey
  background: white and black, whatever the prompt asked for, a reward a generator learns to hack).
- `world_composition` (a preference model's analogue): objects whole (not cut by the border),
  well separated (not touching or overlapping, room between them and to the border) and not tiny.
  A sharp image with a cut object scores high quality but low composition.
All three are deterministic and batched; images of different sizes may be mixed in one call.

A fourth scorer, not used by the demo (its models are conditioned on the three above), measures what none of
them does:
- `world_brightness` (an exposure preference's analogue): the luma of the background (the median colour of
  the image's one-pixel border) in [0, 1]. The world draws each background's grey uniformly from
  WorldConfig.background_range (95-165), so on its data the score spreads over ~0.37-0.65, independently of
  the caption and of the objects; blur and JPEG leave it, a low contrast moves it slightly towards the objects'
  colours. bench/finetune.py fine-tunes the demo's three-reward model to it.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from mirokit.evaluate.geneval_rules import check_clauses, filter_detections
from mirokit.rewards.registry import register_scorer
from mirokit.world.caption_parser import parse_caption
from mirokit.world.detector import Blob, ShapesDetector, background_of, unmix

log = logging.getLogger(__name__)


def _to_array(image, index: int) -> np.ndarray:
    try:
        arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    except Exception as err:  # any unreadable image is reported by position
        raise ValueError(f"image {index} cannot be read: {err}") from None
    if arr.ndim != 3 or arr.shape[-1] != 3 or min(arr.shape[:2]) < 4:
        raise ValueError(f"image {index} has shape {arr.shape}, expected (H, W, 3) with H, W >= 4")
    return arr.astype(np.uint8, copy=False)


def _by_size(images: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """images -> [(indices (M,), stacked (M, H, W, 3) uint8)] grouped by image size."""
    arrays = [_to_array(im, i) for i, im in enumerate(images)]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape[:2], []).append(i)
    return [(np.asarray(idx), np.stack([arrays[i] for i in idx])) for idx in groups.values()]


def _check_lengths(key: str, images: list, captions) -> None:
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"{key}: {len(images)} images but {len(captions)} captions")


@lru_cache(maxsize=65536)
def _parsed(caption: str) -> dict | None:
    return parse_caption(caption)


def index_detections(detections: list) -> dict[str, list]:
    """Detections -> {class: [...], "<colour> <class>": [...]} (colour-qualified keys serve captions
    naming one shape in several colours, see caption_parser)."""
    out: dict[str, list] = {}
    for d in detections:
        out.setdefault(d.cls, []).append(d)
        out.setdefault(f"{d.colour} {d.cls}", []).append(d)
    return out


@register_scorer("world_alignment", "fraction of the caption's GenEval clauses satisfied by detected shapes")
class WorldAlignment:
    """Caption-image alignment of the shapes world (see module docstring)."""

    key = "world_alignment"

    def __init__(self, **detector_options):
        self.detector = ShapesDetector(**detector_options)
        self.unparseable = 0
        """captions seen so far that could not be parsed (scored NaN)"""

    def clause_results(self, images: list, captions: list[str]) -> list[list[tuple[bool, str]] | None]:
        """Per image, GenEval's per-clause verdicts [(satisfied, reason)] (None: unparseable caption)."""
        _check_lengths(self.key, images, captions)
        out: list = [None] * len(images)
        for idx, arr in _by_size(images):
            for i, dets in zip(idx, self.detector.detect_batch(arr)):
                metadata = _parsed(captions[i]) if isinstance(captions[i], str) else None
                if metadata is None:
                    continue
                kept = filter_detections(index_detections(dets), metadata["tag"])
                out[i] = check_clauses(kept, metadata)
        return out

    def score(self, images: list, captions: list[str]) -> np.ndarray:
        """images: N PIL images or (H, W, 3) uint8 arrays; captions: N strings -> (N,) float32 in [0, 1]."""
        results = self.clause_results(images, captions)
        scores = np.asarray([np.nan if r is None else np.mean([ok for ok, _ in r]) for r in results], dtype=np.float32)
        missing = sum(r is None for r in results)
        if missing:
            self.unparseable += missing
            log.warning("world_alignment: %d of %d captions could not be parsed (scored NaN)", missing, len(results))
        return scores


def _median3(x: np.ndarray) -> np.ndarray:
    """3x3 median filter with edge padding: (N, H, W, C) float32 -> same shape."""
    H, W = x.shape[1:3]
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    stack = np.stack([p[:, i:i + H, j:j + W] for i in range(3) for j in range(3)])
    return np.partition(stack, 4, axis=0)[4]


def _top_mean(values: np.ndarray, k: int) -> np.ndarray:
    """(N, P) -> (N,) mean of each row's k largest values."""
    k = max(1, min(k, values.shape[1]))
    return np.partition(values, -k, axis=1)[:, -k:].mean(1)


@register_scorer("world_quality", "pixel quality: sharpness + colour purity + vividness - noise")
class WorldQuality:
    """Image quality of the shapes world (see module docstring); captions are ignored.

    score = sharpness + purity + vividness_weight * vividness - noise / noise_scale, where on a 3x3
    median-filtered copy (so pixel noise does not pass for edges): sharpness = mean of the (H + W) / 8
    largest neighbour differences / mean of the top 1% distances to the background (1 for a hard edge,
    lower when blurred); purity = 90th percentile of object pixels' palette coverage (1 for pure
    colours, the contrast factor after a contrast loss); vividness = that top distance / 255; and
    noise = median distance between the image and its median-filtered copy (0-255 RGB units).
    Clean hard-edged renders score about 2; each degradation lowers a term. vividness_weight is 0 by
    default: vividness is highest for white and black objects on the grey background, so a model
    conditioned on it learns to trade the prompt's colour for it.
    """

    key = "world_quality"
    caption_length = "image"
    """the score reads no caption (mirokit score computes it once per image)"""

    def __init__(self, *, noise_scale: float = 15.0, vividness_weight: float = 0.0):
        if noise_scale <= 0 or vividness_weight < 0:
            raise ValueError("world_quality: noise_scale must be > 0 and vividness_weight >= 0")
        self.noise_scale = noise_scale
        self.vividness_weight = vividness_weight

    def components(self, images: list) -> dict[str, np.ndarray]:
        """images -> {"sharpness", "purity", "vividness", "noise"}: each (N,) float32."""
        names = ("sharpness", "purity", "vividness", "noise")
        out = {k: np.zeros(len(images), dtype=np.float32) for k in names}
        for idx, arr in _by_size(images):
            step = max(1, (1 << 20) // (arr.shape[1] * arr.shape[2]))  # bounds the 3x3-median buffers
            for start in range(0, len(idx), step):
                for k, v in zip(names, self._components(arr[start:start + step])):
                    out[k][idx[start:start + step]] = v
        return out

    def _components(self, arr: np.ndarray) -> tuple[np.ndarray, ...]:
        n, H, W, _ = arr.shape
        x = arr.astype(np.float32)
        m = _median3(x)
        noise = np.median(np.linalg.norm(x - m, axis=-1).reshape(n, -1), axis=1)
        background, _, _ = background_of(arr)
        distance = np.linalg.norm(m - background[:, None, None, :], axis=-1).reshape(n, -1)
        top = _top_mean(distance, max(4, H * W // 100))  # object area grows with the pixel count ...
        gx = np.linalg.norm(np.diff(m, axis=2), axis=-1).reshape(n, -1)
        gy = np.linalg.norm(np.diff(m, axis=1), axis=-1).reshape(n, -1)
        edges = _top_mean(np.concatenate([gx, gy], 1), max(4, (H + W) // 8))  # ... edge length with the side
        sharpness = np.clip(edges / np.maximum(top, 1.0), 0.0, 1.0)
        _, cover, residual = unmix(np.clip(np.rint(m), 0, 255).astype(np.uint8), background)
        cover = np.where(residual <= 60.0, cover, 0.0).reshape(n, -1)
        objects = cover >= 0.2
        count = objects.sum(1)
        # 90th percentile of each image's object coverages: sorted, object pixels come last
        ranked = np.sort(np.where(objects, cover, -1.0), axis=1)
        pick = ranked.shape[1] - count + np.floor(0.9 * np.maximum(count - 1, 0)).astype(np.int64)
        purity = np.take_along_axis(ranked, np.minimum(pick, ranked.shape[1] - 1)[:, None], 1)[:, 0]
        purity = np.where(count >= 4, np.clip(purity, 0.0, 1.0), 0.0)
        return sharpness, purity, np.clip(top / 255.0, 0.0, 1.0), noise

    def score(self, images: list, captions: list[str] | None = None) -> np.ndarray:
        """images: N PIL images or (H, W, 3) uint8 arrays -> (N,) float32 (higher = cleaner)."""
        _check_lengths(self.key, images, captions)
        c = self.components(images)
        q = c["sharpness"] + c["purity"] + self.vividness_weight * c["vividness"] - c["noise"] / self.noise_scale
        return q.astype(np.float32)


def _ramp(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


@register_scorer("world_composition", "objects whole, separated and not tiny (not cut, touching or crowded)")
class WorldComposition:
    """Layout quality of the shapes world (see module docstring); captions are ignored.

    Per object i (a detector component): border_i = 0 if it touches the image border, else
    0.5 + 0.5 * ramp(margin / border_room); separation_i = 0 if it touches another object, else
    0.5 + 0.5 * ramp(gap to the nearest box / gap_room) (1 when alone); size_i = ramp(area / min_area).
    s_i = border_i * separation_i * size_i; the image scores mean(s) * (0.5 + 0.5 * min(s)), 0 when
    no object is found. Components under min_area / 2 are fragments (JPEG halos, noise) and ignored.
    Distances are fractions of the image side, areas of the image.
    """

    key = "world_composition"
    caption_length = "image"
    """the score reads no caption (mirokit score computes it once per image)"""

    def __init__(self, *, border_room: float = 0.08, gap_room: float = 0.12, min_area: float = 0.012,
                 **detector_options):
        if min(border_room, gap_room, min_area) <= 0:
            raise ValueError("world_composition: border_room, gap_room and min_area must be > 0")
        self.border_room, self.gap_room, self.min_area = border_room, gap_room, min_area
        self.detector = ShapesDetector(**detector_options)

    def object_scores(self, blobs: list[Blob], hw: tuple[int, int]) -> list[float]:
        """Components of one image (H, W) -> per-object s_i in [0, 1]."""
        H, W = hw
        labels = np.zeros((H, W), dtype=np.int32)
        boxes = []
        for j, b in enumerate(blobs, start=1):
            h, w = b.mask.shape
            labels[b.top:b.top + h, b.left:b.left + w][b.mask] = j
            rows, cols = np.flatnonzero(b.mask.any(1)), np.flatnonzero(b.mask.any(0))
            boxes.append(((b.left + cols[0]) / W, (b.top + rows[0]) / H,
                          (b.left + cols[-1] + 1) / W, (b.top + rows[-1] + 1) / H))
        touching = set()
        for a, c in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:]),
                     (labels[:-1, :-1], labels[1:, 1:]), (labels[:-1, 1:], labels[1:, :-1])):
            hit = (a > 0) & (c > 0) & (a != c)
            touching |= {(int(u), int(v)) for u, v in zip(a[hit], c[hit])}
            touching |= {(v, u) for u, v in touching}
        scores = []
        for j, (b, box) in enumerate(zip(blobs, boxes), start=1):
            border = 0.0 if b.touches_border else 0.5 + 0.5 * _ramp(min(box[0], box[1], 1 - box[2], 1 - box[3])
                                                                    / self.border_room)
            gaps = [max(other[0] - box[2], box[0] - other[2], other[1] - box[3], box[1] - other[3])
                    for i, other in enumerate(boxes, start=1) if i != j]
            if any((j, i) in touching for i in range(1, len(blobs) + 1)):
                separation = 0.0
            else:
                separation = 1.0 if not gaps else 0.5 + 0.5 * _ramp(min(gaps) / self.gap_room)
            size = _ramp(float(b.alpha.sum()) / (H * W) / self.min_area)
            scores.append(border * separation * size)
        return scores

    def score(self, images: list, captions: list[str] | None = None) -> np.ndarray:
        """images: N PIL images or (H, W, 3) uint8 arrays -> (N,) float32 in [0, 1]."""
        _check_lengths(self.key, images, captions)
        out = np.zeros(len(images), dtype=np.float32)
        for idx, arr in _by_size(images):
            H, W = arr.shape[1:3]
            for i, blobs in zip(idx, self.detector.segment_batch(arr)):
                # fragments under half the minimum size (JPEG colour halos, noise) are not objects
                blobs = [b for b in blobs if b.alpha.sum() >= 0.5 * self.min_area * H * W]
                s = self.object_scores(blobs, (H, W))
                out[i] = float(np.mean(s) * (0.5 + 0.5 * min(s))) if s else 0.0
        return out


_LUMA = np.asarray([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B


@register_scorer("world_brightness", "background brightness: luma of the background, 0 black to 1 white")
class WorldBrightness:
    """Background brightness of the shapes world (see module docstring); captions are ignored.

    score = (0.299 R + 0.587 G + 0.114 B) / 255 of the background colour, the per-channel median of the image's
    one-pixel border (mirokit.world.detector.background_of: objects rarely cover much of it, so neither their
    colours nor where they sit move it). A uniform image of grey g scores g / 255.
    """

    key = "world_brightness"
    caption_length = "image"
    """the score reads no caption (mirokit score computes it once per image)"""

    def score(self, images: list, captions: list[str] | None = None) -> np.ndarray:
        """images: N PIL images or (H, W, 3) uint8 arrays -> (N,) float32 in [0, 1] (higher = brighter)."""
        _check_lengths(self.key, images, captions)
        out = np.zeros(len(images), dtype=np.float32)
        for idx, arr in _by_size(images):
            background, _, _ = background_of(arr)
            # elementwise (not a matrix product, whose rounding depends on the batch): batch-independent
            out[idx] = (background.astype(np.float64) * _LUMA).sum(-1) / 255.0
        return out
