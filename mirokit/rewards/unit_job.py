"""The skeleton of every per-image batch job over input units (`mirokit score`, `mirokit recaption`).

Inputs are cut into units (mirokit.rewards.inputs); this process takes units i with i % num_shards ==
shard_index (torchrun ranks and --shard-index/--num-shards), skips units whose OUT/<unit>.parquet exists, and
removes what a killed run left half-written. A torch DataLoader reads and decodes images in workers while the
job's `process(batch)` runs in the main process; when a unit's last batch is processed, `finish(unit, rows)`
writes its outputs, each to a temporary name then renamed, so a run killed at any moment and started again
produces exactly the outputs of an uninterrupted one. Bad input (a corrupt image, a missing caption, an
unreadable member) becomes a row with an `error`, counted in the manifest by kind. A tar shard given as a URL
whose download fails (after retries, mirokit.urls) is counted as one `download failed` error and listed under
`failed_units`, but its unit is not marked done: the next run tries it again.
"""

from __future__ import annotations

import io
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.atomic import SOLE_WRITER, stale_temporaries, write_json_atomic, write_parquet_atomic
from mirokit.rewards.inputs import InputUnit, RawSample, plan_units
from mirokit.tars import DOWNLOAD_FAILED
from mirokit.urls import DownloadError

Decoded = tuple
"""(key, caption, PIL RGB image or None, error, named captions)"""


@dataclass(kw_only=True)
class UnitJobConfig:
    """Which inputs, where the outputs go, and which part of the work this process does."""

    inputs: list[str]
    """tar shards (paths or URLs, brace patterns allowed), .jsonl (image folder + captions) or .parquet files"""
    out_dir: str
    """folder of the per-unit parquet files and the manifest"""
    batch_size: int = 64
    num_workers: int = 2
    shard_index: int = 0
    num_shards: int = 1
    chunk_rows: int = 10_000
    """rows per unit of .jsonl / .parquet inputs"""
    progress: bool = True


def decode(sample: RawSample, need_caption: bool = True) -> Decoded:
    """RawSample -> (key, caption, PIL RGB image or None, error, named captions). Without `need_caption` a
    sample whose only problem is a missing caption is still decoded (its error is cleared)."""
    from mirokit.images import open_image

    error = sample.error
    if not need_caption and error == "missing caption":
        error = ""
    if error or sample.image is None:
        return sample.key, sample.caption or "", None, error or "no image", sample.extras
    try:
        return sample.key, sample.caption or "", open_image(io.BytesIO(sample.image)), "", sample.extras
    except Exception as err:  # PIL raises many types for corrupt data
        return sample.key, sample.caption or "", None, f"corrupt image: {type(err).__name__}", sample.extras


def _unit_stream(units: list[tuple[int, InputUnit]], batch_size: int, need_caption: bool):
    """An IterableDataset over (unit_index, batch_of_decoded | None); None marks the end of a unit.
    Worker w reads units w, w+W, ... so each unit is read whole by one worker, in order."""
    import torch.utils.data as tud

    class _UnitStream(tud.IterableDataset):
        def __iter__(self):
            info = tud.get_worker_info()
            wid, nw = (info.id, info.num_workers) if info else (0, 1)
            for index, unit in units[wid::nw]:
                batch = []
                for sample in unit.samples():
                    batch.append(decode(sample, need_caption))
                    if len(batch) == batch_size:
                        yield index, batch
                        batch = []
                if batch:
                    yield index, batch
                yield index, None

    return _UnitStream()


def _identity(item):
    return item


def write_table(rows: list[dict], path: Path, *, strings: list[str], floats: list[str] = ()) -> None:
    """rows -> a parquet file with string columns `strings` and float32 columns `floats`, written to a temporary
    name then renamed."""
    import pyarrow as pa

    columns = {c: pa.array([r.get(c) for r in rows], pa.string()) for c in strings}
    for c in floats:
        columns[c] = pa.array(np.asarray([r[c] for r in rows], dtype=np.float32), pa.float32())
    write_parquet_atomic(path, pa.table(columns))


