"""GenEval's rules, detector-agnostic: filter detections, check include/exclude clauses, aggregate per tag.

One implementation shared by ShapesEval (the shapes world's pixel detector) and the real GenEval
evaluator (Mask2Former + CLIP colours). Semantics follow GenEval's `evaluate_images.py` and
`summary_scores.py` (Ghosh et al., 2023):

- detections per class are kept if score > 0.3 (> 0.9 for the "counting" tag), sorted by score,
  at most 16 per class (optional NMS, off by default as in GenEval);
- include clauses are ANDed: at least `count` objects of the class; with `color`, at least `count`
  of the top-`count` detections have that colour; with `position` [relation, group], every one of
  the top-`count` objects stands in that relation to every object of the referenced include
  clause, which must itself have matched;
- exclude clauses are ORed: the image fails if at least `count` objects of the class are found;
- the overall score is the mean of the per-tag accuracies.

A detection is "Detection-like": an object with `.box` (x0, y0, x1, y1), `.score` and, for colour
clauses without `colour_of`, `.colour`; or a sequence (x0, y0, x1, y1[, score]) as GenEval's
mmdet arrays. Boxes may be pixels or image fractions; relations are scale-free except GenEval's
"no offset at all" tolerance (1e-3 in box units, negligible either way).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
"""GenEval's colour words, in GenEval's order (used to list found colours in reasons)."""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
"""GenEval's position relations."""


@dataclass(frozen=True, kw_only=True)
class RuleConfig:
    """GenEval's evaluation options (defaults = GenEval's defaults)."""

    threshold: float = 0.3
    """keep detections with score > threshold (every tag but counting)"""
    counting_threshold: float = 0.9
    """keep detections with score > counting_threshold for the "counting" tag"""
    max_objects: int = 16
    """at most this many detections per class (the highest scores)"""
    nms_threshold: float = 1.0
    """drop a detection whose IoU with a kept one of its class is >= this; 1.0 = no NMS"""
    position_threshold: float = 0.1
    """centre offsets are shrunk by this fraction of the summed box sizes before the relation test"""

    @property
    def min_score(self) -> float:
        """The lowest score any tag keeps: a detector may drop what scores below it."""
        return min(self.threshold, self.counting_threshold)


DEFAULT_RULES = RuleConfig()


def checked_rules(*, detector_threshold: float = 0.3, counting_threshold: float = 0.9,
                  position_threshold: float = 0.1, max_objects: int = 16) -> RuleConfig:
    """The RuleConfig of an evaluator's options (`mirokit eval geneval | shapes`); a value out of range is a
    one-line ValueError naming its flag: thresholds in [0, 1], position threshold >= 0, max objects >= 1."""
    for flag, value in (("--detector-threshold", detector_threshold), ("--counting-threshold", counting_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} must be in [0, 1]")
    if position_threshold < 0 or max_objects < 1:
        raise ValueError("--position-threshold must be >= 0 and --max-objects >= 1")
    return RuleConfig(threshold=detector_threshold, counting_threshold=counting_threshold,
                      position_threshold=position_threshold, max_objects=max_objects)


def box_of(det: Any) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a Detection-like object or a (x0, y0, x1, y1[, score]) sequence."""
    box = getattr(det, "box", None)
    if box is None:
        box = det
    try:
        x0, y0, x1, y1 = (float(v) for v in list(box)[:4])
    except (TypeError, ValueError):
        raise ValueError(f"detection {det!r} has no (x0, y0, x1, y1) box") from None
    return x0, y0, x1, y1


def score_of(det: Any) -> float:
    """Confidence of a Detection-like object (`.score`, or item 4 of a sequence; 1.0 if absent)."""
    score = getattr(det, "score", None)
    if score is not None:
        return float(score)
    if hasattr(det, "box"):
        return 1.0
    try:
        return float(det[4]) if len(det) > 4 else 1.0
    except (TypeError, ValueError):
        raise ValueError(f"detection {det!r} has no score") from None


def compute_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes (continuous coordinates)."""
    iw = max(min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]), 0.0)
    ih = max(min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]), 0.0)
    inter = iw * ih
    union = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) + (box_b[2] - box_b[0]) * (box_b[3] - box_b[1]) - inter
    return inter / union if union > 0 else 0.0


