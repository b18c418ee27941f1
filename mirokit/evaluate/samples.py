"""What every evaluation command shares: prompt sets, sampling to uint8, reward scoring.

Image j of prompt i starts from noise seeded by (seed, i, j) (mirokit.sampling.noise), so an image does not
depend on the batch it was drawn in, on sharding or on resuming, and two models (or two settings) compared on
one prompt set start from the same noise (common random numbers: their difference has less variance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

PROMPTS_DIR = Path(__file__).with_name("prompts")
BUILTIN_PROMPTS = {"parti-style": "parti_style.txt", "drawbench-style": "drawbench_style.txt"}
"""built-in prompt lists (package data): name -> file in mirokit/evaluate/prompts/"""


def load_prompts(spec: str | Path) -> list[dict]:
    """A prompt set -> records [{"prompt": str, ...}].

    spec: a built-in name (parti-style, drawbench-style), a .txt file (one prompt per line, optionally
    CATEGORY<TAB>PROMPT; # starts a comment line), a .tsv file with a header naming a "Prompt" column (and
    optionally "Category", as PartiPrompts' TSV), or a .jsonl file of objects with "prompt" (GenEval's
    metadata schema: extra fields such as "tag" are kept). Empty sets, missing files and lines without a
    prompt are one-line errors naming the file and line.
    """
    name = str(spec)
    path = PROMPTS_DIR / BUILTIN_PROMPTS[name] if name in BUILTIN_PROMPTS else Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {name} (built-in sets: {', '.join(BUILTIN_PROMPTS)})")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot be read as text ({err})") from None
    if path.suffix == ".tsv":
        return _tsv_records(path, lines)
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or (path.suffix != ".jsonl" and line.lstrip().startswith("#")):
            continue
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err})") from None
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"]:
                raise ValueError(f"{path}:{number}: expected an object with a non-empty \"prompt\" string")
        else:
            category, tab, prompt = line.partition("\t")
            record = {"prompt": prompt.strip(), "category": category.strip()} if tab else {"prompt": line.strip()}
            if not record["prompt"]:
                raise ValueError(f"{path}:{number}: empty prompt")
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no prompts")
    return records


def _tsv_records(path: Path, lines: list[str]) -> list[dict]:
    header = [h.strip().lower() for h in (lines[0].split("\t") if lines else [])]
    if "prompt" not in header:
        raise ValueError(f"{path}: the first line must be a header naming a Prompt column")
    col, cat = header.index("prompt"), header.index("category") if "category" in header else None
    records = []
    for number, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if not line.strip():
            continue
        if len(cells) <= col or not cells[col].strip():
            raise ValueError(f"{path}:{number}: empty prompt")
        record = {"prompt": cells[col].strip()}
        if cat is not None and len(cells) > cat:
            record["category"] = cells[cat].strip()
        records.append(record)
    if not records:
        raise ValueError(f"{path}: no prompts")
    return records


def choose_prompts(count: int, limit: int | None, seed: int = 0) -> list[int]:
    """Indices of `limit` of `count` prompts, drawn without replacement from `seed` and kept in file order
    (a seeded draw, not the first N: prompt files are often sorted by category); all when limit is None."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit < 1:
        raise ValueError(f"--max-prompts must be >= 1, got {limit}")
    return sorted(np.random.default_rng(seed).choice(count, size=limit, replace=False).tolist())


def to_uint8(images: list) -> np.ndarray:
    """N PIL images -> (N, H, W, 3) uint8."""
    return np.stack([np.asarray(im.convert("RGB")) for im in images]) if images else np.zeros((0, 1, 1, 3), np.uint8)


def render(pipe, prompts: list[str], pairs: list[tuple[int, int]], settings=None, *,
           progress: bool = False) -> np.ndarray:
    """Sample prompts[k] from the noise of pairs[k] = (prompt index, image index) with `settings`
    (SamplingSettings; default the official sampler) -> (N, H, W, 3) uint8."""
    from mirokit.sampling import generate_pairs

    if not prompts and not pairs:
        return np.zeros((0, 1, 1, 3), np.uint8)
    return to_uint8(pipe.image_space.to_pil(generate_pairs(pipe, prompts, pairs, settings, progress=progress)))


