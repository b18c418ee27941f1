"""`mirokit eval diversity`: how different the images of one prompt are, several models (or folders) side by side.

Per prompt, N images (image j from the noise of (seed, i, j), the same for every model) are turned into
features by registered extractors (mirokit.evaluate.features); per prompt and extractor:

- the **Vendi score** (Friedman & Dieng 2023): exp of the Shannon entropy of the eigenvalues of K / N, K the
  (N, N) cosine-similarity kernel. 1 when the N images are identical, N when their features are orthogonal:
  "the effective number of distinct images";
- the **mean pairwise cosine distance**, 1 - K_ab averaged over the N(N-1)/2 pairs a < b;
- for extractors that parse attributes (the shapes world's `world_scene`), the Shannon **entropy** (bits) of
  each attribute the prompt leaves free, pooled over every object found in the prompt's N images (a plug-in
  estimate: it grows with N, so compare arms at the same N).

Each is averaged over prompts with a 95% t-interval; each arm after the first also gets its per-prompt paired
difference to the first. An *arm* is a model with its sampling settings, a model's samples after best-of-k
selection by a reward (image j of the selected set is the best by that reward of the model's images
j*k .. j*k + k - 1: the post-hoc selection MIRO's abstract argues harms diversity), or a GenEval-layout folder
of images. Per-prompt rows are appended to OUT/diversity.jsonl as they are computed, so a rerun with the same
settings resumes (other settings are refused).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.evaluate.pages import fmt_ci, plot_ci_panels, text_table, write_json, write_page
from mirokit.evaluate.samples import ModelRun, sample_and_score
from mirokit.evaluate.stats import mean_ci, paired_mean_ci

ROWS_FILE = "diversity.jsonl"
RUN_FILE = "run.json"


def cosine_kernel(features) -> np.ndarray:
    """(N, D) features -> (N, N) cosine similarities; the diagonal is 1 (a zero feature is unlike every other)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    k = np.clip(u @ u.T, -1.0, 1.0)
    np.fill_diagonal(k, 1.0)
    return k


def vendi_score(features) -> float:
    """exp(-sum_i l_i log l_i), l_i the eigenvalues of K / N, K = cosine_kernel(features (N, D)); in [1, N]."""
    k = cosine_kernel(features)
    n = len(k)
    if n == 0:
        return float("nan")
    lam = np.clip(np.linalg.eigvalsh(k / n), 0.0, None)
    lam = lam[lam > 1e-12]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def mean_cosine_distance(features) -> float:
    """Mean of 1 - cos(f_a, f_b) over the pairs a < b of (N, D) features (NaN for N < 2)."""
    k = cosine_kernel(features)
    n = len(k)
    if n < 2:
        return float("nan")
    return float((1.0 - k[np.triu_indices(n, 1)]).mean())


