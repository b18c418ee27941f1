"""The model card (README.md) of a mirokit model folder, made with huggingface_hub's ModelCard / ModelCardData.

The card is built from the folder's own files (pipeline.json, config.json, calibration.json, the header of
model.safetensors), so it describes exactly what is saved or uploaded: what the model is, its reward keys in order
and which raw scores their targets stand for, how it was trained, its sampler defaults, a quickstart, and its
evaluation results when it has some. Front matter: `library_name: mirokit`, `pipeline_tag: text-to-image`, tags,
license, optional base_model (a fine-tune of a hub model: its parent, from pipeline.json's `parent` record) and a
model-index. The card is deterministic (no dates, no absolute paths).

A README.md that mirokit did not write (no `library_name: mirokit` in its front matter) is kept as it is, with a
warning; one mirokit wrote is replaced. docs/HUB.md describes the card.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from mirokit.model_card_body import card_body

CARD_NAME = "README.md"
LIBRARY_NAME = "mirokit"
DEFAULT_LICENSE = "other"
"""the weights' licence depends on the training data, which mirokit cannot know: "other" until one is given"""
BASE_TAGS = ["mirokit", "miro", "text-to-image", "reward-conditioning"]
REPO_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
def check_repo_id(repo_id: str) -> str:
    """A hub repo id `owner/name` (letters, digits, '-', '_', '.') -> itself; anything else is a one-line error."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(REPO_ID.fullmatch(p) and ".." not in p and "--" not in p for p in parts):
        raise ValueError(f"a hub repo id must be OWNER/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")
    return repo_id


def written_by_mirokit(path: str | Path) -> bool:
    """True if the README at `path` has `library_name: mirokit` in its YAML front matter (a card mirokit wrote)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
        match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
        data = yaml.safe_load(match.group(1)) if match else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("library_name") == LIBRARY_NAME


def write_model_card(directory: str | Path, *, repo_id: str | None = None, license: str | None = None,
                     base_model: str | list[str] | None = None, eval_results: list[dict] | None = None,
                     overwrite: bool = False) -> Path | None:
    """Write DIRECTORY/README.md, the model card of the mirokit model folder `directory` -> its path, or None when
    the folder holds a README.md that mirokit did not write (kept, with a warning; `overwrite=True` replaces it).

    repo_id: the hub repo (OWNER/NAME) the quickstart loads (default: a placeholder path to the folder).
    license: a hub licence id (default: pipeline.json's "license", else "other": the weights' licence depends on
        the training data). base_model: the hub id(s) it was fine-tuned or converted from (default: pipeline.json's
        "base_model"). eval_results: [{"metric", "value", "dataset", optional "task" (default "text-to-image"),
        "dataset_type", "name", "split"}] (default: pipeline.json's "eval_results"), listed in the card and its
        model-index. A folder that is not a mirokit model folder or a malformed result is a one-line error.
    """
    from mirokit.atomic import write_atomic

    directory = Path(directory)
    path = directory / CARD_NAME
    if path.exists() and not overwrite and not written_by_mirokit(path):
        warnings.warn(f"{path} was not written by mirokit (no `library_name: mirokit` in its front matter): kept as "
                      "it is, no model card written", UserWarning, stacklevel=2)
        return None
    card = build_model_card(directory, repo_id=repo_id, license=license, base_model=base_model,
                            eval_results=eval_results)
    return write_atomic(path, card)


