"""`mirokit eval best-of-n`: test-time scaling curves from one pool of samples per prompt.

Each model draws a pool of M images per prompt (the same noise for every model). For N = 1, 2, 4, ... <= M
the expected score of the best of N images (chosen by the selection reward) is computed exactly from the
pool (mirokit.evaluate.stats.expected_best_of_n: the average over all C(M, N) subsets, no resampling),
per prompt, then averaged over prompts with a 95% t-interval. "Samples saved": the smallest N (over every
N <= M, not only powers of two) at which another model's best-of-N mean reaches the reference model's
best-of-1 mean (the paper's MIRO best-of-1 vs a baseline's best-of-N).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.atomic import write_atomic
from mirokit.evaluate.pages import fmt_ci, plot_ci_curves, text_table, write_json, write_page
from mirokit.evaluate.samples import ModelRun, sample_and_score
from mirokit.evaluate.stats import best_of_n_curve, expected_best_of_n, first_n_reaching


def powers_of_two(pool: int) -> list[int]:
    """1, 2, 4, ... <= pool, and pool itself."""
    ns = [1 << k for k in range(pool.bit_length()) if 1 << k <= pool]
    return ns if ns[-1] == pool else [*ns, pool]


def _pools(values: np.ndarray, pairs: list[tuple[int, int]]) -> dict[int, np.ndarray]:
    groups: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(pairs):
        groups.setdefault(i, []).append(k)
    return {i: values[ks] for i, ks in groups.items()}


def mean_best_of_n(select_pools: list[np.ndarray], n: int, report_pools: list[np.ndarray] | None = None) -> float:
    """Mean over prompts of the exact expected best-of-N (prompts with fewer than N scored samples left out)."""
    values = []
    for p, s in enumerate(select_pools):
        r = s if report_pools is None else report_pools[p]
        keep = np.isfinite(s) & np.isfinite(r)
        if keep.sum() >= n:
            values.append(expected_best_of_n(s[keep], n, r[keep]))
    return float(np.mean(values)) if values else float("nan")


def best_of_n(runs: list[ModelRun], records: list[dict], indices: list[int], scorers: dict, *, select: str | list[str],
              pool: int, reference: str | None = None, progress: bool = True) -> tuple[dict, list[dict]]:
    """Sample `pool` images per prompt per model, score them -> (summary dict, per-image score rows).

    scorers: {key: scorer}, including `select`; other keys are reported under the same selection. A list of
    selection keys: the first is the main one (curves, samples saved); the summary's "scaling" then holds the
    test-time-scaling comparison for each of them (see scaling_comparison).
    """
    selects = [select] if isinstance(select, str) else list(select)
    select = selects[0]
    missing = [k for k in selects if k not in scorers]
    if missing:
        raise ValueError(f"the selection reward {missing[0]!r} is not among the scorers ({', '.join(scorers)})")
    if pool < 1:
        raise ValueError("--pool must be >= 1")
    names = [run.name for run in runs]
    reference = reference or names[0]
    if reference not in names:
        raise ValueError(f"--reference {reference!r} is not a --model name ({', '.join(names)})")
    ns = powers_of_two(pool)
    bar = tqdm(total=len(runs) * len(indices) * pool, desc="sampling + scoring pools", unit="img",
               disable=not progress, dynamic_ncols=True)
    models, exact, rows, all_pools = {}, {}, [], {}
    for run in runs:
        res = sample_and_score(run.pipe, records, indices, images_per_prompt=pool, settings=run.settings,
                               scorers=scorers, bar=bar)
        rows += [{"model": run.name, "prompt_index": i, "image": j,
                  **{key: float(v[k]) for key, v in res["scores"].items()}} for k, (i, j) in enumerate(res["pairs"])]
        sel = _pools(res["scores"][select], res["pairs"])
        order = sorted(sel)
        sel_pools = [sel[i] for i in order]
        all_pools[run.name] = {k: [_pools(res["scores"][k], res["pairs"])[i] for i in order] for k in selects}
        curves = {}
        for key, values in res["scores"].items():
            rep = _pools(values, res["pairs"])
            curve = best_of_n_curve(sel_pools, ns, report=[rep[i] for i in order])
            curves[key] = {str(n): ci for n, ci in curve.items()}
        exact[run.name] = [mean_best_of_n(sel_pools, n) for n in range(1, pool + 1)]
        unscored = int((~np.isfinite(res["scores"][select])).sum())
        models[run.name] = {"curves": curves, "unscored": unscored, "settings": run.record}
    bar.close()
    target = models[reference]["curves"][select]["1"]["mean"]
    saved = {}
    for name in names:
        if name == reference:
            continue
        first = first_n_reaching({n: v for n, v in zip(range(1, pool + 1), exact[name])}, target)
        saved[name] = {"first_n": first, "reference_best_of_1": target,
                       "best_of_pool": exact[name][-1],
                       "statement": (f"{name} needs N = {first} samples to reach {reference}'s best-of-1 "
                                     f"({select} {target:.4f})" if first is not None else
                                     f"{name} does not reach {reference}'s best-of-1 ({select} {target:.4f}) "
                                     f"within N = {pool} (its best-of-{pool}: {exact[name][-1]:.4f})")}
    out = {"select": select, "pool": pool, "ns": ns, "reference": reference, "models": models,
           "samples_saved": saved, "exact_curve": exact,
           "ci_method": "per-prompt exact expected best-of-N, 95% t-interval over prompts"}
    if len(selects) > 1:
        out["scaling"] = {k: scaling_comparison({name: p[k] for name, p in all_pools.items()}, reference)
                          for k in selects}
    return out, rows


def per_prompt_best_of_n(pools: list[np.ndarray], n: int) -> np.ndarray:
    """(P,) exact expected best-of-N of each prompt's pool (NaN scores dropped; NaN where fewer than N remain)."""
    out = np.full(len(pools), np.nan)
    for p, s in enumerate(pools):
        s = np.asarray(s, dtype=np.float64)
        s = s[np.isfinite(s)]
        if len(s) >= n:
            out[p] = expected_best_of_n(s, n)
    return out


