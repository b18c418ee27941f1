"""`mirokit eval rewards`: mean and 95% interval of registered rewards over a prompt set, models side by side.

Every model draws the same images (prompt i, image j from the noise of (seed, i, j)), so a difference
between two models is paired by prompt: the summary also gives, for each model after the first, the mean
per-prompt difference to the first model with its own interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.atomic import write_atomic
from mirokit.evaluate.pages import fmt_ci, plot_ci_panels, text_table, write_json, write_page
from mirokit.evaluate.samples import ModelRun, sample_and_score
from mirokit.evaluate.stats import mean_ci, paired_mean_ci


def evaluate_rewards(runs: list[ModelRun], records: list[dict], indices: list[int], scorers: dict, *,
                     images_per_prompt: int = 1, progress: bool = True, grid_prompts: int = 8) -> dict:
    """Sample and score every model on records[indices] -> {"summary": dict, "rows": per-image dicts,
    "grids": {model: PIL images of the first image of the first `grid_prompts` prompts}}."""
    from PIL import Image

    total = len(runs) * len(indices) * images_per_prompt
    bar = tqdm(total=total, desc="sampling + scoring", unit="img", disable=not progress, dynamic_ncols=True)
    results, grids, rows = {}, {}, []
    for run in runs:
        res = sample_and_score(run.pipe, records, indices, images_per_prompt=images_per_prompt, settings=run.settings,
                               scorers=scorers, keep_images=True, bar=bar)
        firsts = [k for k, (i, j) in enumerate(res["pairs"]) if j == 0][:grid_prompts]
        grids[run.name] = [Image.fromarray(res["images"][k]) for k in firsts]
        results[run.name] = res
        for k, (i, j) in enumerate(res["pairs"]):
            rows.append({"model": run.name, "prompt_index": i, "image": j, "prompt": records[i]["prompt"],
                         **({"category": records[i]["category"]} if "category" in records[i] else {}),
                         **{key: float(v[k]) for key, v in res["scores"].items()}})
    bar.close()
    return {"summary": summarize(runs, results, records, list(scorers)), "rows": rows, "grids": grids,
            "grid_prompts": [records[i]["prompt"] for i in indices[:grid_prompts]]}


def summarize(runs: list[ModelRun], results: dict, records: list[dict], keys: list[str]) -> dict:
    """Per model: {"rewards": {key: ci}, "by_category": {category: {key: mean}}, "vs_first": {key: ci of the
    per-prompt difference to the first model}, "settings"}."""
    models = {}
    first = runs[0].name
    for run in runs:
        res = results[run.name]
        groups = [i for i, _ in res["pairs"]]
        entry = {"rewards": {k: mean_ci(res["scores"][k], groups) for k in keys}, "settings": run.record}
        categories = sorted({records[i].get("category") for i in groups} - {None})
        if categories:
            entry["by_category"] = {
                c: {k: float(np.nanmean([v for v, g in zip(res["scores"][k], groups)
                                         if records[g].get("category") == c] or [np.nan])) for k in keys}
                for c in categories}
        if run.name != first:
            # every model draws the same (prompt, image) pairs: paired image by image, averaged per prompt
            entry["vs_first"] = {k: paired_mean_ci(res["scores"][k], results[first]["scores"][k], groups)
                                 for k in keys}
        models[run.name] = entry
    return {"models": models, "reward_keys": keys, "reference": first,
            "ci_method": "95% t-interval over prompts (images clustered by prompt); differences paired by prompt"}


def reward_table(summary: dict) -> tuple[list[str], list[list]]:
    """(header, rows) of mean [95% CI] per model and reward."""
    keys = summary["reward_keys"]
    return ["model", *keys], [[name, *(fmt_ci(m["rewards"][k]) for k in keys)] for name, m in summary["models"].items()]


def write_reward_report(result: dict, out_dir: str | Path, *, header: dict) -> dict[str, Path]:
    """OUT/summary.json, OUT/scores.jsonl, OUT/rewards.png, OUT/samples.png, OUT/report.html -> their paths."""
    import json

    from mirokit.evaluate.report import plot_grids

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {**header, **result["summary"]}
    paths = {"summary": write_json(out / "summary.json", summary), "scores": out / "scores.jsonl"}
    write_atomic(paths["scores"], "".join(json.dumps(r) + "\n" for r in result["rows"]))
    values = {name: m["rewards"] for name, m in summary["models"].items()}
    paths["plot"] = plot_ci_panels(values, out / "rewards.png", title="mean raw reward, 95% CI")
    paths["grid"] = plot_grids(result["grids"], result["grid_prompts"], out / "samples.png")
    head, rows = reward_table(summary)
    tables = [("Mean raw reward [95% CI]", head, rows)]
    diffs = [[name, *(fmt_ci(m["vs_first"][k]) for k in summary["reward_keys"])]
             for name, m in summary["models"].items() if "vs_first" in m]
    if diffs:
        tables.append((f"Difference to {summary['reference']} (paired by prompt) [95% CI]", head, diffs))
    paths["html"] = write_page(out, "Reward metrics", tables=tables,
                               intro=[f"Prompts: {header.get('prompts')} ({header.get('num_prompts')} prompts x "
                                      f"{header.get('images_per_prompt')} images per model). {summary['ci_method']}."],
                               figures={"Mean raw reward per model (95% CI)": "rewards.png",
                                        "First image of the first prompts, per model": "samples.png"},
                               summary=summary)
    return paths


def format_rewards(summary: dict) -> str:
    """The terminal table."""
    head, rows = reward_table(summary)
    return text_table(head, rows)
