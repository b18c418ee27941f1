"""Webdataset-style tar shards: `shard-000000.tar` with `{key}.png`, `{key}.txt`, `{key}.json` members.

Written with the standard library's tarfile (no webdataset dependency); each shard is written to a
temporary name and renamed when complete, so a crashed run never leaves a truncated shard.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from mirokit.atomic import SOLE_WRITER, move_into_place, remove_temporary, temporary_path, write_json_atomic


def _key(value) -> str:
    key = f"{value:08d}" if isinstance(value, (int, np.integer)) else str(value)
    if not key or "." in key or "/" in key:
        raise ValueError(f"shard key {key!r} must be non-empty without '.' or '/'")
    return key


def _png(image) -> bytes:
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"shard image must be (H, W, 3) uint8, got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(samples, out_dir: str | Path, *, shard_size: int = 1000) -> list[Path]:
    """Write samples into `out_dir/shard-NNNNNN.tar` files of `shard_size` samples each -> their paths.

    `samples` is a `WorldDataset` (streamed with `iter_samples`) or an iterable of
    (key: int or str, image: (H, W, 3) uint8 array or PIL image, caption: str, metadata: dict).
    Integer keys are written zero-padded to 8 digits.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    if hasattr(samples, "iter_samples"):
        samples = samples.iter_samples()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tar, tmp, count = None, None, 0
    mtime = time.time()
    try:
        for key, image, caption, metadata in samples:
            if tar is None:
                path = out / f"shard-{len(paths):06d}.tar"
                tmp = temporary_path(path, SOLE_WRITER)
                tar, count = tarfile.open(tmp, "w"), 0  # spans loop iterations; closed below
                paths.append(path)
            key = _key(key)
            _add(tar, f"{key}.png", _png(image), mtime)
            _add(tar, f"{key}.txt", str(caption).encode("utf-8"), mtime)
            _add(tar, f"{key}.json", json.dumps(metadata).encode("utf-8"), mtime)
            count += 1
            if count == shard_size:
                tar.close()
                move_into_place(tmp, paths[-1])
                tar = None
        if tar is not None:
            tar.close()
            move_into_place(tmp, paths[-1])
            tar = None
    finally:
        if tar is not None:  # an error mid-shard: drop the partial file
            tar.close()
            remove_temporary(tmp)
            paths.pop()
    return paths


def read_shard(path: str | Path) -> Iterator[tuple[str, object, str, dict]]:
    """Yield (key, PIL image, caption, metadata) for each sample of a shard, in file order.

    A sample missing one of its three members raises a one-line ValueError naming shard and key.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shard not found: {path}")
    pending: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.rpartition(".")
            if key not in pending:
                pending[key] = {}
                order.append(key)
            pending[key][ext] = tar.extractfile(member).read()
    for key in order:
        parts = pending.pop(key)
        missing = [ext for ext in ("png", "txt", "json") if ext not in parts]
        if missing:
            raise ValueError(f"shard {path.name}: sample {key!r} has no .{missing[0]} member")
        image = Image.open(io.BytesIO(parts["png"]))
        image.load()
        yield key, image, parts["txt"].decode("utf-8"), json.loads(parts["json"])


def iter_shards(paths: Iterable[str | Path]) -> Iterator[tuple[str, object, str, dict]]:
    """`read_shard` over several shards in order."""
    for path in paths:
        yield from read_shard(path)


def generate_world_shards(num_samples: int, cfg, out_dir: str | Path, *, shard_size: int = 1000) -> dict:
    """Write `num_samples` samples of the world `cfg` (a WorldConfig) as shards into OUT, and OUT/world.json
    (the config, the shards, how many samples got each noise kind) -> that summary."""
    from collections import Counter

    from mirokit.config import to_dict
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.noise import NOISE_KINDS

    if num_samples < 1:
        raise ValueError("--num-samples must be >= 1")
    dataset = WorldDataset(num_samples, cfg)
    counts: Counter = Counter()

    def counted():
        for sample in dataset.iter_samples():
            noise = sample[3]["noise"]
            counts.update(list(noise))
            counts["clean"] += not noise
            yield sample

    out = Path(out_dir)
    paths = write_shards(counted(), out, shard_size=shard_size)
    summary = {"num_samples": num_samples, "shards": [p.name for p in paths], "config": to_dict(cfg),
               "noise_counts": {k: counts[k] for k in (*NOISE_KINDS, "clean")}}
    write_json_atomic(out / "world.json", summary, SOLE_WRITER)
    return summary


def describe_world_shards(summary: dict, out_dir: str | Path) -> str:
    """What `mirokit world generate` prints for generate_world_shards' summary: the samples and shards written to
    OUT_DIR, then how many samples got each noise kind (and how many none)."""
    total = summary["num_samples"]
    return "\n".join([f"wrote {total} samples in {len(summary['shards'])} shard(s) to {out_dir}",
                      *(f"  {kind:<15} {count:>8}  ({count / total:.1%})"
                        for kind, count in summary["noise_counts"].items())])
