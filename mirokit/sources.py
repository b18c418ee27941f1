"""Where pretrained weights come from: a local folder or a Hugging Face hub id. One rule decides, for every loader
(encoders, reward scorers, GenEval's models, model folders, train.init_from):

- a path that exists is local;
- so is one clearly meant as a path: starting with "/", "." or "~", or with more than one "/" (a hub id is NAME
  or OWNER/NAME); such a path that does not exist is a one-line FileNotFoundError "WHAT weights not found: X";
- anything else is a hub id (loaded through huggingface_hub / transformers, from the cache when offline).
"""

from __future__ import annotations

import os
from pathlib import Path


def is_local(name_or_path: str | Path) -> bool:
    """True if `name_or_path` names a local path (it exists, or is clearly meant as one), False for a hub id."""
    text = str(name_or_path)
    return os.path.exists(os.path.expanduser(text)) or text.startswith(("/", ".", "~")) or text.count("/") > 1


def locate(name_or_path: str | Path, what: str) -> tuple[str, bool]:
    """name_or_path -> (the absolute local path, True) or (the hub id, False); a local path that does not exist is
    a one-line FileNotFoundError naming `what` ("WHAT weights not found: X")."""
    text = str(name_or_path)
    if not is_local(text):
        return text, False
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} weights not found: {text}")
    return str(path.resolve()), True


def one_line(err: BaseException, limit: int = 300) -> str:
    """A library error message folded onto one line and shortened to `limit` characters."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def model_folder(name_or_path: str | Path, variant: str | None = None, **download) -> Path:
    """A mirokit model folder or released checkpoint -> its local folder (+ the `variant` subfolder): a local path
    as it is, a hub id (OWNER/NAME) downloaded to the hub cache (`download`: cache_dir, revision, token of
    `huggingface_hub.snapshot_download`; only the variant's files). A missing folder or a failed download is a
    one-line FileNotFoundError."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if not is_local(text) and text.count("/") == 1:  # a mirokit model on the hub is always OWNER/NAME
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(text, allow_patterns=[f"{variant}/*"] if variant else None,
                                          **{k: v for k, v in download.items() if v is not None}))
        except Exception as err:  # network, auth and missing-repo errors alike
            raise FileNotFoundError(f"{text} is not a local folder, and downloading it from the hub failed: "
                                    f"{one_line(err)}") from None
    directory = path / variant if variant else path
    if not directory.is_dir():
        what = f"variant {variant!r} of {text}" if variant else "model directory"
        raise FileNotFoundError(f"{what} not found: {directory}")
    return directory