def build_model_card(directory: str | Path, *, repo_id: str | None = None, license: str | None = None,
                     base_model: str | list[str] | None = None, eval_results: list[dict] | None = None) -> str:
    """The text of the model card of `directory` (see write_model_card for the arguments)."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = read_folder(directory)
    meta = folder["pipeline"]
    if repo_id is not None:
        check_repo_id(repo_id)
    name = repo_id.split("/")[1] if repo_id else Path(directory).resolve().name
    results = check_eval_results(eval_results if eval_results is not None else meta.get("eval_results") or [])
    keys = [str(k) for k in meta.get("reward_keys") or []]
    tags = BASE_TAGS + [t for t in (_tag(k) for k in keys) if t and t not in BASE_TAGS]
    data = ModelCardData(
        library_name=LIBRARY_NAME, pipeline_tag="text-to-image",
        license=license or meta.get("license") or DEFAULT_LICENSE, tags=tags,
        base_model=base_model if base_model is not None else meta.get("base_model"),
        model_name=name if results else None, eval_results=[_eval_result(r) for r in results] or None)
    text = f"---\n{data.to_yaml()}\n---\n\n{card_body(folder, name=name, repo_id=repo_id, eval_results=results)}"
    return str(ModelCard(text, ignore_metadata_errors=False))


def read_folder(directory: str | Path) -> dict:
    """What the card says, read from a mirokit model folder: {"pipeline", "config", "text_encoder" (config dicts),
    "calibration" (Calibration or None), "weights", "text_encoder_weights" ({"parameters", "dtypes"} or None),
    "files" (top-level names)}. A folder without pipeline.json is a one-line error."""
    from mirokit.data.calibration import Calibration
    from mirokit.data.source import CALIBRATION_FILE

    directory = Path(directory)
    if not (directory / "pipeline.json").is_file():
        raise FileNotFoundError(f"not a mirokit model folder: {directory} (missing pipeline.json)")
    calibration = None
    if (directory / CALIBRATION_FILE).is_file():
        calibration = Calibration.load(directory / CALIBRATION_FILE)
    return {"pipeline": _json(directory / "pipeline.json"), "config": _json(directory / "config.json"),
            "text_encoder": _json(directory / "text_encoder" / "config.json"), "calibration": calibration,
            "weights": weights_summary(directory / "model.safetensors"),
            "text_encoder_weights": weights_summary(directory / "text_encoder" / "model.safetensors"),
            "files": sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir()
                            if not p.name.startswith(".") and p.name != CARD_NAME)}


def weights_summary(path: Path) -> dict | None:
    """{"parameters": number of values, "dtypes": sorted dtype names} of a safetensors file, read from its header
    alone (safetensors' own reader; no tensor is loaded); None if the file is missing; an unreadable file is a
    one-line error."""
    import math

    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "np") as f:
            slices = [f.get_slice(name) for name in f.keys()]
            return {"parameters": sum(math.prod(s.get_shape()) for s in slices),
                    "dtypes": sorted({str(s.get_dtype()) for s in slices})}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the safetensors header ({err})") from None


def check_eval_results(results) -> list[dict]:
    """Evaluation results -> the same list with defaults filled in ("task": "text-to-image", "dataset_type": the
    dataset name in lower case with '-' for other characters); a malformed item is a one-line error naming it."""
    if not isinstance(results, (list, tuple)):
        raise ValueError(f"eval_results must be a list of {{metric, value, dataset}} dicts, got "
                         f"{type(results).__name__}")
    checked = []
    for i, item in enumerate(results):
        if not isinstance(item, dict):
            raise ValueError(f"eval_results[{i}] must be a dict with metric, value and dataset, got {item!r}")
        missing = [k for k in ("metric", "value", "dataset") if item.get(k) in (None, "")]
        if missing:
            raise ValueError(f"eval_results[{i}] has no {', '.join(missing)} (each result needs metric, value and "
                             "dataset)")
        value = item["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"eval_results[{i}]: value must be a number or a string, got {value!r}")
        unknown = sorted(set(item) - {"metric", "value", "dataset", "task", "dataset_type", "name", "split"})
        if unknown:
            raise ValueError(f"eval_results[{i}]: unknown field {unknown[0]!r}")
        dataset = str(item["dataset"])
        checked.append({"task": "text-to-image", "dataset_type": re.sub(r"[^a-z0-9_.]+", "-", dataset.lower()),
                        **item, "dataset": dataset, "metric": str(item["metric"])})
    return checked


def _eval_result(item: dict):
    from huggingface_hub import EvalResult

    return EvalResult(task_type=item["task"], dataset_type=item["dataset_type"], dataset_name=item["dataset"],
                      metric_type=item["metric"], metric_value=item["value"], metric_name=item.get("name"),
                      dataset_split=item.get("split"))


def _json(path: Path) -> dict:
    """A JSON object file -> dict ({} when missing); bad JSON is a one-line error naming the file."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    return data if isinstance(data, dict) else {}


def _tag(key: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", key.lower()).strip("-")
