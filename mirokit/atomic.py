"""The one way mirokit writes a file: so that a kill at any moment leaves the old content or the new one, never a
torn file.

The new content goes to a temporary sibling (a dot-file, so folder listings and `*.tar` / `*.parquet` globs skip
it) that is renamed over the target (`move_into_place`, the only `os.replace` of the package). `owner` names the
temporary. By default it is SOLE_WRITER: the file has one writer, so its rerun after a kill overwrites and renames
the same temporary instead of leaving it behind. Writers that share a file name pass their own stable name (a shard
of a job); a file that several processes may write at once (a download cache, a dataset index) takes
`process_owner()`, and such a writer removes what a killed run left (`stale_temporaries`).

    write_atomic(path, bytes | str)             write_json_atomic(path, obj)
    write_parquet_atomic(path, pyarrow table)   save_safetensors_atomic(path, {name: tensor})
    save_image_atomic(path, PIL image or uint8 array)
    with atomic_path(path) as tmp: ...          anything else (a tar, a folder, a download): write `tmp`
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SUFFIX = ".tmp"
"""every temporary's name ends so (mirokit.hub never uploads such files)"""
SOLE_WRITER = "sole"
"""the default owner: the target has exactly one writer (a job share's manifest, rank 0's files, a report), so a
rerun after a kill overwrites the same temporary"""


def process_owner() -> str:
    """This process's owner name (its process id), for a file that several processes may write at once."""
    return f"pid{os.getpid()}"


def temporary_path(path: str | Path, owner: str = SOLE_WRITER) -> Path:
    """path -> its temporary sibling `.NAME.OWNER.tmp`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{owner}{SUFFIX}")


def stale_temporaries(folder: str | Path, prefix: str) -> list[Path]:
    """The temporaries (any owner) in `folder` of the targets whose name starts with `prefix`, sorted."""
    return sorted(Path(folder).glob(f".{glob.escape(prefix)}*{SUFFIX}"))


def move_into_place(tmp: str | Path, path: str | Path) -> Path:
    """Rename the finished temporary `tmp` (a file, or a folder when `path` is absent) over `path`; returns
    `path`. The one rename behind every atomic write of mirokit."""
    os.replace(tmp, path)
    return Path(path)


def remove_temporary(tmp: str | Path) -> None:
    """Delete a temporary file or folder if it exists (a failed write's leftover)."""
    tmp = Path(tmp)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, owner: str = SOLE_WRITER) -> Iterator[Path]:
    """Yield the temporary path of `path` (see temporary_path) for the caller to write; when the block ends it is
    renamed over `path`; when the block or the rename raises, it is removed (the old `path` stays). The parent
    folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path, owner)
    try:
        yield tmp
        move_into_place(tmp, path)
    except BaseException:
        remove_temporary(tmp)
        raise


def write_atomic(path: str | Path, data: bytes | str, owner: str = SOLE_WRITER) -> Path:
    """Write `data` (bytes, or str as UTF-8) to `path` atomically; returns the path."""
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"write_atomic({path}): expected bytes or str, got {type(data).__name__}")
    with atomic_path(path, owner) as tmp:
        if isinstance(data, str):
            with open(tmp, "w", encoding="utf-8") as fp:
                fp.write(data)
        else:
            with open(tmp, "wb") as fp:
                fp.write(data)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any, owner: str = SOLE_WRITER, *, indent: int | None = 2,
                      default=None) -> Path:
    """Write `data` as JSON (`indent`, `default` as json.dumps takes them; a final newline) atomically; returns
    the path."""
    return write_atomic(path, json.dumps(data, indent=indent, default=default) + "\n", owner)


def write_parquet_atomic(path: str | Path, table, owner: str = SOLE_WRITER, **options: Any) -> Path:
    """Write a pyarrow Table as parquet (`options` for pyarrow.parquet.write_table) atomically; returns the path."""
    import pyarrow.parquet as pq

    with atomic_path(path, owner) as tmp:
        pq.write_table(table, tmp, **options)
    return Path(path)


def save_safetensors_atomic(path: str | Path, tensors: dict, metadata: dict | None = None,
                            owner: str = SOLE_WRITER) -> Path:
    """Write name -> tensor as safetensors (tensors as given: contiguous, on CPU) atomically; returns the path."""
    import safetensors.torch

    with atomic_path(path, owner) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def save_image_atomic(path: str | Path, image, owner: str = SOLE_WRITER, format: str = "PNG", **options: Any) -> Path:
    """Write a PIL image or an (H, W[, C]) uint8 array in `format` (PIL's name; `options` for PIL's save)
    atomically; returns the path."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    with atomic_path(path, owner) as tmp:
        image.save(tmp, format=format, **options)
    return Path(path)


def drop_torn_tail(path: str | Path) -> int:
    """Cut an append-only line file (JSONL) back to its last complete line before appending to it: a kill
    during a write leaves a partial last line that the next record would otherwise be glued to. Returns the
    number of bytes dropped (0 for a missing file or one that ends with a newline)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb+") as fp:
        size = fp.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fp.seek(size - 1)
        if fp.read(1) == b"\n":
            return 0
        fp.seek(0)
        keep = fp.read().rfind(b"\n") + 1
        fp.truncate(keep)
        return size - keep
