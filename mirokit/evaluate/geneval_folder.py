"""GenEval on a folder of images, with any detector: scan, detect in batches, GenEval's rules, per-image records.

The folder has GenEval's layout: `FOLDER/00000/metadata.jsonl` (one GenEval record) and
`FOLDER/00000/samples/0000.png ...`. As in GenEval's `evaluate_images.py`, prompt folders are the
sub-folders named by digits and images the files named by digits (png, jpg, jpeg or webp here; GenEval
reads only png). A detector is any object with

    detect(images: list[PIL.Image]) -> list[{class: [detection]} or [detection with .cls]]  (one per image)

where a detection has `.box` (x0, y0, x1, y1), `.score` and, for colour clauses without a colour
classifier, `.colour`. A colour classifier is any object with
`classify(image, detections, classname) -> [colour word]` (GenEval: CLIP on the object's masked crop).

A per-image record has GenEval's fields {"filename" (relative to FOLDER), "tag", "prompt", "correct",
"reason", "metadata" (the record as a JSON string), "details" (JSON string: class -> [[x0, y0, x1, y1,
score], ...] of the detections the rules kept)}, plus "detections" (every raw detection) when the
detector's detections have `to_json()`. An unreadable image gives {"filename", "tag", "prompt",
"correct": None, "error"}; a prompt folder without readable metadata or images is skipped. Both are
counted and reported, never abort the run and do not enter the accuracies.

Resume, shards and ranks (writing to disk) are in mirokit.evaluate.geneval_run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mirokit.atomic import write_atomic, write_json_atomic
from mirokit.evaluate.geneval_rules import (
    DEFAULT_RULES,
    RuleConfig,
    box_of,
    evaluate_detections,
    filter_detections,
    score_of,
    tag_counts,
    validate_metadata,
)

IMAGE_NAME = re.compile(r"^\d+\.(png|jpe?g|webp)$", re.IGNORECASE)
"""image files of a samples/ folder (GenEval: r"\\d+\\.png")"""


class Detector(Protocol):
    """What the folder evaluation needs from an object detector."""

    def detect(self, images: list) -> list:
        """N PIL RGB images -> N detection sets ({class: [detection]} or a flat list of detections with .cls)."""


class ColourClassifier(Protocol):
    """What colour clauses need: one colour word per detection."""

    def classify(self, image: Any, detections: list, classname: str) -> list[str]:
        """image: the PIL RGB image; detections: the clause's top-`count` detections of `classname`."""


@dataclass(frozen=True)
class ImageItem:
    """One image of the folder to evaluate."""

    prompt_index: int
    """position of its prompt folder among the folder's prompt folders (sorted by name): the sharding key"""
    filename: str
    """path relative to the folder, e.g. "00000/samples/0000.png" (the record's "filename")"""
    path: Path
    """absolute path of the image file"""
    metadata: dict
    """the prompt's GenEval record"""


@dataclass
class FolderScan:
    """What `scan_folder` found."""

    root: Path
    """the folder"""
    items: list[ImageItem]
    """every image to evaluate, in (prompt folder, file name) order"""
    problems: list[str]
    """one line per skipped prompt folder"""
    skipped: int
    """prompt folders skipped (no or unreadable metadata, no images)"""


def read_metadata(prompt_dir: Path) -> dict:
    """The GenEval record of a prompt folder (first non-empty line of metadata.jsonl), validated."""
    path = prompt_dir / "metadata.jsonl"
    if not path.is_file():
        raise ValueError(f"{prompt_dir.name}: no metadata.jsonl")
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        metadata = json.loads(lines[0]) if lines else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{prompt_dir.name}: metadata.jsonl is not valid JSON ({err})") from None
    if metadata is None:
        raise ValueError(f"{prompt_dir.name}: metadata.jsonl is empty")
    try:
        validate_metadata(metadata)
    except ValueError as err:
        raise ValueError(f"{prompt_dir.name}: {err}") from None
    return metadata


