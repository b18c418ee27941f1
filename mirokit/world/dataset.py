"""The shapes world as a dataset: sample i is a pure function of (cfg.seed, i).

Generating sample i: draw its noise, sample a clean scene (re-drawn until the drawn caption noise
applies to it), move an object across the border if cut_border was drawn, caption the scene,
then (lazily, in chunks) render it and apply the image noise. Reward scores are attached later
with `set_scores` (the world's own metadata is never a reward input).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mirokit.data.batch import Batch, DataError
from mirokit.data.calibration import Calibration
from mirokit.data.caption_mix import CaptionMixConfig
from mirokit.data.source import DatasetInfo, Sample
from mirokit.world.captions import caption_noise_feasible, caption_scene
from mirokit.world.noise import IMAGE_NOISE, NOISE_KINDS, cut_by_border, degrade_images, draw_noise
from mirokit.world.render import render_batch
from mirokit.world.sampling import WorldConfig, sample_scene
from mirokit.world.scenes import Scene, scene_to_dict


@dataclass(frozen=True)
class WorldItem:
    """One generated sample before rendering."""

    index: int
    """position in the dataset"""
    scene: Scene
    """the scene as rendered (after scene noise); scene.meta["noise"] is `noise`"""
    caption: str
    """the caption (possibly noisy)"""
    claim: dict
    """GenEval-schema metadata of what the caption claims (tag, include, exclude?, prompt)"""
    noise: dict
    """applied noise {kind: parameters}; empty for a clean sample"""

    def metadata(self) -> dict:
        """JSON-ready: the claim's keys plus "noise", "scene" (as a dict) and "index"."""
        scene = scene_to_dict(self.scene)
        scene.pop("meta")
        return {**self.claim, "noise": self.noise, "scene": scene, "index": self.index}


def _count_for(rng: np.random.Generator, cfg: WorldConfig, kind: str | None) -> int | None:
    """Object count to force so that caption noise `kind` can apply (None: the config's distribution)."""
    if kind == "swap_relation":
        return 2
    if kind == "missing_object":
        probs = np.asarray(cfg.object_count_probs[1:], dtype=np.float64)
        if probs.sum() <= 0:
            return 2
        return 2 + int(np.searchsorted(np.cumsum(probs / probs.sum()), rng.random(), side="right"))
    return None


def make_item(cfg: WorldConfig, index: int) -> WorldItem:
    """Generate sample `index` of the world described by `cfg` (deterministic)."""
    rng = np.random.default_rng([cfg.seed, index])
    drawn = draw_noise(rng, cfg)
    kind, cut = drawn["caption"], None
    for _ in range(50):
        scene = sample_scene(rng, cfg, num_objects=_count_for(rng, cfg, kind))
        if drawn["cut_border"]:
            moved = cut_by_border(scene, rng, gap=cfg.min_gap)
            if moved is None:
                continue
            scene, cut = moved
        if kind is None or caption_noise_feasible(scene, kind):
            break
    else:  # practically unreachable: keep the last scene, without the infeasible noises
        kind = kind if kind is None or caption_noise_feasible(scene, kind) else None
    caption, claim = caption_scene(scene, rng, noise=kind, free_form_prob=cfg.free_form_prob)
    noise = claim.pop("noise", {})
    if cut is not None:
        noise["cut_border"] = cut
    noise.update({k: drawn[k] for k in IMAGE_NOISE if k in drawn})
    scene = replace(scene, meta={"noise": noise})
    return WorldItem(index=index, scene=scene, caption=caption, claim=claim, noise=noise)


def render_items(items: list[WorldItem], size: int) -> np.ndarray:
    """Render items and apply their image noise -> (N, size, size, 3) uint8."""
    return degrade_images(render_batch([it.scene for it in items], size), [it.noise for it in items])


