"""Random scenes of the shapes world, and scenes built to satisfy a GenEval metadata item.

Clean scenes hold 1-4 non-overlapping objects fully inside the image, on a grey-ish background
(slightly tinted, optionally lightly textured) that no object colour can be mistaken for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from mirokit.world.scenes import Scene, WorldObject, claim_holds
from mirokit.world.vocab import COLOURS, RELATIONS, SHAPES

_COLOUR_NAMES = tuple(COLOURS)
LAYOUTS = ("free", "grid")
_ROUND = ("circle", "ring")


@dataclass(kw_only=True)
class WorldConfig:
    """How the shapes world samples scenes, captions and noise (rates are per-sample probabilities)."""

    image_size: int = 32
    """side of the rendered images in pixels (32-64 tested)"""
    object_count_probs: tuple[float, ...] = (0.35, 0.35, 0.2, 0.1)
    """probabilities of 1, 2, 3, 4 objects per scene"""
    size_range: tuple[float, float] = (0.14, 0.22)
    """object radius range (fraction of the side) for scenes with 1-2 objects"""
    crowded_size_range: tuple[float, float] = (0.14, 0.18)
    """object radius range for scenes with 3-4 objects"""
    max_rotation: float = 0.0
    """objects are rotated uniformly in [-max_rotation, max_rotation] radians (0: upright shapes)"""
    layout: str = "free"
    """free: objects anywhere (rejection-sampled, radii from size_range / crowded_size_range); grid: at most one
    object per cell of a grid_cells x grid_cells grid, radii from size_range (the demo's world: where things
    are is easier to learn, and GenEval's six tasks keep their meaning)"""
    grid_cells: int = 2
    """grid layout: cells per side"""
    grid_jitter: float = 0.03
    """grid layout: an object's centre lies up to this far from its cell's centre, per axis (fraction of the side)"""
    min_gap: float = 0.04
    """minimum gap between object boxes in clean scenes (fraction of the side)"""
    edge_margin: float = 0.03
    """minimum distance between object boxes and the image border in clean scenes"""
    background_range: tuple[int, int] = (95, 165)
    """grey level range (0-255) of the background"""
    background_tint: int = 8
    """maximum per-channel tint (0-255 units) added to the background grey"""
    texture_prob: float = 0.3
    """probability that the background carries a light texture"""
    texture_range: tuple[float, float] = (3.0, 10.0)
    """texture amplitude range (0-255 units)"""
    free_form_prob: float = 0.3
    """probability of a free-form caption where a GenEval template would also fit"""
    wrong_colour_rate: float = 0.05
    """caption noise: a mentioned object gets a colour absent from the scene"""
    count_off_rate: float = 0.05
    """caption noise: a count is off by one"""
    swap_relation_rate: float = 0.05
    """caption noise: left/right or above/below swapped"""
    missing_object_rate: float = 0.05
    """caption noise: the caption omits every object of one class"""
    cut_border_rate: float = 0.05
    """scene noise: one object is moved partly outside the image"""
    blur_rate: float = 0.1
    """image noise: Gaussian blur"""
    pixel_noise_rate: float = 0.1
    """image noise: additive Gaussian pixel noise"""
    jpeg_rate: float = 0.1
    """image noise: low-quality JPEG round trip"""
    low_contrast_rate: float = 0.1
    """image noise: contrast pulled towards the image mean"""
    seed: int = 0
    """world seed: sample i depends only on (seed, i)"""

    def __post_init__(self):
        if (isinstance(self.image_size, bool) or not isinstance(self.image_size, int)
                or not 16 <= self.image_size <= 512):
            raise ValueError(f"image_size must be an int in [16, 512], got {self.image_size!r}")
        self.object_count_probs = tuple(float(p) for p in self.object_count_probs)
        if not 1 <= len(self.object_count_probs) <= 4 or any(p < 0 for p in self.object_count_probs) \
                or not math.isclose(sum(self.object_count_probs), 1.0, abs_tol=1e-6):
            raise ValueError(f"object_count_probs must be 1-4 non-negative numbers summing to 1, "
                             f"got {self.object_count_probs}")
        for name in ("size_range", "crowded_size_range", "background_range", "texture_range"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {getattr(self, name)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; known: {', '.join(LAYOUTS)}")
        if self.layout == "grid":
            cells = self.grid_cells
            if isinstance(cells, bool) or not isinstance(cells, int) or cells * cells < len(self.object_count_probs):
                raise ValueError(f"grid_cells must be an int with grid_cells**2 >= {len(self.object_count_probs)} "
                                 f"(the most objects per scene), got {cells!r}")
            stretch = 1.0 if self.max_rotation == 0 else math.sqrt(2)
            if self.grid_jitter < 0 or self.size_range[1] * stretch + self.grid_jitter + self.min_gap / 2 > 0.5 / cells:
                raise ValueError(f"grid layout: size_range[1] + grid_jitter + min_gap / 2 must fit in half a cell "
                                 f"({0.5 / cells:.3f} of the side)")
        if self.size_range[1] > 0.3 or self.crowded_size_range[1] > 0.3:
            raise ValueError("object radii above 0.3 of the side cannot hold several objects")
        for name, value in vars(self).items():
            if not name.endswith(("_rate", "_prob")):
                continue
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        caption = self.wrong_colour_rate + self.count_off_rate + self.swap_relation_rate + self.missing_object_rate
        if caption > 1.0 + 1e-9:
            raise ValueError(f"caption noise rates sum to {caption:.3f} > 1 (at most one caption noise per sample)")

    def clean(self) -> WorldConfig:
        """A copy with every noise rate set to 0 (captions and images exactly describe each other)."""
        return replace(self, **{k: 0.0 for k in vars(self) if k.endswith("_rate")})


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * rng.random()


def _choice(rng: np.random.Generator, items):
    return items[int(rng.random() * len(items))]


def extent(obj: WorldObject) -> float:
    """Half-side of a square around the object's centre that contains it at its rotation."""
    if obj.shape in _ROUND or obj.rotation == 0.0:
        return obj.size
    return obj.size * (abs(math.cos(obj.rotation)) + abs(math.sin(obj.rotation)))


def _fits(obj: WorldObject, others, gap: float, margin: float) -> bool:
    """Inside the image (with margin) and separated from every other object's box by gap."""
    e = extent(obj)
    if obj.cx - e < margin or obj.cx + e > 1 - margin or obj.cy - e < margin or obj.cy + e > 1 - margin:
        return False
    for other in others:
        limit = e + extent(other) + gap
        if abs(obj.cx - other.cx) < limit and abs(obj.cy - other.cy) < limit:
            return False
    return True


def sample_background(rng: np.random.Generator, cfg: WorldConfig) -> dict:
    """Background fields of a Scene: {"background": (r, g, b), "texture": amplitude, "texture_seed"}."""
    grey = _uniform(rng, *cfg.background_range)
    tint = cfg.background_tint
    rgb = tuple(min(255, max(0, round(grey + _uniform(rng, -tint, tint)))) for _ in range(3))
    textured = rng.random() < cfg.texture_prob
    amplitude = _uniform(rng, *cfg.texture_range) if textured else 0.0
    seed = int(rng.random() * 2**31)
    return {"background": rgb, "texture": amplitude, "texture_seed": seed if textured else 0}


def _size_range(cfg: WorldConfig, count: int) -> tuple[float, float]:
    return cfg.size_range if count <= 2 else cfg.crowded_size_range


def _place(rng, cfg, specs, placed, size_range, tries: int = 40) -> list[WorldObject] | None:
    """Rejection-sample sizes and positions for (shape, colour) specs around the already placed objects.

    Works on plain floats (objects are built once accepted) and draws each object's candidates in
    one call: this loop is most of the world's sampling time.
    """
    boxes = [(o.cx, o.cy, extent(o)) for o in placed]
    low, high = size_range
    m, gap = cfg.edge_margin, cfg.min_gap
    out = []
    for shape, colour in specs:
        rotation = _uniform(rng, -cfg.max_rotation, cfg.max_rotation) if cfg.max_rotation else 0.0
        stretch = extent(WorldObject(shape, colour, 0.5, 0.5, 1.0, rotation))
        for u_size, u_x, u_y in rng.random((tries, 3)).tolist():
            size = low + (high - low) * u_size
            e = size * stretch
            span = 1 - 2 * (e + m)
            cx, cy = e + m + span * u_x, e + m + span * u_y
            if span >= 0 and all(abs(cx - x) >= e + f + gap or abs(cy - y) >= e + f + gap for x, y, f in boxes):
                boxes.append((cx, cy, e))
                out.append(WorldObject(shape, colour, cx, cy, size, rotation))
                break
        else:
            return None
    return out


def _in_cells(rng: np.random.Generator, cfg: WorldConfig, specs, cells: list[int]) -> list[WorldObject]:
    """Grid layout: (shape, colour) specs placed one per cell (index = row * grid_cells + column)."""
    g, jitter = cfg.grid_cells, cfg.grid_jitter
    out = []
    for (shape, colour), cell in zip(specs, cells):
        rotation = _uniform(rng, -cfg.max_rotation, cfg.max_rotation) if cfg.max_rotation else 0.0
        size = _uniform(rng, *cfg.size_range)
        cx = (cell % g + 0.5) / g + _uniform(rng, -jitter, jitter)
        cy = (cell // g + 0.5) / g + _uniform(rng, -jitter, jitter)
        out.append(WorldObject(shape, colour, cx, cy, size, rotation))
    return out


def _cells_for(rng: np.random.Generator, cfg: WorldConfig, sizes: list[int], pairs) -> list[list[int]] | None:
    """Grid layout: one cell per object of each include group (`sizes` objects each); a positioned pair
    (group i, (relation, group t)) sits in one row (left/right) or one column (above/below), in order."""
    g = cfg.grid_cells
    free = [int(c) for c in rng.permutation(g * g)]
    cells: list[list[int] | None] = [None] * len(sizes)
    for i, (relation, t) in pairs:
        lane = int(rng.integers(g))
        a, b = sorted(int(k) for k in rng.choice(g, 2, replace=False))
        if relation in ("right of", "below"):
            a, b = b, a
        horizontal = relation in ("left of", "right of")
        cell_a, cell_b = (lane * g + a, lane * g + b) if horizontal else (a * g + lane, b * g + lane)
        if cell_a not in free or cell_b not in free:
            return None
        free.remove(cell_a)
        free.remove(cell_b)
        cells[i], cells[t] = [cell_a], [cell_b]
    for i, n in enumerate(sizes):
        if cells[i] is None:
            if len(free) < n:
                return None
            cells[i], free = free[:n], free[n:]
    return cells


def sample_scene(rng: np.random.Generator, cfg: WorldConfig, *, num_objects: int | None = None) -> Scene:
    """A clean random scene: `num_objects` (default: drawn from cfg.object_count_probs) shapes with
    uniform class and colour, non-overlapping and fully inside the image."""
    if num_objects is None:
        u, num_objects = rng.random(), len(cfg.object_count_probs)
        for k, p in enumerate(np.cumsum(cfg.object_count_probs)):
            if u < p:
                num_objects = k + 1
                break
    if not 1 <= num_objects <= 4:
        raise ValueError(f"num_objects must be in 1..4, got {num_objects}")
    specs = [(_choice(rng, SHAPES), _choice(rng, _COLOUR_NAMES)) for _ in range(num_objects)]
    if cfg.layout == "grid":
        cells = [int(c) for c in rng.permutation(cfg.grid_cells ** 2)[:num_objects]]
        return Scene(objects=tuple(_in_cells(rng, cfg, specs, cells)), **sample_background(rng, cfg))
    low, high = _size_range(cfg, num_objects)
    objects = None
    for attempt in range(20):  # shrink the size range if the layout keeps failing (very rare)
        objects = _place(rng, cfg, specs, [], (low, max(low, high - attempt * (high - low) / 10)))
        if objects is not None:
            break
    if objects is None:
        raise ValueError(f"could not place {num_objects} objects; lower size_range/min_gap")
    return Scene(objects=tuple(objects), **sample_background(rng, cfg))


def _check_item(item: dict) -> str:
    """Validate a GenEval metadata item; returns its prompt (for error messages)."""
    prompt = item.get("prompt", "?") if isinstance(item, dict) else "?"
    if not isinstance(item, dict) or not isinstance(item.get("include"), list) or not item["include"]:
        raise ValueError(f"metadata item {prompt!r}: needs a non-empty 'include' list")
    for req in item["include"] + list(item.get("exclude", [])):
        if not isinstance(req, dict) or req.get("class") not in SHAPES:
            raise ValueError(f"metadata item {prompt!r}: unknown class in {req!r} (known: {', '.join(SHAPES)})")
        if isinstance(req.get("count"), bool) or not isinstance(req.get("count"), int) or req["count"] < 1:
            raise ValueError(f"metadata item {prompt!r}: count must be a positive int in {req!r}")
        if "color" in req and req["color"] not in COLOURS:
            raise ValueError(f"metadata item {prompt!r}: unknown color {req['color']!r}")
    for i, req in enumerate(item["include"]):
        if "position" in req:
            rel, target = req["position"]
            if rel not in RELATIONS or not (0 <= target < len(item["include"])) or target == i:
                raise ValueError(f"metadata item {prompt!r}: bad position {req['position']!r}")
            if req["count"] != 1 or item["include"][target]["count"] != 1:
                raise ValueError(f"metadata item {prompt!r}: positions are supported between single objects only")
    if sum(req["count"] for req in item["include"]) > 4:
        raise ValueError(f"metadata item {prompt!r}: more than 4 objects")
    for req in item.get("exclude", []):
        wanted = sum(r["count"] for r in item["include"] if r["class"] == req["class"])
        if wanted >= req["count"]:
            raise ValueError(f"metadata item {prompt!r}: include and exclude contradict for {req['class']!r}")
    return prompt


def _place_pair(rng, cfg, a_spec, b_spec, relation, size_range) -> tuple[WorldObject, WorldObject]:
    """Objects A and B with A `relation` B: separated along the relation's axis, nearly aligned on the other."""
    ra, rb = _uniform(rng, *size_range), _uniform(rng, *size_range)
    m, gap = cfg.edge_margin, cfg.min_gap
    span = 2 * ra + 2 * rb + gap  # the pair's extent along the relation's axis, touching gap
    slack = max(0.0, 1 - 2 * m - span)
    start = m + _uniform(rng, 0, slack)
    extra = _uniform(rng, 0, slack - (start - m))  # spread the two objects further apart
    across = _uniform(rng, max(ra, rb) + m, 1 - max(ra, rb) - m)
    jitter = 0.05 * (ra + rb)  # keeps the other axis' relation out of GenEval's rule (threshold 0.1)
    a_across, b_across = across + _uniform(rng, -jitter, jitter) / 2, across
    a_first = relation in ("left of", "above")  # the object with the smaller coordinate comes first
    r1, r2 = (ra, rb) if a_first else (rb, ra)
    p1, p2 = start + r1, start + 2 * r1 + gap + extra + r2
    a_major, b_major = (p1, p2) if a_first else (p2, p1)
    horizontal = relation in ("left of", "right of")
    a_xy = (a_major, a_across) if horizontal else (a_across, a_major)
    b_xy = (b_major, b_across) if horizontal else (b_across, b_major)
    return (WorldObject(a_spec[0], a_spec[1], a_xy[0], a_xy[1], ra),
            WorldObject(b_spec[0], b_spec[1], b_xy[0], b_xy[1], rb))


def scene_for_metadata(item: dict, rng: np.random.Generator, cfg: WorldConfig | None = None) -> Scene:
    """A clean scene satisfying a GenEval metadata item (include counts/classes/colours/positions and
    exclude limits) with margin: positioned pairs are separated along the relation's axis and almost
    aligned on the other, so GenEval's rule holds robustly (`claim_holds(..., strict=True)`).
    Unspecified colours are random; no other objects are added. Bad items raise a one-line ValueError.
    """
    cfg = cfg or WorldConfig()
    prompt = _check_item(item)
    include = item["include"]
    specs = [[(req["class"], req.get("color") or _choice(rng, _COLOUR_NAMES)) for _ in range(req["count"])]
             for req in include]
    total = sum(len(s) for s in specs)
    size_range = _size_range(cfg, total)
    pairs = [(i, req["position"]) for i, req in enumerate(include) if "position" in req]
    paired = {i for i, (_, t) in pairs} | {t for _, (_, t) in pairs}
    if len(paired) != 2 * len(pairs):
        raise ValueError(f"metadata item {prompt!r}: an object takes part in several positions")
    for _ in range(200):
        if cfg.layout == "grid":
            cells = _cells_for(rng, cfg, [len(group) for group in specs], pairs)
            if cells is None:
                continue
            flat = [(spec, cell) for group, group_cells in zip(specs, cells) for spec, cell in zip(group, group_cells)]
            objects = _in_cells(rng, cfg, [spec for spec, _ in flat], [cell for _, cell in flat])
            scene = Scene(objects=tuple(objects[k] for k in rng.permutation(total)), **sample_background(rng, cfg))
            if claim_holds(scene, item, strict=True):
                return scene
            continue
        placed: list[WorldObject] = []
        for i, (relation, target) in pairs:
            a, b = _place_pair(rng, cfg, specs[i][0], specs[target][0], relation, size_range)
            if not (_fits(a, placed, cfg.min_gap, cfg.edge_margin) and _fits(b, placed, cfg.min_gap, cfg.edge_margin)):
                break
            placed += [a, b]
        else:
            rest = [spec for i, group in enumerate(specs) if i not in paired for spec in group]
            others = _place(rng, cfg, rest, placed, size_range)
            if others is not None:
                order = [int(k) for k in rng.permutation(total)]  # painting order carries no information
                objects = placed + others
                scene = Scene(objects=tuple(objects[k] for k in order), **sample_background(rng, cfg))
                if claim_holds(scene, item, strict=True):
                    return scene
    raise ValueError(f"metadata item {prompt!r}: could not build a scene satisfying it")


def demo_world_config(seed: int = 0) -> WorldConfig:
    """The world of `mirokit demo`: 32x32 images, at most one object per cell of a 2x2 grid (where things are
    is quick to learn; GenEval's six tasks keep their meaning), plain backgrounds, and heavy web-like noise:
    about 40% of captions wrong (colour, count, relation, a missing object), 10% of scenes with an object cut
    by the border, and each image degraded with probability 0.2 per kind (blur, JPEG, low contrast). No pixel
    noise: the world autoencoder (like any VAE) does not reproduce it, so its latents could not express the
    low quality scores it earns."""
    return WorldConfig(seed=seed, layout="grid", grid_cells=2, size_range=(0.15, 0.19), grid_jitter=0.03,
                       texture_prob=0.0, wrong_colour_rate=0.1, count_off_rate=0.1, swap_relation_rate=0.1,
                       missing_object_rate=0.1, cut_border_rate=0.1, blur_rate=0.2, pixel_noise_rate=0.0,
                       jpeg_rate=0.2, low_contrast_rate=0.2)

