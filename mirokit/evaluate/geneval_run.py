"""GenEval on disk: resumable, split over shards (separate jobs) and torchrun ranks, merged into one result.

For `--out results.json`:

    results.json                   the summary (per tag, overall, counts, problems, settings)
    results.jsonl                  one record per image (GenEval's fields; sorted by filename)
    results.html, results_tags.png the page: per-tag table and bar plot, failures drawn with their boxes
    results_failures/*.png         the failure thumbnails the page shows
    results.settings.json          rules + models of the run: a resume with other settings is refused
    results.part-K-of-N.jsonl      shard K's records while shards run (merged into results.jsonl, then removed)

Prompt folder i belongs to shard i % N; with torchrun each rank is a shard of its own (N x world size in
all). Records are appended (and flushed) as images finish, so a killed run resumes where it stopped: an
image with a record is skipped, an image whose record is an error is retried. A run without
--num-shards (or rank 0 of torchrun, once every rank is done) merges every part and writes the summary
and the page; shard jobs only write their part, and a final run without --num-shards merges them
(evaluating whatever is still missing).
"""

from __future__ import annotations

import json
from pathlib import Path

from mirokit import distributed
from mirokit.atomic import drop_torn_tail, temporary_path, write_atomic, write_json_atomic
from mirokit.evaluate.geneval_folder import (
    ColourClassifier,
    Detector,
    FolderScan,
    evaluate_items,
    records_path,
    scan_folder,
    shard_items,
    summarize_records,
)
from mirokit.evaluate.geneval_rules import RuleConfig


def part_path(out: Path, shard: int, num_shards: int) -> Path:
    """The records file of one shard: results.part-0003-of-0008.jsonl."""
    return out.with_name(f"{out.stem}.part-{shard:04d}-of-{num_shards:04d}.jsonl")


MERGER = "main"
"""the temporaries' owner name (mirokit.atomic) of rank 0 of a whole-folder run, the one writer of the settings,
the merged records and the summary"""


def settings_path(out: Path) -> Path:
    """results.json -> results.settings.json."""
    return out.with_name(f"{out.stem}.settings.json")


def read_records(path: Path) -> list[dict]:
    """Records of a JSONL file; a truncated last line (a killed run) is ignored, any other bad line is an error."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not valid JSON (delete the file or use --restart)") from None
        if not isinstance(record, dict) or not isinstance(record.get("filename"), str):
            raise ValueError(f"{path}:{number}: not a GenEval record (no filename)")
        records.append(record)
    return records


def record_files(out: Path) -> list[Path]:
    """The merged records file and every part file of `out` that exist."""
    return [p for p in [records_path(out), *sorted(out.parent.glob(f"{out.stem}.part-*-of-*.jsonl"))] if p.is_file()]


def collect_records(out: Path) -> dict[str, dict]:
    """filename -> its record over every records file (an evaluated record wins over an error record)."""
    by_name: dict[str, dict] = {}
    for path in record_files(out):
        for record in read_records(path):
            old = by_name.get(record["filename"])
            if old is None or old.get("correct") is None or record.get("correct") is not None:
                by_name[record["filename"]] = record
    return by_name


def prepare(out: Path, settings: dict, *, restart: bool) -> None:
    """Check or write the run's settings; restart=True deletes earlier records first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back
    path = settings_path(out)
    for done in (path, records_path(out), out):
        temporary_path(done, MERGER).unlink(missing_ok=True)  # left by a killed run
    if restart:
        for p in [*record_files(out), path]:
            p.unlink()
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ValueError(f"{records_path(out).name} was made with other settings ({', '.join(diff)} differ): "
                             "use another --out or --restart")
    else:
        write_json_atomic(path, settings, MERGER)


def run_geneval(folder: str | Path, out: str | Path, *, detector: Detector, colour: ColourClassifier | None,
                rules: RuleConfig, settings: dict, batch_size: int = 4, shard_index: int = 0, num_shards: int = 1,
                restart: bool = False, max_failures: int = 60, progress: bool = True) -> dict | None:
    """Evaluate this process's share of a GenEval folder; merge and summarise when the whole folder is done.

    detector / colour: objects of the folder evaluation's interfaces (mirokit's load their weights on first
    use, so a finished folder needs none); settings: JSON-able description of rules and models (a resume
    must match it). Returns the summary, or None for
    a shard job / a rank other than 0.
    """
    out = Path(out)
    rank, world = distributed.get_rank(), distributed.get_world_size()
    if restart and num_shards > 1:
        raise ValueError("--restart would delete other shards' records: restart without --num-shards")
    scan = scan_folder(folder)
    if rank == 0:
        prepare(out, settings, restart=restart)
    distributed.barrier()
    total_shards, shard = num_shards * world, shard_index * world + rank
    done = {name for name, r in collect_records(out).items() if r.get("correct") is not None}
    todo = [it for it in shard_items(scan.items, shard, total_shards) if it.filename not in done]
    target = records_path(out) if total_shards == 1 else part_path(out, shard, total_shards)
    if todo:
        drop_torn_tail(target)  # a killed run's partial last record (read_records skipped it: it is redone)
        with open(target, "a", encoding="utf-8") as f:
            for record in evaluate_items(todo, detector=detector, colour=colour, rules=rules, batch_size=batch_size,
                                         progress=progress, desc=f"GenEval shard {shard}/{total_shards}"):
                f.write(json.dumps(record) + "\n")
                f.flush()
    distributed.barrier()
    if num_shards > 1 or rank != 0:
        return None
    return finalize(scan, out, rules=rules, settings=settings, max_failures=max_failures)


def finalize(scan: FolderScan, out: Path, *, rules: RuleConfig, settings: dict, max_failures: int = 60) -> dict:
    """Merge every records file into results.jsonl (sorted), remove the parts, write summary and page."""
    from mirokit.evaluate.geneval_report import write_geneval_report

    by_name = collect_records(out)
    records = [by_name[it.filename] for it in scan.items if it.filename in by_name]
    write_atomic(records_path(out), "".join(json.dumps(r) + "\n" for r in records), MERGER)
    for path in record_files(out)[1:]:
        path.unlink()
    summary = summarize_records(records, scan.problems, scan.skipped, rules, scan.root)
    summary["images"]["missing"] = len(scan.items) - len(records)
    summary["settings"] = settings
    write_json_atomic(out, summary, MERGER)
    summary["html"] = str(write_geneval_report(out, summary, records, scan.root, max_failures=max_failures))
    return summary
