"""GenEval's prompt set and class names, shipped as package data (MIT, Ghosh et al. 2023: see LICENSE here).

- `evaluation_metadata.jsonl`: the 553 official prompts, one GenEval record per line
  ({"tag", "include", ["exclude"], "prompt"}), in the official order;
- `object_names.txt`: the 80 COCO thing classes as GenEval names them, in the detector's label order
  (label i of the Mask2Former COCO checkpoint is line i).
"""

from __future__ import annotations

import json
from pathlib import Path

from mirokit.evaluate.geneval_rules import validate_metadata

DATA_DIR = Path(__file__).parent
PROMPTS_PATH = DATA_DIR / "evaluation_metadata.jsonl"
OBJECT_NAMES_PATH = DATA_DIR / "object_names.txt"
NUM_PROMPTS = 553
"""records in the official evaluation_metadata.jsonl"""


def load_geneval_prompts(path: str | Path | None = None) -> list[dict]:
    """GenEval records (default: the official 553) -> list of dicts in file order.

    Each non-empty line must be a valid GenEval record (see geneval_rules.validate_metadata); a bad
    line is a one-line ValueError naming the file and line.
    """
    path = Path(path) if path is not None else PROMPTS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"GenEval prompt file not found: {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            validate_metadata(record)
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        if not isinstance(record.get("prompt"), str):
            raise ValueError(f"{path}:{number}: no 'prompt' text")
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no prompts")
    return records


def load_object_names() -> list[str]:
    """GenEval's 80 class names, index = the COCO detector's label id."""
    names = [line.strip() for line in OBJECT_NAMES_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != 80:
        raise ValueError(f"{OBJECT_NAMES_PATH}: expected 80 class names, found {len(names)}")
    return names
