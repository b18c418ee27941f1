"""A pixel-only object detector for the shapes world (the world's analogue of GenEval's Mask2Former).

Pipeline per image (H, W, 3) uint8, knowing nothing of the scene that made it:
1. background B = per-channel median of the one-pixel border (plus its spread and pixel noise);
2. every pixel is unmixed against each palette colour C_k of vocab.COLOURS as
   p = B + a_k (C_k - B) + residual; its colour is the k with the smallest residual and its
   coverage a_k (1 = pure colour, 0.5 = half-covered edge pixel);
3. per colour standing out of the background, pixels with coverage >= half the colour's peak
   coverage (so a contrast loss does not erase objects) form 8-connected components; components
   under `min_area` pixels are noise;
4. each component's soft coverage patch gives rotation-invariant shape features (compactness =
   area / second radial moment, 2/3/4/5-fold angular harmonics, coverage at the centroid,
   solidity), scored against per-class prototypes (corrected for pixelisation at small areas) by
   a Gaussian classifier; the score is the winning class's posterior times its fit times a
   visibility factor (contrast against the pixel noise, and size).

Degraded images (blur, noise, JPEG, low contrast) move the features away from the prototypes, so
detections get lower scores or disappear; that is what makes alignment rewards fall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from mirokit.world.vocab import COLOURS, SHAPES

_PALETTE = np.asarray(list(COLOURS.values()), dtype=np.float32)  # (K, 3)
_COLOUR_NAMES = tuple(COLOURS)
_EIGHT = np.ones((3, 3), dtype=bool)
_CHUNK_PIXELS = 1 << 21  # pixels unmixed at once (~250 MB of float32 temporaries at most)


@dataclass(frozen=True)
class Detection:
    """One detected object (GenEval-style)."""

    cls: str
    """shape class from vocab.SHAPES"""
    box: tuple[float, float, float, float]
    """(x0, y0, x1, y1) in [0, 1] image fractions, y down"""
    colour: str
    """colour word from vocab.COLOURS"""
    score: float
    """confidence in [0, 1]"""
    area: float = 0.0
    """soft area as a fraction of the image"""

    def to_json(self) -> dict:
        """A JSON-friendly dict (box rounded to 4 decimals)."""
        return {"class": self.cls, "colour": self.colour, "score": round(float(self.score), 4),
                "box": [round(float(v), 4) for v in self.box], "area": round(float(self.area), 5)}


@dataclass
class Blob:
    """A connected component of one colour (before shape classification)."""

    colour: str
    """palette colour word"""
    mask: np.ndarray
    """(h, w) bool, the component's pixels inside the patch"""
    alpha: np.ndarray
    """(h, w) float32 soft coverage in [0, 1] of this colour inside the patch (other blobs zeroed)"""
    top: int
    """row of the patch's first row in the image"""
    left: int
    """column of the patch's first column in the image"""
    touches_border: bool
    """whether the mask reaches the image border (the object may be cut)"""
    contrast: float
    """distance of the colour at its peak coverage to the background, 0-255 RGB units"""
    noise: float
    """the image's pixel noise (robust size of neighbour differences on the border), 0-255 RGB units"""


def _as_array(image) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"image of shape {arr.shape} is not (H, W, 3)")
    return arr


