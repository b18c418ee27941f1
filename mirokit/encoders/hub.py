"""Loading pretrained parts by hub id or local folder (mirokit.sources decides which), with one-line errors
(shared by the encoders): whole models, and the parts of a diffusers pipeline folder (`subfolder=`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirokit.sources import one_line


def load_pretrained(cls: Any, name_or_path: str, local: bool, what: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained` (offline for local folders); loading errors become one-line ValueErrors."""
    try:
        return cls.from_pretrained(name_or_path, local_files_only=local, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        where = f"{name_or_path}/{kwargs['subfolder']}" if kwargs.get("subfolder") else name_or_path
        raise ValueError(f"cannot load {what} {where}: {one_line(err)}") from None


def check_part(name_or_path: str, local: bool, subfolder: str, what: str, *, tokenizer: bool = False) -> None:
    """One-line errors for a local pipeline folder lacking `subfolder` (or its config.json / tokenizer files);
    nothing to check for a hub id."""
    if not local:
        return
    folder = Path(name_or_path) / subfolder if subfolder else Path(name_or_path)
    if not folder.is_dir():
        raise ValueError(f"{what} folder {name_or_path} has no {subfolder}/ folder")
    needed = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model") if tokenizer else ("config.json",)
    if not any((folder / name).is_file() for name in needed):
        raise ValueError(f"{what} folder {folder} has no {' or '.join(needed)}")


def load_part_config(name_or_path: str, local: bool, subfolder: str, what: str, model_types: tuple[str, ...]):
    """The transformers config of a pipeline part, checked to be one of `model_types` (a wrong class is a one-line
    ValueError naming what it holds)."""
    from transformers import AutoConfig

    check_part(name_or_path, local, subfolder, what)
    config = load_pretrained(AutoConfig, name_or_path, local, what, subfolder=subfolder)
    if config.model_type not in model_types:
        raise ValueError(f"{what} {name_or_path}/{subfolder} holds a {config.model_type} model, not "
                         f"{' or '.join(model_types)}")
    return config
