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

CARD_NAME = "README.md"
LIBRARY_NAME = "mirokit"
DEFAULT_LICENSE = "other"
"""the weights' licence depends on the training data, which mirokit cannot know: "other" until one is given"""
BASE_TAGS = ["mirokit", "miro", "text-to-image", "reward-conditioning"]
REPO_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
OFFICIAL_REWARDS = {
    "clip_score": "image-text alignment: jina-clip-v2 cosine similarity",
    "aesthetic_score": "aesthetics: LAION aesthetic MLP on CLIP ViT-L/14 image embeddings",
    "image_reward_score": "human preference: ImageReward-v1.0",
    "pick_a_score_score": "human preference: PickScore_v1 (CLIP-H/14 fine-tuned)",
    "hpsv2_score": "human preference: HPSv2 (CLIP-H/14 fine-tuned)",
    "vqa_score": "prompt faithfulness: VQAScore (CLIP-FlanT5)",
    "sciscore_score": "scientific plausibility: SciScore",
}
"""what the official MIRO reward keys score (docs/METHOD.md section 2)"""
PAPER = ("Dufour, Degeorge, Ghosh, Kalogeiton, Picard, *MIRO: Multi-Reward cOnditioned pretraining improves T2I "
         "quality and efficiency*, [arXiv:2510.25897](https://arxiv.org/abs/2510.25897)")


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
    from mirokit.atomic import write_text_atomic

    directory = Path(directory)
    path = directory / CARD_NAME
    if path.exists() and not overwrite and not written_by_mirokit(path):
        warnings.warn(f"{path} was not written by mirokit (no `library_name: mirokit` in its front matter): kept as "
                      "it is, no model card written", UserWarning, stacklevel=2)
        return None
    card = build_model_card(directory, repo_id=repo_id, license=license, base_model=base_model,
                            eval_results=eval_results)
    return write_text_atomic(path, card)


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
    alone (no tensor is loaded); None if the file is missing; an unreadable header is a one-line error."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError(f"header size {size}")
            header = json.loads(f.read(size))
        tensors = [v for k, v in header.items() if k != "__metadata__"]
        count = sum(_product(v["shape"]) for v in tensors)
        return {"parameters": count, "dtypes": sorted({str(v["dtype"]) for v in tensors})}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
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


