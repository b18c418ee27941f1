"""Loading pretrained parts by hub id or local folder, with one-line errors (shared by the encoders)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def looks_local(name_or_path: str) -> bool:
    """True if `name_or_path` is (or is clearly meant as) a local path rather than a hub id."""
    return os.path.exists(name_or_path) or name_or_path.startswith(("/", ".", "~"))


def one_line(err: BaseException, limit: int = 300) -> str:
    """A library error message folded onto one line and shortened to `limit` characters."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve(name_or_path: str, what: str) -> tuple[str, bool]:
    """(absolute folder or hub id, is_local); a local path that does not exist is a one-line error."""
    name_or_path = str(name_or_path)
    if not looks_local(name_or_path):
        return name_or_path, False
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ValueError(f"{what} weights not found: {name_or_path}")
    return str(path.resolve()), True


def load_pretrained(cls: Any, name_or_path: str, local: bool, what: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained` (offline for local folders); loading errors become one-line ValueErrors."""
    try:
        return cls.from_pretrained(name_or_path, local_files_only=local, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, EnvironmentError) as err:
        raise ValueError(f"cannot load {what} {name_or_path}: {one_line(err)}") from None