def scan_folder(folder: str | Path) -> FolderScan:
    """List the images of a GenEval-layout folder; a missing folder raises FileNotFoundError."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"GenEval folder not found: {root}")
    items, problems, skipped = [], [], 0
    prompt_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    for index, prompt_dir in enumerate(prompt_dirs):
        try:
            metadata = read_metadata(prompt_dir)
        except ValueError as err:
            skipped += 1
            problems.append(str(err))
            continue
        samples = prompt_dir / "samples"
        files = sorted(p for p in samples.iterdir() if p.is_file() and IMAGE_NAME.match(p.name)) \
            if samples.is_dir() else []
        if not files:
            skipped += 1
            problems.append(f"{prompt_dir.name}: no images in samples/")
            continue
        items += [ImageItem(prompt_index=index, filename=p.relative_to(root).as_posix(), path=p.resolve(),
                            metadata=metadata) for p in files]
    return FolderScan(root=root, items=items, problems=problems, skipped=skipped)


def shard_items(items: list[ImageItem], shard_index: int, num_shards: int) -> list[ImageItem]:
    """The items of prompt folders i with i % num_shards == shard_index (a prompt's images stay together)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index {shard_index} must be in [0, {num_shards}) with num_shards >= 1")
    return [it for it in items if it.prompt_index % num_shards == shard_index]


def load_image(path: Path):
    """path -> PIL RGB image, EXIF orientation applied (GenEval: ImageOps.exif_transpose; mmcv's cv2 reader
    rotates too); any decoding problem raises ValueError naming the file."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except Exception as err:  # PIL raises many types for corrupt files
        raise ValueError(f"{path.name}: unreadable image ({type(err).__name__}: {err})") from None


def _flat(detections: Any) -> list:
    return [d for dets in detections.values() for d in dets] if isinstance(detections, dict) else list(detections)


def make_record(item: ImageItem, image: Any, detections: Any, *, colour: ColourClassifier | None = None,
                rules: RuleConfig = DEFAULT_RULES) -> dict:
    """GenEval's verdict on one image -> its record (see the module docstring).

    image: PIL RGB image (for the colour classifier); detections: the detector's output for it.
    """
    metadata = item.metadata
    kept = filter_detections(detections, metadata["tag"], rules)
    colour_of = None if colour is None else (lambda objs, cls: colour.classify(image, objs, cls))
    correct, reason = evaluate_detections(kept, metadata, colour_of=colour_of, rules=rules, prefiltered=True)
    details = {cls: [[round(v, 4) for v in box_of(d)] + [round(score_of(d), 6)] for d in dets]
               for cls, dets in kept.items()}
    record = {"filename": item.filename, "tag": metadata["tag"], "prompt": metadata.get("prompt", ""),
              "correct": bool(correct), "reason": reason, "metadata": json.dumps(metadata),
              "details": json.dumps(details)}
    raw = _flat(detections)
    if raw and all(hasattr(d, "to_json") for d in raw):
        record["detections"] = [d.to_json() for d in raw]
    return record


def error_record(item: ImageItem, message: str) -> dict:
    """The record of an image that could not be evaluated."""
    return {"filename": item.filename, "tag": item.metadata["tag"], "prompt": item.metadata.get("prompt", ""),
            "correct": None, "error": message}


def _detect_isolating(detector: Detector, images: list) -> list:
    """detector.detect(images), retried image by image on a ValueError: a failure is ("error", message)."""
    try:
        out = detector.detect(images)
        if len(out) != len(images):
            raise RuntimeError(f"the detector returned {len(out)} results for {len(images)} images")
        return out
    except ValueError:
        if len(images) == 1:
            raise
    results = []
    for image in images:
        try:
            results.append(detector.detect([image])[0])
        except ValueError as err:
            results.append(("error", f"detector: {err}"))
    return results


def evaluate_items(items: Iterable[ImageItem], *, detector: Detector, colour: ColourClassifier | None = None,
                   rules: RuleConfig = DEFAULT_RULES, batch_size: int = 8, progress: bool = True,
                   desc: str = "GenEval", loader: Callable[[ImageItem], Any] | None = None) -> Iterator[dict]:
    """Records of `items`, in order, detecting `batch_size` images at a time (a tqdm bar over images).

    loader(item) -> PIL RGB image (default: load_image(item.path)); a ValueError makes an error record.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=None if progress else True)
    try:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            loaded, records = [], {}
            for k, item in enumerate(batch):
                try:
                    loaded.append((k, loader(item) if loader else load_image(item.path)))
                except ValueError as err:
                    records[k] = error_record(item, f"{item.path.parent.parent.name}/{err}")
            if loaded:
                results = _detect_isolating(detector, [im for _, im in loaded])
                for (k, image), dets in zip(loaded, results):
                    if isinstance(dets, tuple) and dets and dets[0] == "error":
                        records[k] = error_record(batch[k], f"{batch[k].filename}: {dets[1]}")
                    else:
                        records[k] = make_record(batch[k], image, dets, colour=colour, rules=rules)
            for k in range(len(batch)):
                yield records[k]
            bar.update(len(batch))
    finally:
        bar.close()