def entropy_bits(values: list) -> float:
    """Plug-in Shannon entropy (bits) of a list of hashable values (NaN when empty)."""
    if not values:
        return float("nan")
    _, counts = np.unique(np.asarray([str(v) for v in values]), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def prompt_row(images: np.ndarray, records: list[dict], extractors: dict) -> dict:
    """The N images (N, H, W, 3) uint8 of one prompt -> {"features": {ext: {"vendi", "cosine_distance"}},
    "entropy": {"ext.attribute": bits}, "n_images"}."""
    row = {"n_images": int(len(images)), "features": {}, "entropy": {}}
    for name, ext in extractors.items():
        feats = np.asarray(ext.features(images, records), dtype=np.float64)
        if feats.shape[0] != len(images):
            raise ValueError(f"feature extractor {name} returned {feats.shape[0]} features for {len(images)} images")
        row["features"][name] = {"vendi": vendi_score(feats), "cosine_distance": mean_cosine_distance(feats)}
        if hasattr(ext, "attributes"):
            pooled: dict[str, list] = {}
            for per_image in ext.attributes(images, records):
                for attr, values in per_image.items():
                    pooled.setdefault(attr, []).extend(values)
            for attr in getattr(ext, "attribute_names", sorted(pooled)):
                row["entropy"][f"{name}.{attr}"] = entropy_bits(pooled.get(attr, []))
    return row


@dataclass(kw_only=True)
class Arm:
    """One row of the comparison: a model (run), a model after best-of-k selection, or an image folder."""

    name: str
    """label in tables and plots"""
    run: ModelRun | None = None
    """the model and its sampling settings (None for a folder)"""
    folder: Path | None = None
    """a GenEval-layout folder of images (instead of a model)"""
    select: str | None = None
    """reward key choosing the best of each group of `best_of` images (None: no selection)"""
    best_of: int = 1
    """group size k of the selection"""

    def record(self) -> dict:
        """What decides this arm's images (for resuming and the summary)."""
        if self.folder is not None:
            return {"folder": str(self.folder)}
        return {**(self.run.record if self.run else {}), "select": self.select, "best_of": self.best_of}


def select_best(images: np.ndarray, scores: np.ndarray, best_of: int) -> tuple[np.ndarray, np.ndarray]:
    """images (N*k, H, W, 3), scores (N*k,) -> (the best image of each consecutive group of k (N, H, W, 3),
    its index (N,)); NaN scores lose."""
    s = np.where(np.isfinite(scores), scores, -np.inf).reshape(-1, best_of)
    pick = np.arange(len(s)) * best_of + np.argmax(s, axis=1)
    return images[pick], pick


def _load_rows(out: Path, run_record: dict) -> list[dict]:
    """Rows already written under the same settings (resume); other settings are refused."""
    path, meta = out / ROWS_FILE, out / RUN_FILE
    if not meta.is_file():
        return []
    old = json.loads(meta.read_text())
    if old != run_record:
        changed = sorted(k for k in set(old) | set(run_record) if old.get(k) != run_record.get(k))
        raise ValueError(f"{out} holds a diversity run with other settings ({', '.join(changed)}); "
                         "use another --out or delete it")
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: recomputed
            continue
    return rows


def evaluate_diversity(arms: list[Arm], records: list[dict], indices: list[int], extractors: dict, *,
                       images_per_prompt: int, out_dir: str | Path, scorers: dict | None = None,
                       extractor_specs: dict | None = None, progress: bool = True, prompts_per_chunk: int = 8) -> dict:
    """Compute (or resume) every arm's per-prompt rows into OUT/diversity.jsonl -> the summary (see summarize).

    records/indices: the prompt set and the evaluated prompts (model arms); folders bring their own prompts.
    scorers: {key: scorer} for the arms' `select` keys. extractor_specs: {name: options} recorded for resuming.
    """
    if images_per_prompt < 2:
        raise ValueError("diversity needs at least 2 images per prompt")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"two arms are named {next(n for n in names if names.count(n) > 1)!r}")
    for arm in arms:
        if arm.select is not None and arm.select not in (scorers or {}):
            raise ValueError(f"arm {arm.name}: no scorer for the selection reward {arm.select!r}")
        if arm.best_of < 1:
            raise ValueError(f"arm {arm.name}: best_of must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_record = {"arms": {a.name: a.record() for a in arms}, "images_per_prompt": images_per_prompt,
                  "extractors": extractor_specs or {k: {} for k in extractors}, "prompt_indices": list(indices)}
    rows = _load_rows(out, run_record)
    write_json(out / RUN_FILE, run_record)
    done = {(r["arm"], r["prompt_index"]) for r in rows}
    with open(out / ROWS_FILE, "a") as f:
        for arm in arms:
            for row in _arm_rows(arm, records, indices, extractors, images_per_prompt, scorers or {}, done,
                                 progress=progress, prompts_per_chunk=prompts_per_chunk):
                f.write(json.dumps(row) + "\n")
                f.flush()
                rows.append(row)
    return summarize(arms, rows)


def _arm_rows(arm: Arm, records, indices, extractors, n: int, scorers: dict, done: set, *, progress: bool,
              prompts_per_chunk: int):
    """Yield the arm's per-prompt rows not in `done`."""
    if arm.folder is not None:
        from mirokit.evaluate.geneval_folder import load_image, scan_folder

        scan = scan_folder(arm.folder)
        groups: dict[int, list] = {}
        for item in scan.items:
            groups.setdefault(item.prompt_index, []).append(item)
        todo = [i for i in sorted(groups) if (arm.name, i) not in done]
        for i in tqdm(todo, desc=f"diversity {arm.name}", disable=not progress, dynamic_ncols=True):
            items = groups[i][:n]
            images = np.stack([np.asarray(load_image(it.path).convert("RGB")) for it in items])
            yield {"arm": arm.name, "prompt_index": i, "prompt": items[0].metadata["prompt"],
                   **prompt_row(images, [it.metadata for it in items], extractors)}
        return
    todo = [i for i in indices if (arm.name, i) not in done]
    k = arm.best_of if arm.select else 1
    bar = tqdm(total=len(todo) * n * k, desc=f"diversity {arm.name}", unit="img", disable=not progress,
               dynamic_ncols=True)
    for start in range(0, len(todo), prompts_per_chunk):
        chunk = todo[start:start + prompts_per_chunk]
        res = sample_and_score(arm.run.pipe, records, chunk, arm.run.settings, images_per_prompt=n * k,
                               scorers={arm.select: scorers[arm.select]} if arm.select else None,
                               keep_images=True, bar=bar)
        for p, i in enumerate(chunk):
            images = res["images"][p * n * k:(p + 1) * n * k]
            if arm.select:
                images, _ = select_best(images, res["scores"][arm.select][p * n * k:(p + 1) * n * k], k)
            yield {"arm": arm.name, "prompt_index": i, "prompt": records[i]["prompt"],
                   **prompt_row(images, [records[i]] * n, extractors)}
    bar.close()