def scaling_comparison(pools: dict[str, list[np.ndarray]], reference: str) -> dict:
    """The paper's test-time-scaling comparison for one reward (selected and reported by itself).

    pools: {model: [per-prompt (M,) score pools, prompts in the same order for every model]}. Returns
    {"curves": {model: [ci of the expected best-of-N, N = 1..M]}, "reference_best_of_1": ci, "vs_reference":
    {model: {"first_n": smallest N whose mean reaches the reference's best-of-1 mean (None: never within M),
    "first_n_not_below": smallest N whose per-prompt paired difference to the reference's best-of-1 has an
    interval reaching 0 (not significantly below), "at_pool": ci of that difference at N = M}}}.
    """
    from mirokit.evaluate.stats import mean_ci, paired_mean_ci

    sizes = {name: min(len(p) for p in ps) for name, ps in pools.items()}
    ref_1 = per_prompt_best_of_n(pools[reference], 1)
    prompts = list(range(len(ref_1)))
    curves, versus = {}, {}
    for name, ps in pools.items():
        per_n = [per_prompt_best_of_n(ps, n) for n in range(1, sizes[name] + 1)]
        curves[name] = [mean_ci(v) for v in per_n]
        if name == reference:
            continue
        diffs = [paired_mean_ci(v, ref_1, prompts) for v in per_n]
        target = mean_ci(ref_1)["mean"]
        versus[name] = {
            "first_n": next((n for n, c in enumerate(curves[name], 1) if c["mean"] >= target), None),
            "first_n_not_below": next((n for n, d in enumerate(diffs, 1) if d["high"] >= 0), None),
            "at_pool": diffs[-1], "pool": sizes[name]}
    return {"curves": curves, "reference": reference, "reference_best_of_1": mean_ci(ref_1), "vs_reference": versus}