def _product(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _tag(key: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", key.lower()).strip("-")


# ---- the card's body ------------------------------------------------------------------------------------------

FILES = {"config.json": "generator config", "model.safetensors": "generator weights (EMA when the trainer wrote them)",
         "text_encoder/": "text encoder config (and its weights when it was trained)",
         "pipeline.json": "image space, reward keys, sampler defaults, training config",
         "calibration.json": "per reward, the raw-score bins behind the targets",
         "uncond_text.safetensors": "text embedding of the empty prompt",
         "train_state/": "optimizer and loop state to resume training (not uploaded)"}


def card_body(folder: dict, *, name: str, repo_id: str | None, eval_results: list[dict]) -> str:
    """The markdown below the front matter (folder: read_folder's dict)."""
    meta = folder["pipeline"]
    keys = [str(k) for k in meta.get("reward_keys") or []]
    version = meta.get("mirokit_version", "?")
    intro = (f"A **MIRO** (Multi-Reward cOnditioned) text-to-image model, saved by mirokit {version}. Besides the "
             f"prompt it takes one target in [0, 1] for each of its {len(keys)} rewards: during training every image "
             "came with its own reward scores, low ones included (nothing is filtered out), so at sampling time you "
             "ask for the scores you want. By default every target is 1.0 and guidance pushes away from the negative "
             "targets (see Sampling defaults); lower a target to trade that reward for the others.") if keys else (
             f"A text-to-image model saved by mirokit {version}, trained without reward keys: it is conditioned on "
             "the prompt only.")
    parts = [f"# {name}", intro, _rewards(keys, folder["calibration"]) if keys else "",
             _quickstart(keys, meta, repo_id or f"path/to/{name}"), _sampling(meta), _model(folder),
             _training(meta), _evaluation(eval_results), _files(folder["files"]), f"## Method\n\n{PAPER}."]
    return "\n\n".join(p for p in parts if p) + "\n"


def _rewards(keys: list[str], calibration) -> str:
    from mirokit.data.calibration import NUM_BINS

    described = any(k in OFFICIAL_REWARDS for k in keys)
    head = ["#", "key"] + (["scores"] if described else [])
    if calibration is not None:
        head += ["target 1.0", "target 0.5", "target 0.0", "raw scores in the training data"]
    rows = []
    for i, key in enumerate(keys, 1):
        row = [str(i), f"`{key}`"] + ([OFFICIAL_REWARDS.get(key, "")] if described else [])
        cal = calibration.rewards.get(key) if calibration is not None else None
        if cal is not None:
            e = cal.edges
            seen = f"{_num(cal.min)} to {_num(cal.max)}, mean {_num(cal.mean)} ± {_num(cal.std)}, {cal.count:,} scores"
            row += [f"raw ≥ {_num(e[NUM_BINS - 2])}", f"raw ≈ {_num(e[NUM_BINS // 2 - 1])}", f"raw < {_num(e[0])}",
                    seen + (f" ({cal.missing:,} missing)" if cal.missing else "")]
        elif calibration is not None:
            row += ["", "", "", "not calibrated: its targets are the data's values"]
        rows.append(row)
    if calibration is None:
        how = ("This folder has no calibration.json: the targets are the training data's reward values as they were "
               "given, in [0, 1] (1.0 the best the data had).")
    else:
        how = (f"Targets are calibrated (calibration.json): each reward's raw scores in the training data were cut "
               f"into {NUM_BINS} quantile bins of their distinct values, and a score in bin b (1 to {NUM_BINS}) became "
               f"(b − 1)/{NUM_BINS - 1}. A target of 1.0 asks for an image in the top bin, 0.0 for one in the bottom "
               "bin, 0.5 for one near the median of the distinct raw scores.")
    return (f"## Rewards\n\nThe reward keys, in the model's order:\n\n{_table(head, rows)}\n\n{how} A target of "
            "`None` leaves that reward out (a missing score, as in training).")


def _settings(meta: dict):
    from mirokit.sampling.settings import resolve

    defaults = meta.get("sampler_defaults") if isinstance(meta.get("sampler_defaults"), dict) else {}
    return defaults, resolve({}, None, defaults)


def _quickstart(keys: list[str], meta: dict, source: str) -> str:
    defaults, settings = _settings(meta)
    args = ['    "a photo of a red fox in the snow",']
    if keys:
        targets = ", ".join(f'"{k}": 1.0' for k in keys)
        args.append(f"    reward_targets={{{targets}}},  # one target in [0, 1] per reward; None = missing")
    args.append(f"    num_inference_steps={settings.steps},")
    if settings.text_guidance is None:
        args.append(f"    guidance_scale={settings.guidance},")
    rewards = "".join(f" --reward {k}=1.0" for k in keys)
    return ("## Quickstart\n\n```python\nfrom mirokit import MiroPipeline\n\n"
            f'pipe = MiroPipeline.from_pretrained("{source}")  # .to("cuda") on a GPU\n'
            "images = pipe(\n" + "\n".join(args) + "\n)\nimages[0].save(\"sample.png\")\n```\n\n"
            "The keyword names are the official MIRO package's; mirokit's own (`rewards`, `steps`, `guidance`, "
            "`num_images`, `seed`, `preset`) work too. From the command line:\n\n"
            f'```bash\nmirokit sample --model {source} --prompt "a photo of a red fox in the snow"{rewards} '
            "--out samples\n```")


def _sampling(meta: dict) -> str:
    defaults, s = _settings(meta)
    names = ["solver", "steps", "shift"] + (["guidance"] if s.text_guidance is None
                                            else ["text_guidance", "reward_guidance"])
    rows = [[n, str(getattr(s, n)), "this model" if n in defaults else "mirokit"] for n in names]
    for name, base in (("rewards", "1.0"), ("negative_rewards", "0.0")):
        named = ", ".join(f"`{k}`: {'missing' if v is None else v}" for k, v in getattr(s, name).items())
        rows.append([name, (named + f"; others {base}") if named else f"every reward {base}",
                     "this model" if name in defaults else "mirokit"])
    return ("## Sampling defaults\n\nWhat a call without sampling arguments uses (arguments and presets such as "
            '`preset="fast"` override them):\n\n' + _table(["setting", "value", "from"], rows))


def _model(folder: dict) -> str:
    meta, config, weights = folder["pipeline"], folder["config"], folder["weights"]
    backbone = config.get("backbone") if isinstance(config.get("backbone"), dict) else {}
    size = config.get("image_size")
    rows = [["generator", f"`{backbone.get('kind', '?')}` backbone, {_params(weights)}, samples of "
                          f"{size}×{size}×{config.get('image_channels', '?')}"],
            ["text encoder", _text_encoder(folder["text_encoder"], folder["text_encoder_weights"])],
            ["image space", _spec(_section(meta, "image_space") or {"kind": "pixels"})]]
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    if source.get("format") == "official-miro":
        rows.append(["origin", "converted from a released MIRO checkpoint"])
    return "## Model\n\n" + _table(["part", "what"], rows)


def _training(meta: dict) -> str:
    cfg = meta.get("training")
    if not isinstance(cfg, dict):
        return "## Training\n\nNot recorded in this folder (pipeline.json has no `training` section)."
    train, o = _section(cfg, "train"), _section(cfg, "optim")
    batch, step = train.get("batch_size"), meta.get("step")
    rows = [["steps", f"{step} (of {train.get('steps', '?')} configured)" if step is not None else "?"],
            ["batch", f"{batch} images per step (gradient accumulation {train.get('grad_accum', 1)})"]]
    if isinstance(step, int) and isinstance(batch, int):
        rows.append(["images seen", f"{step * batch:,}"])
    parent = meta.get("parent") if isinstance(meta.get("parent"), dict) else {}
    if parent.get("init_from"):
        rows.insert(0, ["started from", _parent(parent)])
    rows += [["precision", str(train.get("precision", "?"))], ["data", _spec(_section(cfg, "data"))],
             ["optimiser", f"{o.get('name', '?')}, lr {o.get('lr', '?')}, warmup {o.get('warmup_steps', '?')} steps, "
                           f"weight decay {o.get('weight_decay', '?')}, grad clip {o.get('grad_clip', '?')}"],
             ["EMA", f"decay {train.get('ema_decay', '?')} (the weights here are the EMA)"],
             ["condition dropout",
              f"caption {train.get('text_dropout', '?')}, rewards {train.get('reward_dropout', '?')}"]]
    return ("## Training\n\n" + _table(["", ""], rows) +
            "\n\nThe full resolved training config is pipeline.json's `training` section.")


def _parent(parent: dict) -> str:
    """pipeline.json's parent record -> "`owner/name`, variant `v`, revision `abc1234`" (a local folder by name)."""
    name = str(parent["init_from"])
    hub = parent.get("revision") is not None
    text = f"`{name if hub else Path(name).name}`" + ("" if hub else " (a local folder)")
    if parent.get("variant"):
        text += f", variant `{parent['variant']}`"
    if hub:
        text += f", revision `{str(parent['revision'])[:12]}`"
    return text + " (fine-tuned from its weights: `train.init_from`)"


def _evaluation(results: list[dict]) -> str:
    if not results:
        return ""
    rows = [[r["task"], r["dataset"] + (f" ({r['split']})" if r.get("split") else ""), r.get("name") or r["metric"],
             _num(r["value"]) if isinstance(r["value"], float) else str(r["value"])] for r in results]
    return "## Evaluation\n\n" + _table(["task", "dataset", "metric", "value"], rows)


def _files(names: list[str]) -> str:
    rows = [[f"`{n}`", FILES.get(n, "")] for n in names]
    return "## Files\n\n" + _table(["file", "holds"], rows) if rows else ""


def _text_encoder(config: dict, weights: dict | None) -> str:
    text = _spec(config) if config else "?"
    return text + (f", trained with the generator ({_params(weights)} in text_encoder/)" if weights else ", frozen")


def _spec(spec: dict) -> str:
    """{"kind": k, ...} -> "`k`: a=1, b=2" (scalars and short lists; no absolute paths)."""
    items = []
    for key, value in spec.items():
        if key == "kind" or value is None or isinstance(value, dict):
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value[:4])) + (", ..." if len(value) > 4 else "")
        value = str(value)
        items.append(f"{key}={Path(value).name if value.startswith('/') else value}")
    return f"`{spec.get('kind', '?')}`" + (": " + ", ".join(items) if items else "")


def _section(cfg: dict, name: str) -> dict:
    return cfg.get(name) if isinstance(cfg.get(name), dict) else {}


def _params(weights: dict | None) -> str:
    if not weights:
        return "weights not in this folder"
    n = weights["parameters"]
    size = next((f"{n / d:.1f}{u}" for d, u in ((1e9, "B"), (1e6, "M"), (1e3, "K")) if n >= d), str(n))
    return f"{size} parameters ({'/'.join(weights['dtypes'])})"


def _num(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = [head, ["---"] * len(head), *rows]
    return "\n".join("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
                     for row in cells)
