"""A resumable, splittable scoring run: input units -> one parquet of raw scores per unit + a manifest.

Workers (a torch DataLoader) read and decode images while the scorers run in the main process.
Each unit's parquet is written to a temporary name and renamed, so a run killed at any moment and
started again skips finished units and produces exactly the outputs of an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import os
import platform
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.rewards.inputs import InputUnit, RawSample, plan_units
from mirokit.rewards.registry import build_scorer


@dataclass(kw_only=True)
class ScoreJobConfig:
    """What to score, with which rewards, and which part of the work this process does."""

    inputs: list[str]
    """tar shards (brace patterns allowed), .jsonl (image folder + captions) or .parquet files"""
    out_dir: str
    """folder of the per-unit parquet files and the manifest"""
    rewards: list[str]
    """reward keys to compute (see `mirokit score --list`)"""
    reward_options: dict = field(default_factory=dict)
    """per-reward scorer options, e.g. {"clip_score": {"model": "/models/jina-clip-v2"}}"""
    batch_size: int = 64
    num_workers: int = 2
    shard_index: int = 0
    num_shards: int = 1
    device: str = "cpu"
    enrich: bool = False
    captions: list[str] = field(default_factory=list)
    """named captions to score too ({key}.NAME.txt / NAME_caption): columns and JSON keys NAME_<reward>"""
    chunk_rows: int = 10_000
    progress: bool = True


def decode(sample: RawSample):
    """RawSample -> (key, caption, PIL RGB image or None, error, named captions)."""
    from PIL import Image

    if sample.error or sample.image is None:
        return sample.key, sample.caption or "", None, sample.error or "no image", sample.extras
    try:
        image = Image.open(io.BytesIO(sample.image))
        image.load()
        return sample.key, sample.caption, image.convert("RGB"), "", sample.extras
    except Exception as err:  # PIL raises many types for corrupt data
        return sample.key, sample.caption or "", None, f"corrupt image: {type(err).__name__}", sample.extras


def _unit_stream(units: list[tuple[int, InputUnit]], batch_size: int):
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
                    batch.append(decode(sample))
                    if len(batch) == batch_size:
                        yield index, batch
                        batch = []
                if batch:
                    yield index, batch
                yield index, None

    return _UnitStream()


def _identity(item):
    return item


def _write_table(rows: list[dict], reward_keys: list[str], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"key": pa.array([r["key"] for r in rows], pa.string()),
               "caption": pa.array([r["caption"] for r in rows], pa.string())}
    for k in reward_keys:
        columns[k] = pa.array(np.asarray([r[k] for r in rows], dtype=np.float32), pa.float32())
    columns["error"] = pa.array([r["error"] for r in rows], pa.string())
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)


def _enrich(unit: InputUnit, rows: list[dict], reward_keys: list[str], out: Path) -> None:
    """Copy a tar shard adding each sample's scores to its {key}.json (the official enriched layout)."""
    scores = {r["key"]: {k: (None if np.isnan(r[k]) else float(r[k])) for k in reward_keys} for r in rows}
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with tarfile.open(unit.path, "r") as src, tarfile.open(tmp, "w") as dst:
        members = [m for m in src if m.isfile()]
        for m in members:
            data = src.extractfile(m).read()
            key, _, ext = Path(m.name).name.partition(".")
            if ext == "json" and key in scores:
                meta = json.loads(data or b"{}")
                meta.update(scores.pop(key))
                data = json.dumps(meta).encode()
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        for key, s in scores.items():  # samples that had no .json member
            data = json.dumps(s).encode()
            info = tarfile.TarInfo(f"{key}.json")
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def _versions() -> dict:
    import torch

    import mirokit

    out = {"mirokit": mirokit.__version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:
        pass
    return out


def run_score_job(cfg: ScoreJobConfig) -> dict:
    """Score this process's share of the units; returns (and writes) the manifest."""
    import pyarrow.parquet as pq
    import torch.utils.data as tud

    from mirokit.rewards.registry import available_scorers

    known = available_scorers()
    missing = [k for k in cfg.rewards if k not in known]
    if missing:
        raise ValueError(f"unknown reward key {missing[0]!r}; known: {', '.join(known)}")
    if not cfg.rewards:
        raise ValueError("no rewards to score: pass at least one --reward KEY")
    if not 0 <= cfg.shard_index < cfg.num_shards:
        raise ValueError(f"--shard-index {cfg.shard_index} must be in [0, {cfg.num_shards})")
    unknown = set(cfg.reward_options) - set(cfg.rewards)
    if unknown:
        raise ValueError(f"options given for reward(s) not being scored: {', '.join(sorted(unknown))}")
    units = plan_units(cfg.inputs, cfg.chunk_rows)
    mine = [(i, u) for i, u in enumerate(units) if i % cfg.num_shards == cfg.shard_index]
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.enrich:
        (out / "enriched").mkdir(exist_ok=True)

    def output(u: InputUnit) -> Path:
        return out / f"{u.name}.parquet"

    todo = [(i, u) for i, u in mine if not output(u).is_file()]
    for _, unit in todo:  # leftovers of a killed run (these units are ours alone)
        for stale in out.glob(f".{unit.name}.*.tmp-*"):
            stale.unlink()
        for stale in (out / "enriched").glob(f".{unit.name}.*.tmp-*") if cfg.enrich else []:
            stale.unlink()
    scorers = {k: build_scorer(k, **dict(cfg.reward_options.get(k, {})), **_device_opt(k, cfg)) for k in cfg.rewards}
    columns = [*cfg.rewards, *(f"{name}_{k}" for name in cfg.captions for k in cfg.rewards)]
    loader = tud.DataLoader(_unit_stream(todo, cfg.batch_size), batch_size=None, num_workers=cfg.num_workers,
                            collate_fn=_identity)
    pending: dict[int, list[dict]] = {}
    start, scored_now = time.perf_counter(), 0
    bar = tqdm(desc="scoring", unit="img", disable=not cfg.progress, dynamic_ncols=True)
    by_index = dict(todo)
    for index, batch in loader:
        if batch is None:
            unit = by_index[index]
            rows = pending.pop(index, [])
            if cfg.enrich and unit.kind == "tar":
                _enrich(unit, rows, columns, out / "enriched" / f"{unit.name}.tar")
            _write_table(rows, columns, output(unit))
            continue
        ok = [j for j, (_, _, img, err, _) in enumerate(batch) if img is not None and not err]
        values = {k: np.full(len(batch), np.nan, dtype=np.float32) for k in columns}
        for name in ["", *cfg.captions]:  # the caption, then each named caption (rows that have it)
            rows_ok = [j for j in ok if not name or name in batch[j][4]]
            if not rows_ok:
                continue
            images = [batch[j][2] for j in rows_ok]
            captions = [batch[j][4][name] if name else batch[j][1] for j in rows_ok]
            for k, scorer in scorers.items():
                values[f"{name}_{k}" if name else k][rows_ok] = scorer.score(images, captions)
        rows = pending.setdefault(index, [])
        for j, (key, caption, _, err, _) in enumerate(batch):
            rows.append({"key": key, "caption": caption or "", "error": err, **{k: values[k][j] for k in columns}})
        scored_now += len(ok)
        bar.update(len(batch))
        bar.set_postfix(img_s=f"{scored_now / max(time.perf_counter() - start, 1e-9):.1f}")
    bar.close()
    elapsed = time.perf_counter() - start

    counts = {"rows": 0, "scored": 0, "errors": 0}
    errors: dict[str, int] = {}
    per_unit = {}
    for _, unit in mine:
        table = pq.read_table(output(unit), columns=["error"]).column("error").to_pylist()
        n_err = sum(1 for e in table if e)
        per_unit[unit.name] = {"rows": len(table), "errors": n_err}
        counts["rows"] += len(table)
        counts["errors"] += n_err
        for e in table:
            if e:
                kind = e.split(":")[0]
                errors[kind] = errors.get(kind, 0) + 1
    counts["scored"] = counts["rows"] - counts["errors"]
    manifest = {
        "config": asdict(cfg), "units": [u.name for _, u in mine], "skipped_done": len(mine) - len(todo),
        "models": {k: (s.describe() if hasattr(s, "describe") else {"key": k}) for k, s in scorers.items()},
        "versions": _versions(), "counts": counts, "errors_by_kind": errors, "per_unit": per_unit,
        "seconds_this_run": elapsed, "images_per_s_this_run": scored_now / max(elapsed, 1e-9),
    }
    path = out / f"manifest.{cfg.shard_index:03d}-of-{cfg.num_shards:03d}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    os.replace(tmp, path)
    return manifest


def _device_opt(key: str, cfg: ScoreJobConfig) -> dict:
    """Pass the device to model-based scorers only (built-in pixel rewards take no options)."""
    from mirokit.rewards.base import ModelScorer
    from mirokit.rewards.registry import scorer_factory

    factory = scorer_factory(key)
    if isinstance(factory, type) and issubclass(factory, ModelScorer) and "device" not in cfg.reward_options.get(key, {}):
        return {"device": cfg.device}
    return {}