def plot_scaling(scaling: dict, path: str | Path, *, title: str = "") -> Path:
    """One panel per reward: every model's expected best-of-N (N = 1..M, log2 axis) with its 95% interval and
    the reference's best-of-1 as a dashed line. scaling: {key: scaling_comparison(...)}."""
    from mirokit.evaluate.report import _plt, save_figure

    plt = _plt()
    fig, axes = plt.subplots(1, len(scaling), figsize=(3.6 * len(scaling), 3.0), squeeze=False)
    for ax, (key, comp) in zip(axes.flat, scaling.items()):
        for name, cis in comp["curves"].items():
            xs = np.arange(1, len(cis) + 1)
            mean = np.array([c["mean"] for c in cis])
            ax.plot(xs, mean, label=name)
            ax.fill_between(xs, [c["low"] for c in cis], [c["high"] for c in cis], alpha=0.2)
        ref = comp["reference_best_of_1"]
        ax.axhline(ref["mean"], linestyle="--", color="grey", linewidth=1)
        ax.axhspan(ref["low"], ref["high"], color="grey", alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("N (samples per prompt)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save_figure(fig, Path(path), title=title or f"best-of-N vs {comp['reference']}'s best-of-1 (dashed)")


def scaling_table(scaling: dict, ns: list[int] | None = None) -> tuple[list[str], list[list]]:
    """(header, rows): per reward and model, the best-of-N mean [CI] at `ns` and the N matching the reference's
    best-of-1 ("never within M" when it does not)."""
    rows, head = [], None
    for key, comp in scaling.items():
        for name, cis in comp["curves"].items():
            sel = [n for n in (ns or powers_of_two(len(cis))) if n <= len(cis)]
            head = head or ["reward", "model", *[f"N={n}" for n in sel], "matches ref best-of-1 at N"]
            v = comp["vs_reference"].get(name)
            match = "(reference)" if v is None else (f"{v['first_n']}" if v["first_n"] else f"never within {v['pool']}")
            rows.append([key, name, *(fmt_ci(cis[n - 1], 3) for n in sel), match])
    return head or ["reward", "model"], rows


def write_best_of_n_report(summary: dict, rows: list[dict], out_dir: str | Path) -> dict[str, Path]:
    """OUT/summary.json, OUT/scores.jsonl (the pools), OUT/best_of_n.png (+ one plot per other reported key),
    OUT/report.html -> paths."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "scores.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    select, ref = summary["select"], summary["reference"]
    ns = summary["ns"]
    keys = list(next(iter(summary["models"].values()))["curves"])
    paths, figures = {"summary": write_json(out / "summary.json", summary)}, {}
    for key in [select, *[k for k in keys if k != select]]:
        series = {name: (ns, [m["curves"][key][str(n)] for n in ns]) for name, m in summary["models"].items()}
        ref_line = {f"{ref} best-of-1": summary["models"][ref]["curves"][key]["1"]["mean"]}
        name = "best_of_n.png" if key == select else f"best_of_n_{key}.png"
        paths[name] = plot_ci_curves(series, out / name, xlabel="N (samples per prompt)", ylabel=f"{key}",
                                     title=f"best-of-N selected by {select}", log2_x=True, hlines=ref_line)
        figures[f"{key} of the best of N samples (chosen by {select}), 95% CI over prompts"] = name
    head, rows = best_of_n_table(summary)
    saved_rows = [[name, s["first_n"] if s["first_n"] is not None else f"> {summary['pool']}", s["statement"]]
                  for name, s in summary["samples_saved"].items()]
    tables = [(f"Best-of-N {select} [95% CI]", head, rows),
              (f"Samples saved: N at which each model's best-of-N reaches {ref}'s best-of-1",
               ["model", "N", "statement"], saved_rows)]
    if "scaling" in summary:  # several --select: each reward selected and reported by itself
        paths["scaling.png"] = plot_scaling(summary["scaling"], out / "scaling.png")
        figures[f"each reward's best-of-N (selected by itself) vs {ref}'s best-of-1 (dashed)"] = "scaling.png"
        tables.append(("Test-time scaling per reward [95% CI]", *scaling_table(summary["scaling"])))
    paths["html"] = write_page(
        out, "Test-time scaling: best-of-N", figures=figures,
        intro=[f"Selection reward {select}; pool of {summary['pool']} samples per prompt and model; "
               f"{summary['ci_method']}. Reference: {ref}."],
        tables=tables, summary=summary)
    return paths


def best_of_n_table(summary: dict) -> tuple[list[str], list[list]]:
    """(header, rows): one row per model, one column per N, the selection reward's mean [CI]."""
    ns, select = summary["ns"], summary["select"]
    return ["model", *[f"N={n}" for n in ns]], [[name, *(fmt_ci(m["curves"][select][str(n)], 3) for n in ns)]
                                               for name, m in summary["models"].items()]


def format_best_of_n(summary: dict) -> str:
    """The terminal table and the samples-saved statements."""
    head, rows = best_of_n_table(summary)
    lines = [text_table(head, rows), *(s["statement"] for s in summary["samples_saved"].values())]
    if "scaling" in summary:
        lines.append(text_table(*scaling_table(summary["scaling"])))
    return "\n".join(lines)
