"""ShapesEval: GenEval's protocol on the shapes world, with ShapesDetector in place of Mask2Former.

Reads a GenEval-layout folder (`FOLDER/00000/metadata.jsonl` holding one GenEval record,
`FOLDER/00000/samples/0000.png` ...), detects shapes in every sample, applies GenEval's rules
(geneval_rules) and aggregates GenEval's way (overall = mean of per-tag accuracies).
Problems (a prompt folder without readable metadata, an unreadable image) are counted and
reported in the summary and as per-image records with an "error" field; they never abort the run
and do not enter the accuracies.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mirokit.evaluate.geneval_rules import DEFAULT_RULES, RuleConfig, evaluate_detections, tag_counts, validate_metadata
from mirokit.world.detector import ShapesDetector

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _load_image(path: Path) -> np.ndarray:
    """path -> (H, W, 3) uint8; any decoding problem raises ValueError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except Exception as err:  # noqa: BLE001 - PIL raises many types for corrupt files
        raise ValueError(f"{path.name}: unreadable image ({type(err).__name__}: {err})") from None


def _read_metadata(prompt_dir: Path) -> dict:
    """The GenEval record of a prompt folder (first non-empty line of metadata.jsonl), validated."""
    path = prompt_dir / "metadata.jsonl"
    if not path.is_file():
        raise ValueError(f"{prompt_dir.name}: no metadata.jsonl")
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        metadata = json.loads(lines[0]) if lines else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{prompt_dir.name}: metadata.jsonl is not valid JSON ({err})") from None
    if metadata is None:
        raise ValueError(f"{prompt_dir.name}: metadata.jsonl is empty")
    validate_metadata(metadata)
    return metadata


def evaluate_folder(folder: str | Path, *, rules: RuleConfig = DEFAULT_RULES,
                    detector: ShapesDetector | None = None) -> tuple[list[dict], dict]:
    """Evaluate every sample of a GenEval-layout folder -> (per-image records, summary).

    A record: {"filename", "tag", "prompt", "correct", "reason", "detections": [Detection.to_json()],
    "metadata"} or, for a problem, {"filename", "tag", "prompt", "correct": None, "error"}.
    Summary: {"overall", "per_tag": {tag: accuracy}, "counts": {tag: {"correct", "total"}},
    "image_accuracy", "prompt_accuracy", "images": {"evaluated", "errors"}, "prompts": {"evaluated",
    "skipped"}, "problems": [first 50 messages], "rules", "folder"}. A missing folder raises
    FileNotFoundError; everything else is reported.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"GenEval folder not found: {root}")
    detector = detector or ShapesDetector()
    records: list[dict] = []
    problems: list[str] = []
    skipped = 0
    prompt_hits: list[bool] = []
    for prompt_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            metadata = _read_metadata(prompt_dir)
        except ValueError as err:
            skipped += 1
            problems.append(str(err))
            continue
        samples = prompt_dir / "samples"
        files = sorted(p for p in samples.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if samples.is_dir() else []
        if not files:
            skipped += 1
            problems.append(f"{prompt_dir.name}: no images in samples/")
            continue
        hits = []
        for path in files:
            base = {"filename": str(path.relative_to(root)), "tag": metadata["tag"],
                    "prompt": metadata.get("prompt", "")}
            try:
                image = _load_image(path)
            except ValueError as err:
                problems.append(f"{prompt_dir.name}/{err}")
                records.append({**base, "correct": None, "error": str(err)})
                continue
            detections = detector.detect(image)
            correct, reason = evaluate_detections(detections, metadata, rules=rules)
            hits.append(correct)
            records.append({**base, "correct": correct, "reason": reason,
                            "detections": [d.to_json() for d in detections], "metadata": json.dumps(metadata)})
        if hits:
            prompt_hits.append(any(hits))
    return records, summarize_records(records, problems, skipped, prompt_hits, rules, root)


def summarize_records(records: list[dict], problems: list[str], skipped: int, prompt_hits: list[bool],
                      rules: RuleConfig, root: Path) -> dict:
    """The summary dict of evaluate_folder (see there)."""
    evaluated = [r for r in records if r.get("correct") is not None]
    counts = tag_counts(evaluated)
    per_tag = {tag: c["correct"] / c["total"] for tag, c in counts.items()}
    return {
        "overall": float(np.mean(list(per_tag.values()))) if per_tag else None,
        "per_tag": per_tag,
        "counts": counts,
        "image_accuracy": float(np.mean([r["correct"] for r in evaluated])) if evaluated else None,
        "prompt_accuracy": float(np.mean(prompt_hits)) if prompt_hits else None,
        "images": {"evaluated": len(evaluated), "errors": len(records) - len(evaluated)},
        "prompts": {"evaluated": len(prompt_hits), "skipped": skipped},
        "problems": problems[:50],
        "rules": asdict(rules),
        "folder": str(root),
    }


def write_results(records: list[dict], summary: dict, out: str | Path) -> tuple[Path, Path]:
    """Write the summary to `out` (JSON) and the records to `<out stem>.jsonl` beside it -> both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = out.with_suffix(".jsonl") if out.suffix != ".jsonl" else out.with_name(out.stem + ".records.jsonl")
    with open(lines, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return out, lines


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