def summarize(arms: list[Arm], rows: list[dict]) -> dict:
    """Per arm: {"features": {ext: {"vendi": ci, "cosine_distance": ci}}, "entropy": {"ext.attr": ci},
    "vs_first": the same keys, per-prompt paired differences to the first arm, "settings"} (95% t-intervals
    over prompts)."""
    by_arm: dict[str, dict[int, dict]] = {a.name: {} for a in arms}
    for r in rows:
        if r["arm"] in by_arm:
            by_arm[r["arm"]][r["prompt_index"]] = r
    first = arms[0].name
    models = {}
    for arm in arms:
        mine = by_arm[arm.name]
        entry = {"features": {}, "entropy": {}, "num_prompts": len(mine), "settings": arm.record()}
        metrics = _metric_paths(mine)
        for path in metrics:
            values = [_get(r, path) for r in mine.values()]
            _put(entry, path, mean_ci(values))
        if arm.name != first:
            entry["vs_first"] = {"features": {}, "entropy": {}}
            common = sorted(set(mine) & set(by_arm[first]))
            for path in metrics:
                a = [_get(mine[i], path) for i in common]
                b = [_get(by_arm[first][i], path) for i in common]
                _put(entry["vs_first"], path, paired_mean_ci(a, b, common))
        models[arm.name] = entry
    return {"models": models, "reference": first,
            "features": sorted({e for m in models.values() for e in m["features"]}),
            "ci_method": "per-prompt values, 95% t-interval over prompts; differences paired by prompt"}


def _metric_paths(rows: dict) -> list[tuple]:
    paths: dict[tuple, None] = {}
    for r in rows.values():
        for ext, values in r["features"].items():
            paths.update({("features", ext, m): None for m in values})
        paths.update({("entropy", attr): None for attr in r["entropy"]})
    return list(paths)


def _get(row: dict, path: tuple) -> float:
    value = row
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float("nan") if value is None else float(value)


def _put(entry: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        entry = entry.setdefault(key, {})
    entry[path[-1]] = value


def diversity_table(summary: dict, *, digits: int = 3) -> tuple[list[str], list[list]]:
    """(header, rows): per arm, every extractor's Vendi and cosine distance and every entropy, mean [CI]."""
    cols = []
    for m in summary["models"].values():
        cols += [("features", e, k) for e, v in m["features"].items() for k in v]
        cols += [("entropy", a) for a in m["entropy"]]
    cols = list(dict.fromkeys(cols))
    head = ["arm", *[(f"{c[1]} {'Vendi' if c[2] == 'vendi' else 'cos dist'}" if c[0] == "features"
                      else f"H({c[1]}) bits") for c in cols]]
    rows = []
    for name, m in summary["models"].items():
        cells = []
        for c in cols:
            ci = m
            for key in c:
                ci = ci.get(key, {}) if isinstance(ci, dict) else {}
            cells.append(fmt_ci(ci, digits) if "mean" in ci else "n/a")
        rows.append([name, *cells])
    return head, rows


def format_diversity(summary: dict) -> str:
    """The terminal table."""
    head, rows = diversity_table(summary)
    return text_table(head, rows)


def write_diversity_report(summary: dict, out_dir: str | Path) -> dict[str, Path]:
    """OUT/summary.json, OUT/diversity.png (one panel per metric), OUT/report.html -> their paths."""
    out = Path(out_dir)
    paths = {"summary": write_json(out / "summary.json", summary), "rows": out / ROWS_FILE}
    values = {}
    for name, m in summary["models"].items():
        flat = {f"{e} {k}": ci for e, v in m["features"].items() for k, ci in v.items()}
        flat.update({f"H({a})": ci for a, ci in m["entropy"].items()})
        values[name] = {k: ci for k, ci in flat.items() if math.isfinite(ci["mean"])}
    paths["plot"] = plot_ci_panels(values, out / "diversity.png", title="diversity per prompt, 95% CI")
    head, rows = diversity_table(summary)
    tables = [("Diversity per prompt [95% CI]", head, rows)]
    diffs = []
    for name, m in summary["models"].items():
        if "vs_first" in m:
            _, r = diversity_table({"models": {name: m["vs_first"]}})
            diffs += r
    if diffs:
        tables.append((f"Difference to {summary['reference']} (paired by prompt) [95% CI]", head, diffs))
    paths["html"] = write_page(out, "Diversity", tables=tables, figures={"Diversity per arm (95% CI)": "diversity.png"},
                               intro=[f"Vendi score (1 = identical images, N = unrelated), mean pairwise cosine "
                                      f"distance and attribute entropy, per prompt; {summary['ci_method']}."],
                               summary=summary)
    return paths


def build_arms(runs: list[ModelRun], folders: dict[str, str] | None = None,
               best_of: dict[str, int] | None = None) -> list[Arm]:
    """The arms of a comparison: every model as sampled, then every model after best-of-k selection by each
    reward of `best_of` {key: k} (named "MODEL best-of-K KEY"), then every image folder {name: path}."""
    arms = [Arm(name=run.name, run=run) for run in runs]
    for key, k in (best_of or {}).items():
        if k < 2:
            raise ValueError(f"--best-of {key}={k}: k must be >= 2")
        arms += [Arm(name=f"{run.name} best-of-{k} {key}", run=run, select=key, best_of=k) for run in runs]
    arms += [Arm(name=name, folder=Path(path)) for name, path in (folders or {}).items()]
    if not arms:
        raise ValueError("nothing to evaluate: give --model and/or --images")
    return arms