def filter_detections(detections: Mapping[str, Iterable[Any]] | Iterable[Any], tag: str,
                      rules: RuleConfig = DEFAULT_RULES) -> dict[str, list]:
    """GenEval's detection filter.

    detections: {class: [Detection-like]} or a flat list of objects with `.cls`; tag: the prompt's tag.
    Returns {class: [kept detections sorted by decreasing score]}, classes with none kept omitted.
    """
    if not isinstance(detections, Mapping):
        grouped: dict[str, list] = {}
        for det in detections:
            cls = getattr(det, "cls", None)
            if not isinstance(cls, str):
                raise ValueError(f"detection {det!r} has no class name (.cls); pass a dict class -> detections")
            grouped.setdefault(cls, []).append(det)
        detections = grouped
    threshold = rules.counting_threshold if tag == "counting" else rules.threshold
    kept: dict[str, list] = {}
    for cls, dets in detections.items():
        scored = [(score_of(d), i, d) for i, d in enumerate(dets)]
        # Stable sort on score only: ties keep the detector's order, as numpy's argsort[::-1] roughly does.
        order = [d for s, _, d in sorted(scored, key=lambda t: -t[0]) if s > threshold][: rules.max_objects]
        out: list = []
        while order:
            best = order.pop(0)
            out.append(best)
            if rules.nms_threshold < 1.0:
                order = [d for d in order if compute_iou(box_of(best), box_of(d)) < rules.nms_threshold]
        if out:
            kept[cls] = out
    return kept


