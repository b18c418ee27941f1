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
