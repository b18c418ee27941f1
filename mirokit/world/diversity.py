"""The shapes world's feature extractors for `mirokit eval diversity` (registered in mirokit.evaluate.FEATURES).

- `world_ae`: the world autoencoder's latents of the image, each channel's spatial mean removed (so a change of
  background colour alone does not dominate the cosine), flattened: (N, C * h * w).
- `world_scene`: the pixel detector's parsed scene as a vector: per cell of a grid x grid layout, the counts of
  each shape class and colour and the summed box size of the objects centred there, plus one "nothing found"
  entry: (N, grid^2 * (6 + 10 + 1) + 1). It also parses the attributes the prompt leaves free, per object:
  `position` (the grid cell of its centre; left out when the prompt states a relative position), `size` (its
  box's longer side in SIZE_BINS) and `colour` (only for objects of a class the prompt names without a colour).
"""

from __future__ import annotations

import numpy as np

from mirokit.evaluate.features import FEATURES
from mirokit.world.vocab import COLOURS, SHAPES

SIZE_BINS = (0.33, 0.39)
"""box side (fraction of the image) edges of small / medium / large: the demo world's radii 0.14-0.22 give
sides 0.28-0.44, cut in three"""
THRESHOLD = 0.3
"""detections kept: score > THRESHOLD (GenEval's threshold outside counting)"""


@FEATURES.register("world_ae", description="shapes world: the world autoencoder's latents (plugin)")
class WorldAEFeatures:
    """name_or_path: the autoencoder folder (builtin: the shipped one)."""

    name = "world_ae"

    def __init__(self, *, name_or_path: str = "builtin", batch_size: int = 256):
        from mirokit.world.autoencoder import WorldAutoencoder

        self.ae = WorldAutoencoder.from_pretrained(name_or_path)
        self.batch_size = int(batch_size)

    def features(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images (N, H, W, 3) uint8 -> (N, C*h*w) float64 latents, per-channel spatial mean removed."""
        import torch

        out = []
        for start in range(0, len(images), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch_size])).permute(0, 3, 1, 2)
            with torch.no_grad():
                z = self.ae.encode(x.float() / 127.5 - 1.0).double()
            z = z - z.mean(dim=(2, 3), keepdim=True)
            out.append(z.flatten(1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))


@FEATURES.register("world_scene", description="shapes world: the detector's parsed scene, with attributes (plugin)")
class WorldSceneFeatures:
    """grid: cells per side of the position grid (the demo world's layout is 2 x 2)."""

    name = "world_scene"
    attribute_names = ("colour", "position", "size")

    def __init__(self, *, grid: int = 2, **detector_options):
        from mirokit.world.detector import ShapesDetector

        self.grid = int(grid)
        self.detector = ShapesDetector(**detector_options)

    def _objects(self, images: np.ndarray) -> list[list]:
        return [[d for d in dets if d.score > THRESHOLD] for dets in self.detector.detect_batch(images)]

    def _cell(self, det) -> tuple[int, int]:
        x0, y0, x1, y1 = det.box
        g = self.grid
        return min(int((y0 + y1) / 2 * g), g - 1), min(int((x0 + x1) / 2 * g), g - 1)

    def features(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images (N, H, W, 3) uint8 -> (N, grid^2 * 17 + 1) float64 scene vectors."""
        classes, colours = {c: i for i, c in enumerate(SHAPES)}, {c: i for i, c in enumerate(COLOURS)}
        width = len(classes) + len(colours) + 1
        out = np.zeros((len(images), self.grid ** 2 * width + 1))
        for n, dets in enumerate(self._objects(images)):
            if not dets:
                out[n, -1] = 1.0
            for d in dets:
                r, c = self._cell(d)
                base = (r * self.grid + c) * width
                out[n, base + classes[d.cls]] += 1.0
                out[n, base + len(classes) + colours[d.colour]] += 1.0
                out[n, base + width - 1] += max(d.box[2] - d.box[0], d.box[3] - d.box[1])
        return out

    def attributes(self, images: np.ndarray, records: list[dict]) -> list[dict[str, list]]:
        """Per image {attribute: [value per detected object]} of the attributes its record leaves free."""
        out = []
        for dets, record in zip(self._objects(images), records):
            include = record.get("include") or []
            uncoloured = {r["class"] for r in include if "color" not in r}
            positioned = any("position" in r for r in include)
            attrs: dict[str, list] = {"size": [], "colour": []}
            if not positioned:
                attrs["position"] = []
            for d in dets:
                side = max(d.box[2] - d.box[0], d.box[3] - d.box[1])
                attrs["size"].append(int(np.searchsorted(SIZE_BINS, side)))
                if not positioned:
                    attrs["position"].append("{},{}".format(*self._cell(d)))
                if d.cls in uncoloured or not include:
                    attrs["colour"].append(d.colour)
            out.append(attrs)
        return out