def relative_position(box_a: Sequence[float], box_b: Sequence[float],
                      position_threshold: float = DEFAULT_RULES.position_threshold) -> set[str]:
    """Relations of box A relative to box B (GenEval): subset of {"left of", "right of", "above", "below"}.

    box_a, box_b: (x0, y0, x1, y1) with y growing downwards. The centre offset is shrunk per axis by
    position_threshold * (width_a + width_b) (heights for y), then divided by the raw offset's norm;
    a component beyond +-0.5 gives the relation.
    """
    boxes = np.asarray([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)
    centre_a, centre_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = centre_a - centre_b
    revised = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def _default_colour_of(objects: list, classname: str) -> list[str]:
    colours = []
    for obj in objects:
        colour = getattr(obj, "colour", None) or getattr(obj, "color", None)
        if not isinstance(colour, str):
            raise ValueError(f"{classname} detection {obj!r} has no colour; pass colour_of=")
        colours.append(colour)
    return colours


def validate_metadata(metadata: Mapping) -> None:
    """Raise a one-line ValueError naming the bad item if `metadata` is not a GenEval prompt record."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata {metadata!r} is not a dict")
    name = metadata.get("prompt", "<no prompt>")
    if not isinstance(metadata.get("tag"), str):
        raise ValueError(f"metadata {name!r}: missing 'tag'")
    includes = metadata.get("include", [])
    for part in ("include", "exclude"):
        clauses = metadata.get(part, [])
        if not isinstance(clauses, list):
            raise ValueError(f"metadata {name!r}: {part!r} must be a list")
        for i, req in enumerate(clauses):
            where = f"metadata {name!r}: {part}[{i}]"
            if not isinstance(req, Mapping) or not isinstance(req.get("class"), str):
                raise ValueError(f"{where} has no 'class'")
            count = req.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{where}: count {count!r} must be an integer >= 1")
            if part == "exclude":
                continue
            if "color" in req and not isinstance(req["color"], str):
                raise ValueError(f"{where}: color {req['color']!r} must be a string")
            if "position" in req:
                pos = req["position"]
                if (not isinstance(pos, (list, tuple)) or len(pos) != 2 or pos[0] not in RELATIONS
                        or not isinstance(pos[1], int) or not 0 <= pos[1] < i):
                    raise ValueError(f"{where}: position {pos!r} must be [relation, index of an earlier include]")
    if not includes and not metadata.get("exclude"):
        raise ValueError(f"metadata {name!r}: no include or exclude clause")


def check_clauses(detections: Mapping[str, list], metadata: Mapping, *,
                  colour_of: Callable[[list, str], list[str]] | None = None,
                  rules: RuleConfig = DEFAULT_RULES) -> list[tuple[bool, str]]:
    """Per-clause verdicts, include clauses first then exclude clauses: [(satisfied, reason or "")].

    detections: {class: [Detection-like]} already filtered and sorted by decreasing score (see
    filter_detections). colour_of(objects, classname) -> one colour word per object; default reads
    each object's `.colour`. An include clause with a position is satisfied only if the clause it
    refers to is.
    """
    colour_of = colour_of or _default_colour_of
    verdicts: list[tuple[bool, str]] = []
    matched_groups: list[list | None] = []
    for req in metadata.get("include", []):
        classname, count = req["class"], req["count"]
        found = list(detections.get(classname, []))[:count]
        reason = ""
        if len(found) < count:
            reason = f"expected {classname}>={count}, found {len(found)}"
        else:
            if "color" in req:
                colours = list(colour_of(found, classname))
                n_right = colours.count(req["color"])
                if n_right < count:
                    others = ", ".join(f"{colours.count(c)} {c}" for c in COLORS if c in colours)
                    reason = (f"expected {req['color']} {classname}>={count}, "
                              f"found {n_right} {req['color']}; and {others}")
            if "position" in req and not reason:
                expected, target = req["position"]
                group = matched_groups[target] if target < len(matched_groups) else None
                if group is None:
                    reason = f"no target for {classname} to be {expected}"
                else:
                    for obj in found:
                        for target_obj in group:
                            rels = relative_position(box_of(obj), box_of(target_obj), rules.position_threshold)
                            if expected not in rels:
                                found_rels = " and ".join(sorted(rels))
                                reason = f"expected {classname} {expected} target, found {found_rels} target"
                                break
                        if reason:
                            break
        verdicts.append((not reason, reason))
        matched_groups.append(None if reason else found)
    for req in metadata.get("exclude", []):
        classname, n_found = req["class"], len(detections.get(req["class"], []))
        ok = n_found < req["count"]
        verdicts.append((ok, "" if ok else f"expected {classname}<{req['count']}, found {n_found}"))
    return verdicts


def evaluate_detections(detections_by_class: Mapping[str, Iterable[Any]] | Iterable[Any], metadata: Mapping, *,
                        colour_of: Callable[[list, str], list[str]] | None = None,
                        rules: RuleConfig = DEFAULT_RULES, prefiltered: bool = False) -> tuple[bool, str]:
    """GenEval's verdict for one image: (correct, reasons joined by newlines; "" when correct).

    detections_by_class: {class: [Detection-like]} (or a flat list of objects with `.cls`), raw
    detector output unless prefiltered=True; metadata: one GenEval record (tag, include, exclude,
    prompt). colour_of(objects, classname) -> colour words (default: each object's `.colour`).
    """
    validate_metadata(metadata)
    dets = detections_by_class if prefiltered else filter_detections(detections_by_class, metadata["tag"], rules)
    verdicts = check_clauses(dets, metadata, colour_of=colour_of, rules=rules)
    return all(ok for ok, _ in verdicts), "\n".join(r for ok, r in verdicts if not ok)


def tag_counts(results: Iterable[Mapping]) -> dict[str, dict[str, int]]:
    """{tag: {"correct": n, "total": n}} in order of first appearance; results: dicts with tag, correct."""
    counts: dict[str, dict[str, int]] = {}
    for i, res in enumerate(results):
        if "tag" not in res or "correct" not in res:
            raise ValueError(f"result {i} lacks 'tag' or 'correct'")
        entry = counts.setdefault(str(res["tag"]), {"correct": 0, "total": 0})
        entry["correct"] += bool(res["correct"])
        entry["total"] += 1
    return counts


def summarize(results: Iterable[Mapping]) -> dict[str, float]:
    """GenEval's summary: {"overall": mean of per-tag accuracies, "<tag>": accuracy, ...} (NaN overall if empty)."""
    counts = tag_counts(results)
    scores = {tag: c["correct"] / c["total"] for tag, c in counts.items()}
    overall = float(np.mean(list(scores.values()))) if scores else math.nan
    return {"overall": overall, **scores}