class WorldDataset(Dataset):
    """`num_samples` shapes-world samples; `self[i]` = (image (3, H, W) float32 in [-1, 1], caption, scores).

    Scores are {} until `set_scores` attaches reward values. Pixels are rendered lazily in chunks
    and cached as uint8 (3·H·W bytes per sample); `iter_samples` streams without caching.
    """

    def __init__(self, num_samples: int, cfg: WorldConfig | None = None, *, chunk_size: int = 256) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise DataError(f"WorldDataset: num_samples must be a positive int, got {num_samples!r}")
        self.num_samples = num_samples
        self.cfg = cfg or WorldConfig()
        self.chunk_size = chunk_size
        size = self.cfg.image_size
        self._pixels = torch.empty((num_samples, 3, size, size), dtype=torch.uint8)
        chunks = (num_samples + chunk_size - 1) // chunk_size
        self._drawn = np.zeros(chunks, dtype=bool)
        self._captions: list[str | None] = [None] * num_samples
        self._score_keys: list[str] = []
        self._scores = torch.empty((num_samples, 0), dtype=torch.float32)
        self._synthetic: tuple[list[str], Tensor] | None = None  # set_synthetic: captions, their scores (N, K)
        self._mix = CaptionMixConfig()
        self._calibration: Calibration | None = None
        self._latents: Tensor | None = None

    @property
    def info(self) -> DatasetInfo:
        """The attached reward keys and the calibration that produced their values."""
        return DatasetInfo(reward_keys=tuple(self._score_keys), calibration=self._calibration)

    def __len__(self) -> int:
        """Number of samples N."""
        return self.num_samples

    @property
    def image_size(self) -> int:
        """Image side in pixels."""
        return self.cfg.image_size

    def _check_index(self, index: int) -> int:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"WorldDataset: index {index} out of range for {self.num_samples} samples")
        return index % self.num_samples

    def _range(self, chunk: int) -> range:
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.num_samples))

    def item(self, index: int) -> WorldItem:
        """The generated (unrendered) sample `index`."""
        return make_item(self.cfg, self._check_index(int(index)))

    def metadata(self, index: int) -> dict:
        """GenEval-schema claim of sample `index` plus its applied "noise", "scene" dict and "index"."""
        return self.item(index).metadata()

    @property
    def captions(self) -> list[str]:
        """All N captions (generates every scene once; no rendering)."""
        for chunk in range(len(self._drawn)):
            rows = self._range(chunk)
            if self._captions[rows.start] is None:
                for i in rows:
                    self._captions[i] = make_item(self.cfg, i).caption
        return list(self._captions)  # type: ignore[arg-type]

    def _ensure_drawn(self, indices: np.ndarray) -> None:
        for chunk in np.unique(indices // self.chunk_size):
            if self._drawn[chunk]:
                continue
            rows = self._range(int(chunk))
            items = [make_item(self.cfg, i) for i in rows]
            pixels = render_items(items, self.image_size)
            self._pixels[rows.start:rows.stop] = torch.from_numpy(pixels).permute(0, 3, 1, 2)
            for it in items:
                self._captions[it.index] = it.caption
            self._drawn[chunk] = True

    def _indices(self, indices) -> np.ndarray:
        return np.asarray([self._check_index(int(i)) for i in indices], dtype=np.int64)

    def pixels(self, indices: list[int] | Tensor) -> Tensor:
        """uint8 images for `indices` (B,): -> (B, 3, H, W) uint8."""
        idx = self._indices(indices)
        self._ensure_drawn(idx)
        return self._pixels[torch.from_numpy(idx)]

    def images(self, indices: list[int] | Tensor) -> Tensor:
        """Images for `indices` (B,): -> (B, 3, H, W) float32 in [-1, 1]."""
        return self.pixels(indices).float().div_(127.5).sub_(1.0)

    def set_latents(self, latents: Tensor) -> None:
        """Serve `latents[i]` (N, C, h, w), e.g. the world autoencoder's encoding of sample i, as the image of
        sample i (for a latent image space); the captions, scores and metadata stay the world's."""
        if latents.ndim != 4 or latents.shape[0] != self.num_samples:
            raise DataError(f"set_latents: expected ({self.num_samples}, C, h, w) latents, got {tuple(latents.shape)}")
        self.captions  # noqa: B018 - the captions of every sample, without rendering
        self._latents = latents.float()

    def __getitem__(self, index: int) -> Sample:
        """Sample `index`: (image (3, H, W) float32 in [-1, 1], or its latent (C, h, w) after set_latents;
        caption; {reward key: value or NaN})."""
        return self.draw(index)

    def draw(self, index: int, generator: torch.Generator | None = None) -> Sample:
        """Sample `index` with, after `set_synthetic` and given a generator, the caption the caption mix picks
        (the world's or the synthetic one, mirokit.data.caption_mix) and that caption's scores."""
        index = self._check_index(int(index))
        image = self.images([index])[0] if self._latents is None else self._latents[index]
        choice = 0
        if self._synthetic is not None:
            choice = self._mix.choose(["original", "synthetic"], generator)
        if choice == 0:
            return Sample(image, self._captions[index], dict(zip(self._score_keys, self._scores[index].tolist())))
        captions, values = self._synthetic
        scores = values[index] if self._mix.own_rewards else self._scores[index]
        return Sample(image, captions[index], dict(zip(self._score_keys, scores.tolist())))

    @property
    def synthetic(self) -> tuple[list[str], Tensor] | None:
        """(N synthetic captions, their scores (N, K)) after set_synthetic, else None."""
        return self._synthetic

    def set_synthetic(self, captions: list[str], values, mix: CaptionMixConfig | None = None) -> None:
        """A second caption per sample (N strings) with its own calibrated scores (N, K) in the order of the
        attached keys (set_scores first), drawn at training time by `mix` (default: the official 0.5)."""
        array = torch.as_tensor(np.asarray(values, dtype=np.float32))
        if len(captions) != self.num_samples or tuple(array.shape) != (self.num_samples, len(self._score_keys)):
            raise DataError(f"set_synthetic: expected {self.num_samples} captions and ({self.num_samples}, "
                            f"{len(self._score_keys)}) scores, got {len(captions)} and {tuple(array.shape)}")
        self._synthetic = (list(captions), array)
        self._mix = mix or CaptionMixConfig()

    def set_scores(self, keys: list[str], values, *, calibration: Calibration | None = None) -> None:
        """Attach reward values: keys (K,) unique names, values (N, K) in [0, 1] or NaN (missing), and the
        calibration that produced them (if any; it travels with trained models).

        Keys already attached are overwritten, new keys are appended.
        """
        keys = list(keys)
        if len(set(keys)) != len(keys) or not all(isinstance(k, str) and k for k in keys):
            raise DataError(f"set_scores: keys must be unique non-empty strings, got {keys}")
        array = np.asarray(values, dtype=np.float32)
        if array.shape != (self.num_samples, len(keys)):
            raise DataError(f"set_scores: values must have shape ({self.num_samples}, {len(keys)}), got {array.shape}")
        bad = ~np.isnan(array) & ((array < 0) | (array > 1))
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise DataError(f"set_scores: sample {row}: score {keys[col]!r}={array[row, col]} is outside [0, 1]")
        columns = {k: self._scores[:, j] for j, k in enumerate(self._score_keys)}
        columns.update({k: torch.from_numpy(array[:, j].copy()) for j, k in enumerate(keys)})
        self._score_keys = list(columns)
        self._scores = torch.stack(list(columns.values()), dim=1)
        if calibration is not None:
            self._calibration = calibration

    @property
    def reward_keys_seen(self) -> list[str]:
        """The reward keys attached with `set_scores` (empty before)."""
        return list(self._score_keys)

    def batch(self, indices: list[int] | Tensor, reward_keys: list[str] | None = None) -> Batch:
        """A `Batch` for `indices` (B,): images (B, 3, H, W), captions, rewards (B, K) for `reward_keys`
        (default: every attached key; a key never attached raises DataError)."""
        keys = self.reward_keys_seen if reward_keys is None else list(reward_keys)
        unknown = [k for k in keys if k not in self._score_keys]
        if unknown:
            raise DataError(f"WorldDataset has no reward {unknown[0]!r}; attached: {self._score_keys}")
        images = self.images(indices)
        idx = torch.from_numpy(self._indices(indices))
        columns = [self._score_keys.index(k) for k in keys]
        return Batch(images=images, captions=[self._captions[i] for i in idx.tolist()],
                     rewards=self._scores[idx][:, columns])

    def iter_samples(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray, str, dict]]:
        """Stream (index, image (H, W, 3) uint8, caption, metadata) for start <= index < stop, rendering
        chunk by chunk without caching pixels."""
        stop = self.num_samples if stop is None else min(stop, self.num_samples)
        for lo in range(start, stop, self.chunk_size):
            items = [make_item(self.cfg, i) for i in range(lo, min(lo + self.chunk_size, stop))]
            pixels = render_items(items, self.image_size)
            for it, image in zip(items, pixels):
                yield it.index, image, it.caption, it.metadata()


def world_config_from(overrides: list[str] | None = None, *, clean: bool = False,
                      noise: dict[str, float | None] | None = None, seed: int | None = None,
                      size: int | None = None) -> WorldConfig:
    """WorldConfig from `field=value` overrides, then `clean` (every noise rate 0), then {noise kind: rate}, then
    the seed and the image size (in that order); unknown fields or kinds are one-line errors."""
    from mirokit.config import apply_overrides, from_dict, to_dict

    cfg = from_dict(WorldConfig, apply_overrides({}, list(overrides or [])))
    data = to_dict(cfg.clean() if clean else cfg)
    for kind, rate in (noise or {}).items():
        if kind not in NOISE_KINDS:
            raise ValueError(f"--noise {kind!r}: unknown noise kind; known: {', '.join(NOISE_KINDS)}")
        if rate is None:
            raise ValueError(f"--noise {kind!r}: the rate must be a number")
        data[f"{kind}_rate"] = rate
    if seed is not None:
        data["seed"] = seed
    if size is not None:
        data["image_size"] = size
    return from_dict(WorldConfig, data)
