"""Captions of the shapes world -> GenEval-style clauses (include/exclude), liberally.

Understands GenEval's templates over the shape vocabulary ("a photo of a star", "a photo of a star
and a ring", "a photo of two stars", "a photo of a red star", "a photo of a star left of a ring",
"a photo of a red star and a blue ring") and free-form phrasings ("two red stars on a grey
background", "a green ring next to a blue cross", "a cross to the right of two squares", "three
yellow triangles, a ring"). Unknown filler words are skipped; a caption is unparseable (None) when
some object phrase names no shape or nothing at all is found.

The result is a GenEval metadata record: counted phrases ("two stars", also "one star") add an
exclude clause (all mentioned objects of the class + 1) like GenEval's counting prompts; "a star"
does not. When the same shape
appears in several include clauses with different colours, GenEval's colour rule (the top-k
detections of the class must have the colour) could never hold for all of them, so those clauses
use the colour-qualified class ("red star"), which world rewards index as well.
"""

from __future__ import annotations

import re

from mirokit.world.vocab import COLOURS, PLURALS, SHAPES

_NUMBERS = {"a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "pair": 2}
_EXPLICIT_ONE = {"one", "single"}
_SINGULAR = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}, "squares": "square", "crosss": "cross",
             "rings": "ring", "circles": "circle", "stars": "star", "triangles": "triangle"}
_COLOUR_ALIASES = {"violet": "purple", "magenta": "pink", "gold": "yellow"}
# Relation phrases, longest first so "to the left of" wins over "left of".
_RELATIONS = [
    ("to the left of", "left of"), ("on the left of", "left of"), ("left of", "left of"),
    ("to the right of", "right of"), ("on the right of", "right of"), ("right of", "right of"),
    ("on top of", "above"), ("above", "above"), ("over", "above"),
    ("underneath", "below"), ("beneath", "below"), ("below", "below"), ("under", "below"),
]
_SEPARATORS = r"\band\b|,|;|\bwith\b|\bnext to\b|\bbeside\b|\bbesides\b|\bnear\b|\bplus\b|\balongside\b"
_PREFIX = re.compile(r"^(?:(?:a|an)\s+)?(?:photo|picture|image|drawing|rendering|render|illustration)\s+"
                     r"(?:of|showing|with)\s+|^(?:there (?:is|are)|showing|shows)\s+")
_NOT_SHAPE = r"(?!(?:" + "|".join(sorted(_SINGULAR, key=len, reverse=True)) + r")\b)"
_BACKGROUND = re.compile(r"\b(?:(?:on|against|in front of)\s+)?(?:(?:a|an|the)\s+)?(?:" + _NOT_SHAPE
                         + r"[a-z]+\s+){0,3}background\b")


def _phrase(words: list[str]) -> dict | None:
    """["two", "red", "stars"] -> {"class": "star", "count": 2, "color": "red", "explicit": True}."""
    count, colour, shape, explicit = None, None, None, False
    for w in words:
        if w in _NUMBERS and count is None and shape is None:
            count, explicit = _NUMBERS[w], w not in ("a", "an")
        elif w.isdigit() and count is None and shape is None:
            count, explicit = int(w), True
        elif (w in COLOURS or w in _COLOUR_ALIASES) and shape is None:
            colour = _COLOUR_ALIASES.get(w, w)
        elif w in _SINGULAR:
            if shape is not None:
                return None  # two shapes in one phrase: ambiguous
            shape = _SINGULAR[w]
        # anything else (the, small, shiny, ...) is filler
    if shape is None or (count is not None and count < 1):
        return None
    out = {"class": shape, "count": count or 1, "explicit": explicit}
    if colour:
        out["color"] = colour
    return out


_RELATION_RE = re.compile(r"\b(" + "|".join(p for p, _ in _RELATIONS) + r")\b")
_RELATION_OF = dict(_RELATIONS)


def _mentions_object(words: list[str]) -> bool:
    """Whether a phrase names a shape, a count or a colour (else it is filler)."""
    return any(w in _SINGULAR or w in _NUMBERS or w.isdigit() or w in COLOURS or w in _COLOUR_ALIASES
               for w in words)


