"""Inputs of `mirokit score`: webdataset tar shards, an image folder + captions JSONL, or a parquet table.

Tar shards may be URLs (http(s)://, s3://, gs://, hf://, pipe:CMD, brace patterns; mirokit.urls): read as a
stream, never copied to disk; a unit is named after the URL's file name like a local shard.

Every input is cut into *units* (a tar shard, or a fixed-size chunk of rows) that are scored and
written independently, which is what makes scoring resumable and splittable across ranks.
A unit yields `RawSample(key, image_bytes, caption, error)`; decoding happens later (in workers).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mirokit.config import shown
from mirokit.tars import (
    MAX_CAPTION_CHARS,
    CaptionError,
    caption_of,
    expand_braces,
    iter_samples,
    shard_list,
    shard_name,
    utf8_text,
)
from mirokit.urls import is_url

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CHUNK_ROWS = 10_000


@dataclass
class RawSample:
    """One input row before decoding: image bytes (None if absent/unreadable), caption (None if absent)."""

    key: str
    image: bytes | None
    caption: str | None
    error: str = ""
    extras: dict[str, str] = field(default_factory=dict)
    """named captions ({key}.NAME.txt members, NAME_caption fields), e.g. {"synthetic": "..."}"""


@dataclass(frozen=True)
class InputUnit:
    """A piece of input scored as one output file: kind tar|jsonl|parquet, its path (a URL for a remote tar), its
    name (the output's: the file name without extension) and a row range."""

    kind: str
    path: str
    name: str
    start: int = 0
    stop: int = -1

    def samples(self) -> Iterator[RawSample]:
        """The unit's rows, in a fixed order."""
        if self.kind == "tar":
            yield from iter_tar(self.path)
        elif self.kind == "jsonl":
            yield from _iter_jsonl(self.path, self.start, self.stop)
        else:
            yield from _iter_parquet(self.path, self.start, self.stop)


def iter_tar(path: str) -> Iterator[RawSample]:
    """Group a webdataset tar's members (a local path or a URL) by key ({key}.jpg/.png/.webp + .txt + .json);
    unreadable members become errors, a failed download one `download failed` row."""
    for key, parts, error in iter_samples(path):
        image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
        captions = {}
        for name in ["", *(ext[:-4] for ext in parts if ext.endswith(".txt"))]:
            try:
                captions[name] = caption_of(parts, name)
            except CaptionError as err:  # counted as a bad caption, never scored as replacement characters
                error = error or str(err)
        caption = captions.pop("", None)
        if not error and image is None:
            error = "no image member"
        if not error and not caption:
            error = "missing caption"
        yield RawSample(key, image, caption, error, {n: c for n, c in captions.items() if c})


def _iter_jsonl(path: str, start: int, stop: int) -> Iterator[RawSample]:
    root = Path(path).parent
    with open(path, "rb") as fh:  # bytes: a line that is not UTF-8 is a bad row; lines end at \n (as _count_rows)
        for i, line in enumerate(fh):
            if i < start:
                continue
            if 0 <= stop <= i:
                break
            key = f"{Path(path).stem}:{i + 1}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
                yield RawSample(key, None, None, "malformed JSON line")
                continue
            if not isinstance(row, dict):
                yield RawSample(key, None, None, f"malformed JSON line: not an object ({type(row).__name__})")
                continue
            yield _from_row(key, row, root)


def _from_row(key: str, row: dict, root: Path) -> RawSample:
    key, line_key = str(row.get("key", key)), key
    if not utf8_text(key):
        return RawSample(line_key, None, None, "key not UTF-8 (a lone surrogate)")
    image_path = row.get("image")
    caption = row.get("caption")
    shown_caption = caption if isinstance(caption, str) and utf8_text(caption) else None  # a bad row's, as written
    if not isinstance(image_path, str):
        return RawSample(key, None, shown_caption, "missing image path")
    path = Path(image_path) if Path(image_path).is_absolute() else root / image_path
    try:
        data = path.read_bytes()
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return RawSample(key, None, shown_caption, f"image not found: {shown(image_path)}")
    if not isinstance(caption, str) or not caption.strip():
        return RawSample(key, data, None, "missing caption")
    if len(caption) > MAX_CAPTION_CHARS:
        return RawSample(key, data, None, f"caption too long: {len(caption)} characters (at most {MAX_CAPTION_CHARS})")
    extras = {k[:-len("_caption")]: v for k, v in row.items() if k.endswith("_caption") and isinstance(v, str) and v}
    bad = next((name for name, text in {"": caption, **extras}.items() if not utf8_text(text)), None)
    if bad is not None:
        return RawSample(key, data, None, f"{bad} caption not UTF-8 (a lone surrogate)".lstrip())
    return RawSample(key, data, caption, extras=extras)


def _iter_parquet(path: str, start: int, stop: int) -> Iterator[RawSample]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    cols = set(table.column_names)
    if "image" not in cols or "caption" not in cols:
        raise ValueError(f"{path}: a parquet input needs 'image' (path) and 'caption' columns, has {sorted(cols)}")
    stop = table.num_rows if stop < 0 else min(stop, table.num_rows)
    rows = table.slice(start, stop - start).to_pylist()
    for i, row in enumerate(rows, start=start):
        yield _from_row(f"{Path(path).stem}:{i}", row, Path(path).parent)


def _count_rows(path: str, kind: str) -> int:
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def plan_units(inputs: list[str], chunk_rows: int = CHUNK_ROWS) -> list[InputUnit]:
    """Expand input patterns (files, brace patterns, folders of .tar shards, tar URLs and their brace patterns or
    folders) into ordered units; a missing local input is a one-line error (a missing URL is found when read)."""
    units: list[InputUnit] = []
    for pattern in inputs:
        if is_url(pattern):
            for url in shard_list(pattern):  # each names a .tar file
                units.append(InputUnit("tar", url, shard_name(url)[:-4]))
            continue
        paths = [str(p) for p in shard_list(pattern)] if Path(pattern).is_dir() else expand_braces(pattern)
        for path in paths:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"input not found: {path}")
            suffix = p.suffix.lower()
            if suffix == ".tar":
                units.append(InputUnit("tar", str(p), p.stem))
            elif suffix in (".jsonl", ".parquet"):
                kind = suffix[1:]
                n = _count_rows(str(p), kind)
                for i, start in enumerate(range(0, max(n, 1), chunk_rows)):
                    units.append(InputUnit(kind, str(p), f"{p.stem}-{i:05d}", start, start + chunk_rows))
            else:
                raise ValueError(f"unsupported input {path}: expected .tar shards, a .jsonl or a .parquet file")
    seen: dict[str, str] = {}
    for u in units:
        if u.name in seen:
            raise ValueError(f"two inputs map to the same output name {u.name!r} ({seen[u.name]} and {u.path}); "
                             "rename one of them, or run them into separate --out folders")
        seen[u.name] = u.path
    return units
