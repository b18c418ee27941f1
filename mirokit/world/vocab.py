"""The shapes world's vocabulary: shape classes, GenEval's ten colours, counting words.

Colours are the RGB values the renderer paints with (before any degradation); the detector
classifies pixels against the same table. Names are GenEval's colour words.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "star")
"""Shape classes (the world's analogue of GenEval's COCO classes)."""

PLURALS: dict[str, str] = {
    "circle": "circles", "square": "squares", "triangle": "triangles",
    "cross": "crosses", "ring": "rings", "star": "stars",
}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 225, 30),
    "green": (40, 170, 60),
    "blue": (35, 75, 220),
    "purple": (135, 50, 185),
    "pink": (245, 140, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}
"""GenEval's ten colour words -> the RGB (0-255) the renderer uses."""

NUMBERS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
"""Counting words used by captions (GenEval counts 2-4)."""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
"""GenEval's position relations (relative to box centres, threshold 0.1)."""
