"""The body of a mirokit model card (markdown sections), from the folder summary `model_card.read_folder` returns:
the introduction, the rewards and what their calibrated targets stand for, a quickstart, the sampler defaults, the
model, the training, the evaluation results, the files and the method."""

from __future__ import annotations

from pathlib import Path

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
    from mirokit.sampling.options import names as surface_names

    skip = {"rewards", "negative_rewards", "guidance" if s.separate_guidance else ""}
    names = [n for n in surface_names(type(s), "preset") if n not in skip and getattr(s, n) is not None]
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
