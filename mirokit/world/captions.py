"""Captions of shapes-world scenes, with the GenEval-schema claim each caption makes.

GenEval's six templates, worded exactly as in its evaluation_metadata.jsonl ("an" before
"orange"), plus web-like free-form phrasings ("two red stars on a grey background"). A clean
caption mentions every object of the scene with its exact count, so its claim is true of the
scene; caption noise (`noise=`) turns one part of the claim false, or drops a class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mirokit.world.scenes import Scene, WorldObject, box_relations
from mirokit.world.vocab import COLOURS, NUMBERS, PLURALS

GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
CAPTION_NOISE = ("wrong_colour", "count_off", "swap_relation", "missing_object")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
_FREE_RELATION = {"left of": ("to the left of", "left of"), "right of": ("to the right of", "right of"),
                  "above": ("above", "over"), "below": ("below", "under")}


@dataclass(frozen=True)
class Group:
    """All objects of one class as a caption names them."""

    shape: str
    """class name"""
    count: int
    """how many objects the caption claims"""
    colour: str | None = None
    """colour the caption may state (None: the objects differ in colour, or it is not stated)"""


def article(word: str) -> str:
    """GenEval's article: "an" before a vowel ("an orange star"), else "a"."""
    return "an" if word[:1] in "aeiou" else "a"


def phrase(group: Group, *, colour: bool = True) -> str:
    """"a red star", "two stars", "an orange ring" (colour only when given and `colour`)."""
    noun = group.shape if group.count == 1 else PLURALS[group.shape]
    words = ([group.colour] if colour and group.colour else []) + [noun]
    lead = article(words[0]) if group.count == 1 else NUMBERS[group.count]
    return " ".join([lead, *words])


def _req(group: Group, colour: bool) -> dict:
    req = {"class": group.shape, "count": group.count}
    if colour and group.colour:
        req["color"] = group.colour
    return req


def _claim(tag: str, groups: list[Group], relation: str | None, colour: list[bool], prompt: str) -> dict:
    """GenEval-schema metadata; with a relation, groups are (A, B) and include is [B, A + position]."""
    include = [_req(g, c) for g, c in zip(groups, colour)]
    if relation is not None:
        include = [include[1], {**include[0], "position": [relation, 0]}]
    exclude = [{"class": g.shape, "count": g.count + 1} for g in groups if g.count >= 2]
    out = {"tag": tag, "include": include}
    if exclude:
        out["exclude"] = exclude
    out["prompt"] = prompt
    return out


def geneval_prompt(tag: str, groups: list[Group], relation: str | None = None) -> tuple[str, dict]:
    """A GenEval template filled with groups -> (prompt, metadata), worded like GenEval's file.

    single_object: [X]; two_object: [X, Y]; counting: [X with count 2-4]; colors: [coloured X];
    position: [A, B] and A's `relation` to B ("a photo of a A right of a B"); color_attr: [X, Y] coloured.
    """
    n = {"single_object": 1, "counting": 1, "colors": 1}.get(tag, 2)
    if tag not in GENEVAL_TAGS or len(groups) != n:
        raise ValueError(f"geneval_prompt: tag {tag!r} does not take {len(groups)} group(s)")
    if (tag == "counting") != (groups[0].count >= 2) or any(g.count != 1 for g in groups[1:]):
        raise ValueError(f"geneval_prompt: counts {[g.count for g in groups]} do not fit tag {tag!r}")
    coloured = tag in ("colors", "color_attr")
    if coloured and any(g.colour is None for g in groups):
        raise ValueError(f"geneval_prompt: tag {tag!r} needs a colour for every group")
    if (tag == "position") != (relation is not None):
        raise ValueError("geneval_prompt: a relation goes with tag 'position' only")
    parts = [phrase(g, colour=coloured) for g in groups]
    text = "a photo of " + (f"{parts[0]} {relation} {parts[1]}" if relation else " and ".join(parts))
    return text, _claim(tag, groups, relation, [coloured] * len(groups), text)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def free_form_caption(groups: list[Group], rng: np.random.Generator, *, relation: str | None = None,
                      show_colour: list[bool] | None = None, background: str = "grey") -> tuple[str, dict]:
    """A web-like caption naming every group -> (caption, metadata with tag "free_form").

    With a relation (two single groups: A `relation` B) the caption states it; `show_colour[i]`
    says whether group i's colour is written (default: when it has one).
    """
    show = [g.colour is not None for g in groups] if show_colour is None else [
        s and g.colour is not None for s, g in zip(show_colour, groups)]
    parts = [phrase(g, colour=s) for g, s in zip(groups, show)]
    pick = int(rng.random() * 4)
    if relation is not None:
        words = _FREE_RELATION[relation][int(rng.random() * 2)]
        text = f"{parts[0]} {words} {parts[1]}"
        text = [text, f"{text} on a {background} background", f"a picture of {text}", text][pick]
    else:
        listed = _join(parts)
        if len(groups) == 2 and all(g.count == 1 for g in groups) and rng.random() < 0.3:
            listed = f"{parts[0]} next to {parts[1]}"
        text = [f"{listed} on a {background} background", listed, f"a picture of {listed}",
                f"{listed}, simple flat shapes"][pick]
    return text, _claim("free_form", groups, relation, show, text)


