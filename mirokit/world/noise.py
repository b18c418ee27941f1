"""Web-like noise for the shapes world: which noise a sample gets, cut objects, image degradations.

Three families, each kind with its own rate in `WorldConfig`:
- caption noise (at most one per sample, see `captions.caption_scene`): wrong_colour, count_off,
  swap_relation, missing_object;
- scene noise, before rendering: cut_border (one object moved partly outside the image);
- image noise, after rendering (independent, applied in this order): low_contrast, blur,
  pixel_noise, jpeg.
What was applied is recorded per sample ({kind: parameters}); reward scorers never read it.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace

import numpy as np

from mirokit.world.captions import CAPTION_NOISE
from mirokit.world.sampling import WorldConfig, extent
from mirokit.world.scenes import Scene

SCENE_NOISE = ("cut_border",)
IMAGE_NOISE = ("low_contrast", "blur", "pixel_noise", "jpeg")
NOISE_KINDS = CAPTION_NOISE + SCENE_NOISE + IMAGE_NOISE
"""Every noise kind; `WorldConfig` has a `{kind}_rate` field for each."""


def noise_rates(cfg: WorldConfig) -> dict[str, float]:
    """{kind: rate} for every noise kind, read from the config."""
    return {kind: float(getattr(cfg, f"{kind}_rate")) for kind in NOISE_KINDS}


def draw_noise(rng: np.random.Generator, cfg: WorldConfig) -> dict:
    """Decide one sample's noise -> {"caption": kind or None, "cut_border": bool, image kind: params}.

    Caption noise is one categorical draw (so each kind has exactly its rate); the others are
    independent Bernoulli draws. Image parameters are drawn here so rendering is deterministic.
    Blur sigma and noise std are in pixels / 0-255 units at 32 px and scale with the image size.
    """
    rates = noise_rates(cfg)
    u, caption = rng.random(), None
    for kind in CAPTION_NOISE:
        if u < rates[kind]:
            caption = kind
            break
        u -= rates[kind]
    out = {"caption": caption, "cut_border": bool(rng.random() < rates["cut_border"])}
    scale = cfg.image_size / 32
    params = {
        "low_contrast": lambda: {"factor": round(0.3 + 0.25 * rng.random(), 4)},
        "blur": lambda: {"sigma": round((0.8 + 0.6 * rng.random()) * scale, 1)},  # 0.1 steps: batched
        "pixel_noise": lambda: {"std": round(10 + 12 * rng.random(), 4), "seed": int(rng.random() * 2**31)},
        "jpeg": lambda: {"quality": int(8 + rng.random() * 18)},
    }
    for kind in IMAGE_NOISE:
        hit = rng.random() < rates[kind]
        value = params[kind]()  # always drawn, so rates do not shift other samples' parameters
        if hit:
            out[kind] = value
    return out


def cut_by_border(scene: Scene, rng: np.random.Generator, *, gap: float = 0.04) -> tuple[Scene, dict] | None:
    """Move one object so 30-60% of its box lies outside the image, keeping it clear of the others.

    Tries every (object, side) in random order -> (new scene, {"object", "side", "outside"}), or
    None when no object can be moved without overlapping another.
    """
    options = [(k, side) for k in range(len(scene.objects)) for side in ("left", "right", "top", "bottom")]
    outside = 0.3 + 0.3 * rng.random()
    for pick in rng.permutation(len(options)):
        k, side = options[int(pick)]
        obj = scene.objects[k]
        e = extent(obj)
        edge = e - 2 * e * outside  # centre coordinate that leaves `outside` of the box beyond 0
        moved = {"left": {"cx": edge}, "right": {"cx": 1 - edge}, "top": {"cy": edge}, "bottom": {"cy": 1 - edge}}
        obj = replace(obj, **moved[side])
        others = [o for j, o in enumerate(scene.objects) if j != k]
        if all(abs(obj.cx - o.cx) >= e + extent(o) + gap or abs(obj.cy - o.cy) >= e + extent(o) + gap
               for o in others):
            objects = scene.objects[:k] + (obj,) + scene.objects[k + 1:]
            return replace(scene, objects=objects), {"object": k, "side": side, "outside": round(outside, 4)}
    return None


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected borders: (N, H, W, 3) uint8 -> same shape uint8."""
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    x = images.astype(np.float32)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="reflect" if x.shape[axis] > radius else "edge")
        length = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(taps))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def pixel_noise(image: np.ndarray, std: float, seed: int) -> np.ndarray:
    """Additive Gaussian noise of `std` (0-255 units), reproducible from `seed`: (H, W, 3) uint8 -> uint8."""
    noise = np.random.default_rng(seed).normal(0.0, std, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with PIL's JPEG at `quality` (1-95): (H, W, 3) uint8 -> uint8."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def low_contrast(images: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Pull each image towards its mean colour: (N, H, W, 3) uint8, factors (N,) in (0, 1] -> uint8."""
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    x = mean + np.asarray(factors, dtype=np.float32)[:, None, None, None] * (x - mean)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def degrade_images(images: np.ndarray, records: list[dict]) -> np.ndarray:
    """Apply each sample's image noise: images (N, H, W, 3) uint8, N records ({kind: params}) -> copy.

    Samples sharing a kind are processed together where the operation is vectorised.
    """
    if len(records) != len(images):
        raise ValueError(f"degrade_images: {len(images)} images but {len(records)} noise records")
    out = images.copy()
    hit = [i for i, r in enumerate(records) if "low_contrast" in r]
    if hit:
        out[hit] = low_contrast(out[hit], np.asarray([records[i]["low_contrast"]["factor"] for i in hit]))
    sigmas: dict[float, list[int]] = {}
    for i, r in enumerate(records):
        if "blur" in r:
            sigmas.setdefault(float(r["blur"]["sigma"]), []).append(i)
    for sigma, hit in sigmas.items():
        out[hit] = gaussian_blur(out[hit], sigma)
    for i, r in enumerate(records):
        if "pixel_noise" in r:
            out[i] = pixel_noise(out[i], r["pixel_noise"]["std"], r["pixel_noise"]["seed"])
        if "jpeg" in r:
            out[i] = jpeg_roundtrip(out[i], r["jpeg"]["quality"])
    return out
