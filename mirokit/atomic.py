"""Files written so that a kill at any moment leaves the old content or the new one, never a torn file.

The new content goes to a temporary sibling (a dot-file, so folder listings skip it) that is renamed over the
target. `owner` names the temporary: a writer that is the only one of its kind (one shard of a job) passes a
stable name, so its rerun after a kill overwrites and renames the same temporary instead of leaving it behind;
without an owner the process id keeps concurrent writers apart.
"""

from __future__ import annotations

import os
from pathlib import Path


def temporary_path(path: str | Path, owner: str | None = None, suffix: str = ".tmp") -> Path:
    """path -> its temporary sibling `.NAME.OWNER.tmp` (OWNER: the process id when None)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{owner if owner is not None else os.getpid()}{suffix}")


def write_text_atomic(path: str | Path, text: str, owner: str | None = None) -> Path:
    """Write `text` to `path` through a temporary sibling and a rename; returns the path."""
    path = Path(path)
    tmp = temporary_path(path, owner)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


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