def _split_relations(segment: str) -> tuple[list[str], list[str]]:
    """"a star left of a ring above a cross" -> (["a star", "a ring", "a cross"], ["left of", "above"])."""
    parts = _RELATION_RE.split(segment)
    return [p.strip() for p in parts[0::2]], [_RELATION_OF[r] for r in parts[1::2]]


def parse_caption(caption: str) -> dict | None:
    """caption -> GenEval metadata {"tag", "include", "exclude", "prompt"}, or None if unparseable.

    Tags follow GenEval's categories: counting (any count >= 2 or an explicit "one"), position (a
    relation), color_attr (two or more coloured objects), colors (one coloured object), two_object,
    single_object.
    """
    if not isinstance(caption, str):
        return None
    text = caption.lower().replace("-", " ").replace("gray", "grey")
    text = re.sub(r"[^a-z0-9,; ]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _PREFIX.sub("", text)
    text = _BACKGROUND.sub(" ", text)
    objects: list[dict] = []
    relations: list[tuple[int, str, int]] = []

    def add(obj: dict) -> int:
        for i, other in enumerate(objects):
            if other == obj:
                return i
        objects.append(obj)
        return len(objects) - 1

    for segment in re.split(_SEPARATORS, text):
        segment = segment.strip()
        if not segment:
            continue
        phrases, rels = _split_relations(segment)
        if not rels and not _mentions_object(segment.split()):
            continue  # filler such as "simple flat shapes"
        parsed = [_phrase(p.split()) for p in phrases]
        if any(obj is None for obj in parsed):
            return None
        ids = [add(obj) for obj in parsed]
        relations += [(ids[k], rel, ids[k + 1]) for k, rel in enumerate(rels)]
    if not objects:
        return None
    return _to_metadata(caption, objects, relations)


def _to_metadata(caption: str, objects: list[dict], relations: list[tuple[int, str, int]]) -> dict:
    # Order includes so that every relation's target precedes its subject (GenEval refers back to
    # earlier clauses); a relation closing a cycle is dropped.
    order: list[int] = []
    visiting: set[int] = set()
    kept: list[tuple[int, str, int]] = []

    def visit(i: int) -> None:
        if i in order or i in visiting:
            return
        visiting.add(i)
        for s, rel, t in relations:
            if s == i and t not in visiting:
                visit(t)
                kept.append((s, rel, t))
        visiting.discard(i)
        order.append(i)

    for i in range(len(objects)):
        visit(i)
    pos_of: dict[int, int] = {}  # object -> index of its (first) include clause
    classes = [objects[i]["class"] for i in order]
    repeated = {c for c in classes if classes.count(c) > 1}
    include, exclude = [], []
    for old in order:
        obj = objects[old]
        clause: dict = {"class": obj["class"], "count": obj["count"]}
        if "color" in obj:
            if obj["class"] in repeated:
                clause["class"] = f"{obj['color']} {obj['class']}"
            else:
                clause["color"] = obj["color"]
        rels = [(rel, pos_of[t]) for s, rel, t in kept if s == old]
        pos_of[old] = len(include)
        if rels:
            clause["position"] = list(rels[0])
        include.append(clause)
        # A subject with several relations gets one duplicate clause per extra relation.
        include += [{**clause, "position": list(r)} for r in rels[1:]]
    # Counted classes ("two stars", "one ring") exclude one more object of the class, GenEval-style.
    for shape in dict.fromkeys(classes):
        mentions = [o for o in objects if o["class"] == shape]
        if any(o["count"] > 1 or o["explicit"] for o in mentions):
            exclude.append({"class": shape, "count": sum(o["count"] for o in mentions) + 1})
    coloured = sum("color" in o or " " in o["class"] for o in include)
    if exclude:
        tag = "counting"
    elif any("position" in c for c in include):
        tag = "position"
    elif coloured >= 2:
        tag = "color_attr"
    elif coloured == 1 and len(include) == 1:
        tag = "colors"
    else:
        tag = "single_object" if len(include) == 1 else "two_object"
    return {"tag": tag, "include": include, "exclude": exclude, "prompt": caption}