def clear_relation(a: WorldObject, b: WorldObject) -> str | None:
    """The relation of A to B when it is unambiguous (None otherwise): along the dominant axis of the
    centre offset (at least 1.5x the other axis) and true under a strict version of GenEval's rule."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dx) >= 1.5 * abs(dy):
        relation = "left of" if dx < 0 else "right of"
    elif abs(dy) >= 1.5 * abs(dx):
        relation = "above" if dy < 0 else "below"
    else:
        return None
    return relation if relation in box_relations(a.box, b.box, threshold=0.15, cut=0.6) else None


def describe_scene(scene: Scene) -> tuple[list[Group], str | None]:
    """Complete description: one Group per class (order of first appearance, exact counts, colour when
    all its objects share it) and, for two single objects of different classes, the clear relation
    of the first to the second (or None)."""
    groups: dict[str, list[WorldObject]] = {}
    for obj in scene.objects:
        groups.setdefault(obj.shape, []).append(obj)
    described = [Group(shape, len(objs), objs[0].colour if len({o.colour for o in objs}) == 1 else None)
                 for shape, objs in groups.items()]
    relation = None
    if len(scene.objects) == 2 and len(described) == 2:
        relation = clear_relation(scene.objects[0], scene.objects[1])
    return described, relation


def caption_noise_feasible(scene: Scene, kind: str) -> bool:
    """Whether caption noise `kind` can be applied to this scene's complete description."""
    if kind not in CAPTION_NOISE:
        raise ValueError(f"unknown caption noise {kind!r}; known: {', '.join(CAPTION_NOISE)}")
    groups, relation = describe_scene(scene)
    if kind == "swap_relation":
        return relation is not None
    if kind == "missing_object":
        return len(groups) >= 2
    return len(groups) >= 1


def _apply_noise(kind, groups, relation, scene, rng):
    """Falsify one part of the description -> (groups, relation, forced-colour group or None, record)."""
    forced = None
    if kind == "wrong_colour":
        k = int(rng.random() * len(groups))
        present = {o.colour for o in scene.objects}
        absent = [c for c in COLOURS if c not in present]
        claimed = absent[int(rng.random() * len(absent))]
        record = {"class": groups[k].shape, "true": groups[k].colour, "claimed": claimed}
        groups[k], forced = replace(groups[k], colour=claimed), k
    elif kind == "count_off":
        k = int(rng.random() * len(groups))
        true = groups[k].count
        options = [c for c in (true - 1, true + 1) if 2 <= c <= max(NUMBERS)]
        claimed = options[int(rng.random() * len(options))]
        record = {"class": groups[k].shape, "true": true, "claimed": claimed}
        groups[k], relation = replace(groups[k], count=claimed), None
    elif kind == "swap_relation":
        record = {"true": relation, "claimed": OPPOSITE[relation]}
        relation = OPPOSITE[relation]
    else:  # missing_object: drop every object of one class
        k = int(rng.random() * len(groups))
        record = {"omitted": groups[k].shape, "count": groups[k].count}
        groups, relation = groups[:k] + groups[k + 1:], None
    return groups, relation, forced, record


def caption_scene(scene: Scene, rng: np.random.Generator, *, noise: str | None = None,
                  free_form_prob: float = 0.3) -> tuple[str, dict]:
    """Caption a scene -> (caption, GenEval-schema metadata of what the caption claims).

    Picks a template consistent with the scene: GenEval's (single_object / colors for one object,
    counting for one class, two_object / color_attr / position for two single objects in a clear
    relation) or, with probability `free_form_prob` and whenever none fits, a free-form phrasing
    (tag "free_form"). With `noise` (one of CAPTION_NOISE) the caption is falsified accordingly
    and metadata["noise"] = {kind: what changed}; infeasible noise raises ValueError.
    """
    if not scene.objects:
        raise ValueError("caption_scene: the scene has no objects")
    if noise is not None and not caption_noise_feasible(scene, noise):
        raise ValueError(f"caption_scene: noise {noise!r} does not apply to this scene")
    groups, relation = describe_scene(scene)
    if relation is not None and rng.random() < 0.5:  # name either object first
        groups, relation = groups[::-1], OPPOSITE[relation]
    forced, record = None, None
    if noise is not None:
        groups, relation, forced, record = _apply_noise(noise, groups, relation, scene, rng)
    singles = all(g.count == 1 for g in groups)
    coloured = all(g.colour is not None for g in groups)
    fits = {
        "single_object": len(groups) == 1 and singles and forced is None,
        "colors": len(groups) == 1 and singles and coloured,
        "counting": len(groups) == 1 and not singles and forced is None,
        "two_object": len(groups) == 2 and singles and forced is None,
        "color_attr": len(groups) == 2 and singles and coloured,
        "position": len(groups) == 2 and singles and relation is not None and forced is None,
    }
    if noise == "swap_relation":  # the caption must state the (swapped) relation
        fits = {"position": fits["position"]}
    candidates = [tag for tag in GENEVAL_TAGS if fits.get(tag)]
    if candidates and rng.random() >= free_form_prob:
        tag = candidates[int(rng.random() * len(candidates))]
        caption, metadata = geneval_prompt(tag, groups, relation if tag == "position" else None)
    else:
        show = [k == forced or rng.random() < 0.75 for k in range(len(groups))]
        if relation is not None and noise != "swap_relation" and rng.random() < 0.5:
            relation = None  # free-form captions often leave the layout unsaid
        background = "grey" if scene.texture == 0 else "textured grey"
        caption, metadata = free_form_caption(groups, rng, relation=relation, show_colour=show,
                                              background=background)
    if record is not None:
        metadata["noise"] = {noise: record}
    return caption, metadata
