"""Loading pretrained parts by hub id or local folder (mirokit.sources decides which), with one-line errors
(shared by the encoders)."""

from __future__ import annotations

from typing import Any

from mirokit.sources import one_line


def load_pretrained(cls: Any, name_or_path: str, local: bool, what: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained` (offline for local folders); loading errors become one-line ValueErrors."""
    try:
        return cls.from_pretrained(name_or_path, local_files_only=local, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot load {what} {name_or_path}: {one_line(err)}") from None