def background_of(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background statistics from each image's one-pixel border (objects rarely cover much of it).

    images: (N, H, W, 3) -> background (N, 3) float32, the per-channel median; spread (N,), the
    robust (1.4826 x median) distance of border pixels to it (texture and noise); and grain (N,),
    the robust size of differences between neighbouring border pixels / sqrt(2) (pixel noise only,
    smooth textures do not count).
    """
    ring = np.concatenate([images[:, 0, :-1], images[:, :-1, -1], images[:, -1, :0:-1], images[:, :0:-1, 0]], axis=1)
    ring = ring.astype(np.float32)  # (N, P, 3), clockwise so neighbours are adjacent
    background = np.median(ring, axis=1)
    spread = 1.4826 * np.median(np.linalg.norm(ring - background[:, None], axis=-1), axis=1)
    steps = np.linalg.norm(np.diff(ring, axis=1), axis=-1)
    grain = 1.4826 * np.median(steps, axis=1) / np.sqrt(2.0)
    return background, spread.astype(np.float32), grain.astype(np.float32)


def unmix(images: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel palette unmixing p = B + a (C_k - B) + residual.

    images: (N, H, W, 3) uint8; background: (N, 3). Returns the best colour index (N, H, W) int64,
    its coverage a in [0, 1.5] (N, H, W) float32 and the residual distance (N, H, W) float32.
    """
    d = images.astype(np.float32) - background[:, None, None, :]  # (N, H, W, 3)
    v = _PALETTE[None] - background[:, None, :]  # (N, K, 3)
    vv = np.maximum((v * v).sum(-1), 1.0)  # (N, K)
    dots = np.einsum("nhwc,nkc->nhwk", d, v)
    a = dots / vv[:, None, None, :]
    dd = (d * d).sum(-1, keepdims=True)
    # residual^2 = |d|^2 - a^2 |v|^2 when a >= 0; a colour pointing away (a < 0) leaves all of |d|.
    res2 = np.where(a > 0, dd - dots * a, dd)
    k = res2.argmin(-1)
    cover = np.clip(np.take_along_axis(a, k[..., None], -1)[..., 0], 0.0, 1.5)
    res = np.sqrt(np.maximum(np.take_along_axis(res2, k[..., None], -1)[..., 0], 0.0))
    return k, cover.astype(np.float32), res.astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Options of ShapesDetector (coverages are fractions of the pure palette colour)."""

    min_coverage: float = 0.2
    """pixels below this coverage never belong to an object"""
    relative_threshold: float = 0.5
    """object pixels: coverage >= this times the colour's peak coverage in the image (1 when clean)"""
    min_contrast: float = 25.0
    """a colour whose peak distance to the background (0-255 RGB) is below this is absent"""
    snr: float = 4.0
    """... or below this many times the background's variation (texture, noise)"""
    max_residual: float = 60.0
    """pixels farther than this (0-255 RGB) from every background-to-colour line are unassigned"""
    min_area: float = 4.0
    """components with fewer mask pixels than this are noise"""
    soft_floor: float = 0.15
    """relative coverage below this counts as background in the soft shape features"""
    full_contrast: float = 60.0
    """object-background distance (0-255 RGB) from which the visibility factor is 1"""
    full_snr: float = 8.0
    """... and at least this many times the image's pixel noise"""
    full_area: float = 16.0
    """soft area in pixels from which the visibility factor is 1 (it falls linearly below)"""
    min_score: float = 0.01
    """detections scoring below this are dropped"""


# Shape prototypes, fitted on clean renders (mirokit.world.render at 32-64 px, hard and antialiased
# edges, upright and rotated): features (compactness = area / mean r^2, 2/3/4/5-fold angular
# harmonics of the r^2-weighted coverage, coverage at the centroid, solidity) ~ mean + bias / A,
# where A is the soft area in pixels (pixelisation adds spurious harmonics, rounds corners, ...).
_FEATURES = ("compactness", "h2", "h3", "h4", "h5", "centre", "solidity")
_PROTOTYPES = {  # class: (mean, bias)
    "circle": ((6.29, 0.009, 0.008, 0.008, 0.008, 1.0, 0.95), (-2.8, 0.84, 0.97, 0.98, 0.98, 0.0, -1.9)),
    "square": ((6.01, 0.01, 0.0, 0.287, 0.001, 1.0, 0.979), (-1.5, 1.19, 0.74, 0.12, 0.63, 0.0, -1.8)),
    "triangle": ((5.16, 0.142, 0.544, 0.008, 0.137, 1.0, 0.911), (-2.4, 0.16, 0.0, 0.54, 0.22, 0.0, -2.7)),
    "cross": ((5.2, 0.018, 0.021, 0.489, 0.007, 1.0, 0.71), (-3.9, 1.34, 1.65, -0.34, 0.95, 0.0, 0.13)),
    "ring": ((3.78, 0.009, 0.009, 0.008, 0.009, 0.0, 0.714), (-2.7, 0.76, 0.8, 0.93, 0.8, 0.0, -1.3)),
    "star": ((4.64, 0.031, 0.038, 0.016, 0.673, 1.0, 0.505), (-3.1, 1.47, 1.68, 2.12, -0.31, 0.0, 2.0)),
}
# The spreads are wider than the clean scatter so mild degradations keep their class; feature noise
# shrinks with the area: spread = sqrt(base^2 + pixel^2 / A).
_SPREAD_BASE = np.asarray((0.15, 0.04, 0.04, 0.04, 0.04, 0.2, 0.04), dtype=np.float64)
_SPREAD_PIXEL = np.asarray((2.0, 0.6, 0.6, 0.6, 0.6, 0.5, 0.3), dtype=np.float64)
_FIT_FREE, _FIT_SCALE = 16.0, 12.0  # squared distance within which the fit is 1, and its decay
_CLASSES = tuple(_PROTOTYPES)
_MEANS = np.asarray([_PROTOTYPES[c][0] for c in _CLASSES], dtype=np.float64)  # (C, F)
_BIAS = np.asarray([_PROTOTYPES[c][1] for c in _CLASSES], dtype=np.float64)  # (C, F)
assert set(_CLASSES) == set(SHAPES)


def shape_features(alpha: np.ndarray) -> np.ndarray:
    """alpha: (h, w) soft coverage of one object -> (7,) features (see _FEATURES); NaNs if empty."""
    m0 = float(alpha.sum())
    if m0 <= 0:
        return np.full(len(_FEATURES), np.nan)
    h, w = alpha.shape
    ys = np.arange(h, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5
    cx, cy = float((alpha * xs).sum()) / m0, float((alpha * ys).sum()) / m0
    dx, dy = xs - cx, ys - cy
    r2 = dx * dx + dy * dy
    wr = alpha * r2
    s = float(wr.sum())
    if s <= 0:
        return np.full(len(_FEATURES), np.nan)
    z = (dx + 1j * dy) / np.sqrt(np.maximum(r2, 1e-12))
    z2 = z * z
    z3, z4 = z2 * z, z2 * z2
    harmonics = [abs(complex((wr * zn).sum())) / s for zn in (z2, z3, z4, z4 * z)]
    # coverage at the centroid, bilinear (rings are empty there)
    fx, fy = cx - 0.5, cy - 0.5
    x0, y0 = int(np.floor(fx)), int(np.floor(fy))
    tx, ty = fx - x0, fy - y0
    padded = np.pad(alpha, 1)
    c = padded[y0 + 1:y0 + 3, x0 + 1:x0 + 3]
    centre = float(c[0, 0] * (1 - tx) * (1 - ty) + c[0, 1] * tx * (1 - ty)
                   + c[1, 0] * (1 - tx) * ty + c[1, 1] * tx * ty)
    return np.asarray([m0 / (s / m0), *harmonics, centre, solidity(alpha >= 0.5)])


def solidity(mask: np.ndarray) -> float:
    """mask: (h, w) bool -> pixel count / area of the convex hull of the pixels' squares (1 if convex)."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return float("nan")
    sub = mask[rows]
    left = sub.argmax(1)
    right = sub.shape[1] - sub[:, ::-1].argmax(1)
    # the hull of a row-convex outline only needs each row's outer pixel corners
    pts = np.concatenate([np.stack([x, y], 1) for x in (left, right) for y in (rows, rows + 1)]).astype(np.float64)
    try:
        return float(mask.sum()) / ConvexHull(pts).volume
    except (QhullError, ValueError, ZeroDivisionError):  # degenerate outline: no shape evidence
        return float("nan")


def classify_features(features: np.ndarray, area: float) -> tuple[str, float]:
    """features: (7,), area: soft area in pixels -> (class, confidence in [0, 1]) = posterior of the
    best class times its fit (1 within the clean scatter, decaying beyond)."""
    if not np.all(np.isfinite(features)) or area <= 0:
        return "circle", 0.0
    spread = np.sqrt(_SPREAD_BASE**2 + _SPREAD_PIXEL**2 / area)
    d2 = (((features[None] - _MEANS - _BIAS / area) / spread) ** 2).sum(-1)  # (C,)
    best = int(d2.argmin())
    posterior = 1.0 / float(np.exp(-(d2 - d2[best])).sum())  # a sharp (temperature 1/2) Gaussian posterior
    # Far from every prototype (merged, occluded, cut or blurred objects): confidence decays.
    fit = float(np.exp(-max(0.0, d2[best] - _FIT_FREE) / _FIT_SCALE))
    return _CLASSES[best], posterior * fit


class ShapesDetector:
    """Finds shapes in images from pixels only: `detect(image) -> list[Detection]`."""

    def __init__(self, config: DetectorConfig | None = None, **options):
        if config is not None and options:
            raise ValueError("pass either a DetectorConfig or keyword options, not both")
        try:
            self.config = config or DetectorConfig(**options)
        except TypeError as err:
            raise ValueError(f"unknown detector option: {err}") from None

    # -- segmentation ---------------------------------------------------------------------------
    def segment_batch(self, images) -> list[list[Blob]]:
        """images: (N, H, W, 3) uint8 array or a list of (H, W, 3) arrays / PIL images of equal size
        -> per image, its colour components (Blob) before shape classification."""
        arr = _stack(images)
        out: list[list[Blob]] = []
        step = max(1, _CHUNK_PIXELS // (arr.shape[1] * arr.shape[2]))  # bounds the (n, H, W, K) buffers
        for start in range(0, arr.shape[0], step):
            chunk = arr[start:start + step]
            background, spread, grain = background_of(chunk)
            colour, cover, res = unmix(chunk, background)
            cover = np.where(res <= self.config.max_residual, cover, 0.0)
            dist = np.linalg.norm(_PALETTE[None] - background[:, None, :], axis=-1)  # (n, K)
            out += [self._blobs(colour[i], cover[i], dist[i], float(spread[i]), float(grain[i]))
                    for i in range(chunk.shape[0])]
        return out

    def _blobs(self, colour: np.ndarray, cover: np.ndarray, dist: np.ndarray, spread: float,
               grain: float) -> list[Blob]:
        cfg = self.config
        H, W = cover.shape
        min_contrast = max(cfg.min_contrast, cfg.snr * spread)
        # a pixel must stand out of the background's own variation to seed an object
        candidate = (cover >= cfg.min_coverage) & (cover * dist[colour] >= 0.5 * min_contrast)
        if not candidate.any():
            return []
        blobs: list[Blob] = []
        owner = np.zeros((H, W), dtype=np.int32)
        pending = []
        for k in np.unique(colour[candidate]):
            sel = candidate & (colour == k)
            peak = float(np.percentile(cover[sel], 90))
            if peak * dist[k] < min_contrast:
                continue
            peak = min(peak, 1.0)
            coverage_k = np.where(colour == k, cover, 0.0)
            mask_k = coverage_k >= max(cfg.relative_threshold * peak, cfg.min_coverage)
            labels, n = ndimage.label(mask_k, structure=_EIGHT)
            if n == 0:
                continue
            sizes = np.bincount(labels.ravel(), minlength=n + 1)
            for j, sl in enumerate(ndimage.find_objects(labels), start=1):
                if sizes[j] < cfg.min_area:
                    continue
                owner[labels == j] = len(pending) + 1
                pending.append((int(k), sl, peak))
        for idx, (k, sl, peak) in enumerate(pending, start=1):
            y0, y1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, H)
            x0, x1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, W)
            own = owner[y0:y1, x0:x1]
            mask = own == idx
            alpha = np.clip(np.where(colour[y0:y1, x0:x1] == k, cover[y0:y1, x0:x1], 0.0) / peak, 0.0, 1.0)
            alpha = np.where(((own == 0) | mask) & (alpha >= cfg.soft_floor), alpha, 0.0).astype(np.float32)
            alpha[mask] = np.maximum(alpha[mask], cfg.soft_floor)
            touches = sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == H or sl[1].stop == W
            blobs.append(Blob(colour=_COLOUR_NAMES[k], mask=mask, alpha=alpha, top=y0, left=x0,
                              touches_border=bool(touches), contrast=float(peak * dist[k]), noise=grain))
        return blobs

    # -- classification -------------------------------------------------------------------------
    def classify(self, blob: Blob, image_hw: tuple[int, int]) -> Detection:
        """One blob -> Detection (box in image fractions, score = shape confidence x visibility)."""
        cfg = self.config
        H, W = image_hw
        area = float(blob.alpha.sum())
        cls, confidence = classify_features(shape_features(blob.alpha), area)
        full = max(cfg.full_contrast, cfg.full_snr * blob.noise)
        visibility = min(1.0, blob.contrast / full) * min(1.0, area / cfg.full_area)
        rows = np.flatnonzero(blob.mask.any(1))
        cols = np.flatnonzero(blob.mask.any(0))
        box = ((blob.left + cols[0]) / W, (blob.top + rows[0]) / H,
               (blob.left + cols[-1] + 1) / W, (blob.top + rows[-1] + 1) / H)
        return Detection(cls=cls, box=tuple(float(v) for v in box), colour=blob.colour,
                         score=float(np.clip(confidence * visibility, 0.0, 1.0)), area=area / (H * W))

    def detect_batch(self, images) -> list[list[Detection]]:
        """images: (N, H, W, 3) uint8 or a list of equal-size arrays / PIL images -> per image, its
        detections sorted by decreasing score."""
        arr = _stack(images)
        out = []
        for blobs in self.segment_batch(arr):
            dets = [self.classify(b, arr.shape[1:3]) for b in blobs]
            out.append(sorted((d for d in dets if d.score >= self.config.min_score), key=lambda d: -d.score))
        return out

    def detect(self, image) -> list[Detection]:
        """image: (H, W, 3) uint8 array or PIL image -> detections sorted by decreasing score."""
        return self.detect_batch([image])[0]


def _stack(images) -> np.ndarray:
    """(N, H, W, 3) uint8 from an array or a list of arrays / PIL images (all of one size)."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"image batch of shape {images.shape} is not (N, H, W, 3)")
        images = images if images.dtype == np.uint8 else np.clip(images, 0, 255).astype(np.uint8)
    else:
        arrays = [_as_array(im) for im in images]
        if not arrays:
            return np.zeros((0, 4, 4, 3), dtype=np.uint8)
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"images in one batch must share a size, got {sorted(shapes)}")
        images = np.stack(arrays).astype(np.uint8, copy=False)
    if min(images.shape[1:3]) < 4:
        raise ValueError(f"images of {images.shape[1]}x{images.shape[2]} pixels are too small (need 4x4)")
    return images