def versions() -> dict:
    """Versions of mirokit, torch, python and transformers, for manifests."""
    import torch

    import mirokit

    out = {"mirokit": mirokit.__version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:
        pass
    return out


def run_units(cfg: UnitJobConfig, *, desc: str, process: Callable[[list[Decoded]], tuple[list[dict], int]],
              finish: Callable[[InputUnit, list[dict]], None], extra_dirs: tuple[str, ...] = (),
              need_caption: bool = True, done_name: str = "done") -> dict:
    """Run `process(batch) -> (rows, images done)` over this process's unfinished units and `finish(unit, rows)`
    at the end of each (it must write OUT/<unit>.parquet with an `error` column, and may write files into
    `extra_dirs` under OUT). A unit whose download failed (a `download failed` row, or DownloadError from
    `finish`) is not finished: nothing is written for it and it is listed in `failed_units` (name -> the line).
    Returns the manifest's common part: units, counts ({"rows", done_name, "errors"}; a failed unit is one row
    and one error), errors by kind, failed units, speed."""
    import pyarrow.parquet as pq
    import torch.utils.data as tud

    if not 0 <= cfg.shard_index < cfg.num_shards:
        raise ValueError(f"--shard-index {cfg.shard_index} must be in [0, {cfg.num_shards})")
    if cfg.batch_size < 1 or cfg.num_workers < 0:
        raise ValueError("--batch-size must be >= 1 and --num-workers >= 0")
    units = plan_units(cfg.inputs, cfg.chunk_rows)
    mine = [(i, u) for i, u in enumerate(units) if i % cfg.num_shards == cfg.shard_index]
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in extra_dirs:
        (out / name).mkdir(exist_ok=True)
    todo = [(i, u) for i, u in mine if not unit_output(out, u).is_file()]
    for _, unit in todo:  # leftovers of a killed run (these units are ours alone)
        for folder in (out, *(out / name for name in extra_dirs)):
            for stale in stale_temporaries(folder, f"{unit.name}."):
                stale.unlink()
    loader = tud.DataLoader(_unit_stream(todo, cfg.batch_size, need_caption), batch_size=None,
                            num_workers=cfg.num_workers, collate_fn=_identity)
    pending: dict[int, list[dict]] = {}
    failed: dict[str, str] = {}
    start, done_now = time.perf_counter(), 0
    by_index = dict(todo)
    with tqdm(desc=desc, unit="img", disable=not cfg.progress, dynamic_ncols=True) as bar:  # closed before an error
        for index, batch in loader:
            if batch is None:
                unit, rows = by_index[index], pending.pop(index, [])
                failure = next((r["error"] for r in rows if str(r.get("error") or "").startswith(DOWNLOAD_FAILED)),
                               None)
                try:
                    if failure is None:
                        finish(unit, rows)
                except DownloadError as err:  # a shard copy (--enrich, --write-shards) read the URL again
                    failure = err.line()
                    tqdm.write(failure, file=sys.stderr)
                if failure is not None:
                    failed[unit.name] = failure
                continue
            rows, done = process(batch)
            pending.setdefault(index, []).extend(rows)
            done_now += done
            bar.update(len(batch))
            bar.set_postfix(img_s=f"{done_now / max(time.perf_counter() - start, 1e-9):.1f}")
    elapsed = time.perf_counter() - start

    counts = {"rows": 0, done_name: 0, "errors": 0}
    errors: dict[str, int] = {}
    per_unit = {}
    for _, unit in mine:
        if unit.name in failed:  # nothing written: the next run tries it again
            column = [failed[unit.name]]
        else:
            column = pq.read_table(unit_output(out, unit), columns=["error"]).column("error").to_pylist()
        bad = [e for e in column if e]
        per_unit[unit.name] = {"rows": len(column), "errors": len(bad)}
        counts["rows"] += len(column)
        counts["errors"] += len(bad)
        for e in bad:
            errors[e.split(":")[0]] = errors.get(e.split(":")[0], 0) + 1
    counts[done_name] = counts["rows"] - counts["errors"]
    return {"units": [u.name for _, u in mine], "skipped_done": len(mine) - len(todo), "counts": counts,
            "errors_by_kind": errors, "per_unit": per_unit, "failed_units": failed, "versions": versions(),
            "seconds_this_run": elapsed,
            "images_per_s_this_run": done_now / max(elapsed, 1e-9)}


def unit_output(out: Path, unit: InputUnit) -> Path:
    """OUT/<unit>.parquet: the file whose presence marks a unit done."""
    return out / f"{unit.name}.parquet"


def write_manifest(out_dir: str | Path, cfg: UnitJobConfig, manifest: dict) -> Path:
    """OUT/manifest.SSS-of-NNN.json (one per share of the work), written atomically."""
    path = Path(out_dir) / f"manifest.{cfg.shard_index:03d}-of-{cfg.num_shards:03d}.json"
    return write_json_atomic(path, manifest, SOLE_WRITER, indent=1, default=str)