def build_scorers(keys: list[str], options: dict | None = None) -> dict:
    """{key: scorer} from the reward registry; `options` = {key: {option: value}} (unknown keys: one-line error)."""
    from mirokit.rewards import build_scorer

    options = options or {}
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise ValueError(f"scorer options for {', '.join(unknown)}, which is not scored here "
                         f"(scored: {', '.join(keys)})")
    return {k: build_scorer(k, **options.get(k, {})) for k in keys}


def score_images(scorers: dict, images_u8: np.ndarray, captions: list[str], *, batch: int = 64,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """(N, H, W, 3) uint8 images + N captions -> {key: (N,) float64 raw scores} (NaN = could not score)."""
    from PIL import Image

    out: dict[str, list] = {k: [] for k in scorers}
    for start in tqdm(range(0, len(captions), batch), desc="scoring", disable=not progress, leave=False):
        pils = [Image.fromarray(a) for a in images_u8[start:start + batch]]
        caps = list(captions[start:start + batch])
        for key, scorer in scorers.items():
            scores = np.asarray(scorer.score(pils, caps), dtype=np.float64).reshape(-1)
            if len(scores) != len(pils):
                raise ValueError(f"scorer {key} returned {len(scores)} scores for {len(pils)} images")
            out[key].append(scores)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def load_pipes(models: dict[str, str], *, device: str = "cpu", text_encoder: str | None = None,
               vae: str | None = None, variant: str | None = None, dtype=None) -> dict:
    """{name: model folder or hub id} -> {name: MiroPipeline} on `device`, the generator in `dtype` (None: as
    stored); `variant`: the subfolder of every model (one-line errors for missing folders)."""
    from mirokit.pipeline import MiroPipeline

    return {name: MiroPipeline.from_pretrained(path, variant=variant, device=device, text_encoder=text_encoder,
                                               vae=vae).to(dtype=dtype)
            for name, path in models.items()}


def sample_and_score(pipe, records: list[dict], indices: list[int], settings=None, *, images_per_prompt: int = 1,
                     scorers: dict | None = None, metric=None, keep_images: bool = False, bar=None) -> dict:
    """Draw `images_per_prompt` images for each prompt records[i], i in `indices`, batch by batch, and score them.

    settings: SamplingSettings (its targets name only keys the model knows: the caller drops the others);
    scorers: {key: scorer} of build_scorers; metric: a PromptMetric
    (its per-image scores). bar: a tqdm bar advanced by images. Returns {"pairs": [(i, j)], "scores":
    {key: (N,) float64}, "metric": (N,) float64 or None, "images": (N, H, W, 3) uint8 if keep_images}.
    """
    from mirokit.sampling import SamplingSettings

    settings = settings or SamplingSettings()
    pairs = [(i, j) for i in indices for j in range(images_per_prompt)]
    scores: dict[str, list] = {k: [] for k in scorers or {}}
    metric_scores, kept = [], []
    for start in range(0, len(pairs), settings.batch_size):
        chunk = pairs[start:start + settings.batch_size]
        prompts = [records[i]["prompt"] for i, _ in chunk]
        images = render(pipe, prompts, chunk, settings)
        for key, values in score_images(scorers or {}, images, prompts).items():
            scores[key].append(values)
        if metric is not None:
            metric_scores.append(np.asarray(metric.score(images, [records[i] for i, _ in chunk]), dtype=np.float64))
        if keep_images:
            kept.append(images)
        if bar is not None:
            bar.update(len(chunk))
    out = {"pairs": pairs, "scores": {k: np.concatenate(v) if v else np.zeros(0) for k, v in scores.items()},
           "metric": np.concatenate(metric_scores) if metric_scores else (np.zeros(0) if metric else None)}
    if keep_images:
        out["images"] = np.concatenate(kept) if kept else np.zeros((0, 1, 1, 3), np.uint8)
    return out


@dataclass(kw_only=True)
class ModelRun:
    """One model and its sampling settings in an evaluation."""

    name: str
    """label in tables and plots"""
    pipe: Any
    """the loaded MiroPipeline"""
    settings: Any = None
    """its SamplingSettings (targets only of the keys it knows)"""
    record: dict = field(default_factory=dict)
    """a JSON record of the model and its settings (for the summary)"""