def summarize_records(records: list[dict], problems: list[str], skipped: int, rules: RuleConfig,
                      root: Path | str) -> dict:
    """Summary of evaluated records: {"overall" (mean of per-tag accuracies, GenEval's score), "per_tag",
    "counts": {tag: {"correct", "total"}}, "image_accuracy", "prompt_accuracy" (a prompt, i.e. a distinct
    metadata record as in summary_scores.py, is right if any of its images is), "images": {"evaluated",
    "errors"}, "prompts": {"evaluated", "skipped"}, "problems" (first 50: skipped folders, then image
    errors), "rules", "folder"}; overall and accuracies are None when nothing was evaluated."""
    evaluated = [r for r in records if r.get("correct") is not None]
    counts = tag_counts(evaluated)
    per_tag = {tag: c["correct"] / c["total"] for tag, c in counts.items()}
    by_prompt: dict[str, bool] = {}
    for r in evaluated:
        key = r.get("metadata") or r["prompt"]
        by_prompt[key] = by_prompt.get(key, False) or bool(r["correct"])
    errors = [r["error"] for r in records if r.get("correct") is None]
    return {
        "overall": float(np.mean(list(per_tag.values()))) if per_tag else None,
        "per_tag": per_tag,
        "counts": counts,
        "image_accuracy": float(np.mean([r["correct"] for r in evaluated])) if evaluated else None,
        "prompt_accuracy": float(np.mean(list(by_prompt.values()))) if by_prompt else None,
        "images": {"evaluated": len(evaluated), "errors": len(errors)},
        "prompts": {"evaluated": len(by_prompt), "skipped": skipped},
        "problems": (list(problems) + errors)[:50],
        "rules": asdict(rules),
        "folder": str(root),
    }


def evaluate_folder(folder: str | Path, *, detector: Detector, colour: ColourClassifier | None = None,
                    rules: RuleConfig = DEFAULT_RULES, batch_size: int = 8,
                    progress: bool = False) -> tuple[list[dict], dict]:
    """Evaluate every image of a GenEval-layout folder in memory -> (records, summary_records(...))."""
    scan = scan_folder(folder)
    records = list(evaluate_items(scan.items, detector=detector, colour=colour, rules=rules,
                                  batch_size=batch_size, progress=progress))
    return records, summarize_records(records, scan.problems, scan.skipped, rules, scan.root)


def records_path(out: str | Path) -> Path:
    """The per-image JSONL beside a summary path: results.json -> results.jsonl."""
    out = Path(out)
    return out.with_suffix(".jsonl") if out.suffix != ".jsonl" else out.with_name(out.stem + ".records.jsonl")


def write_results(records: list[dict], summary: dict, out: str | Path) -> tuple[Path, Path]:
    """Write the summary to `out` (JSON) and the records to `records_path(out)` -> both paths."""
    out = Path(out)
    lines = write_atomic(records_path(out), "".join(json.dumps(r) + "\n" for r in records))
    return write_json_atomic(out, summary), lines


def format_summary(summary: dict) -> str:
    """Human-readable table of a summary (GenEval's summary_scores.py style)."""
    rows = []
    for tag, acc in summary["per_tag"].items():
        c = summary["counts"][tag]
        rows.append(f"{tag:<16} = {acc:7.2%} ({c['correct']} / {c['total']})")
    overall = summary["overall"]
    rows.append(f"{'overall':<16} = {overall:7.2%} (mean over tags)" if overall is not None else "overall: no images")
    errors, skipped = summary["images"]["errors"], summary["prompts"]["skipped"]
    if errors or skipped:
        rows.append(f"problems: {errors} unreadable image(s), {skipped} skipped prompt folder(s)")
    return "\n".join(rows)
