"""Scene description of the shapes world (pure data; the renderer and the detector agree on it).

Coordinates are fractions of the image side: x grows to the right, y grows downwards, so
"above" means a smaller y. An object's nominal box is (cx - size, cy - size, cx + size, cy + size).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorldObject:
    """One shape in a scene."""

    shape: str
    """a class from vocab.SHAPES"""
    colour: str
    """a colour word from vocab.COLOURS"""
    cx: float
    """centre x in [0, 1] (fraction of the image width)"""
    cy: float
    """centre y in [0, 1] (fraction of the image height; 0 = top)"""
    size: float
    """radius (half the box side) as a fraction of the image side"""
    rotation: float = 0.0
    """rotation in radians (ignored by rotation-invariant shapes)"""

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Nominal box (x0, y0, x1, y1) in [0, 1] image fractions."""
        return (self.cx - self.size, self.cy - self.size, self.cx + self.size, self.cy + self.size)


@dataclass(frozen=True)
class Scene:
    """A background and up to four objects."""

    objects: tuple[WorldObject, ...]
    """the shapes, painted in order (later ones on top)"""
    background: tuple[int, int, int] = (128, 128, 128)
    """base background colour, RGB 0-255"""
    texture: float = 0.0
    """amplitude (0-255 units) of a light background texture; 0 = plain"""
    texture_seed: int = 0
    """seed of the texture pattern"""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    """free-form provenance (e.g. which noise was applied); never read by the renderer"""


def scene_to_dict(scene: Scene) -> dict:
    """JSON-ready dict of a scene (objects as dicts; `meta` included as is)."""
    return {
        "objects": [
            {"shape": o.shape, "colour": o.colour, "cx": o.cx, "cy": o.cy, "size": o.size, "rotation": o.rotation}
            for o in scene.objects
        ],
        "background": list(scene.background),
        "texture": scene.texture,
        "texture_seed": scene.texture_seed,
        "meta": scene.meta,
    }


def scene_from_dict(data: dict) -> Scene:
    """Inverse of `scene_to_dict`; a malformed dict raises a one-line ValueError."""
    try:
        objects = tuple(WorldObject(**o) for o in data["objects"])
        return Scene(objects=objects, background=tuple(int(c) for c in data["background"]),
                     texture=float(data.get("texture", 0.0)), texture_seed=int(data.get("texture_seed", 0)),
                     meta=dict(data.get("meta", {})))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"scene dict is malformed: {err!r}") from None


def box_relations(box_a, box_b, *, threshold: float = 0.1, cut: float = 0.5) -> set[str]:
    """GenEval's position rule: the relations of box A relative to box B ({"left of", "above", ...}).

    Boxes are (x0, y0, x1, y1) with y growing downwards. The centre offset is shrunk by
    `threshold * (w_a + w_b)` (per axis, dims summed) and a relation holds when the shrunk offset,
    divided by the norm of the raw offset, exceeds `cut` along its axis. GenEval uses 0.1 and 0.5;
    larger values give a stricter (robust, "clear") version of the same rule.
    """
    ax0, ay0, ax1, ay1 = box_a
    bx0, by0, bx1, by1 = box_b
    offset = ((ax0 + ax1 - bx0 - bx1) / 2, (ay0 + ay1 - by0 - by1) / 2)
    dims = ((ax1 - ax0) + (bx1 - bx0), (ay1 - ay0) + (by1 - by0))
    revised = [max(abs(o) - threshold * d, 0.0) * (1 if o > 0 else -1) for o, d in zip(offset, dims)]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = (offset[0] ** 2 + offset[1] ** 2) ** 0.5
    dx, dy = revised[0] / norm, revised[1] / norm
    relations = set()
    if dx < -cut:
        relations.add("left of")
    if dx > cut:
        relations.add("right of")
    if dy < -cut:
        relations.add("above")
    if dy > cut:
        relations.add("below")
    return relations


def claim_holds(scene: Scene, item: dict, *, strict: bool = False) -> bool:
    """Whether a GenEval-schema claim (`include`/`exclude`) is true of the scene's parameters.

    GenEval's semantics on nominal boxes: each include needs at least `count` objects of its class
    (all of the `color` when given, all in `position` relative to every object of the target
    include); each exclude needs fewer than `count`. `strict` uses a robust position rule
    (threshold 0.15, cut 0.6) so the claim survives one-pixel box errors of a detector.
    """
    threshold, cut = (0.15, 0.6) if strict else (0.1, 0.5)
    groups = []
    for req in item.get("include", []):
        members = [o for o in scene.objects if o.shape == req["class"]]
        if "color" in req:
            members = [o for o in members if o.colour == req["color"]]
        if len(members) < req["count"]:
            return False
        groups.append(members)
    for req, members in zip(item.get("include", []), groups):
        if "position" in req:
            relation, target = req["position"]
            for a in members:
                for b in groups[target]:
                    if relation not in box_relations(a.box, b.box, threshold=threshold, cut=cut):
                        return False
    for req in item.get("exclude", []):
        if sum(o.shape == req["class"] for o in scene.objects) >= req["count"]:
            return False
    return True
