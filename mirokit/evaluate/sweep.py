"""`mirokit eval sweep`: one or two sampling settings swept on a grid; every reward's mean (and a metric)
against the swept value, a Pareto plot for a pair of reward targets, and the sampling-cost table.

Sweepable: `reward:KEY` (positive target), `negative:KEY` (negative-branch target) and every setting of
SamplingSettings' "sweep" surface (solver, steps, shift, guidance, guidance_interval). Every point samples the
same prompts from the same noise.

Sampling cost (with a reference setting, e.g. the official Euler 50 steps): for each solver, the fewest
network evaluations per image (mirokit.sampling.solvers.function_evaluations) whose metric mean and every
reward's mean reach the reference's 95% intervals (mean >= their lower ends).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from tqdm.auto import tqdm

from mirokit.atomic import write_atomic
from mirokit.config import parse_number, split_key_value
from mirokit.evaluate.pages import fmt_ci, plot_ci_curves, plot_ci_grid, plot_pareto, text_table, write_json, write_page
from mirokit.evaluate.settings_eval import evaluate_setting, paired_difference
from mirokit.sampling import SamplingSettings
from mirokit.sampling.options import declared, names

PARAMS = tuple(names(SamplingSettings, "sweep"))
"""sweepable settings besides reward:KEY and negative:KEY (the "sweep" surface of SamplingSettings' fields)"""


def parse_sweep(spec: str, reward_keys: list[str]) -> tuple[str, list]:
    """"reward:world_quality=0,0.5,1" -> ("reward:world_quality", [0.0, 0.5, 1.0]); "guidance_interval=full,0.2:0.8"
    -> ("guidance_interval", [None, (0.2, 0.8)]); each value is parsed and checked by its setting's declaration
    (mirokit.sampling.options); one-line errors."""
    shape = f"PARAM=V1,V2,... (PARAM: reward:KEY, negative:KEY, {', '.join(PARAMS)})"
    name, raw = split_key_value(spec, "--sweep", shape)
    items = [v.strip() for v in raw.split(",") if v.strip()]
    if not items:
        raise ValueError(f"--sweep {spec!r} must look like {shape}")
    kind, _, key = name.partition(":")
    if kind in ("reward", "negative"):
        if key not in reward_keys:
            raise ValueError(f"--sweep {name}: unknown reward key {key!r}; the model knows: "
                             f"{', '.join(reward_keys) or '(none)'}")
        return name, [parse_number(v, f"--sweep {name}", allow_missing=True) for v in items]
    if name not in PARAMS:
        raise ValueError(f"--sweep {name!r}: unknown setting; known: reward:KEY, negative:KEY, {', '.join(PARAMS)}")
    opt = declared(SamplingSettings)[name][0]
    return name, [opt.parse_text(name, v, f"--sweep {name}") for v in items]


def apply_value(settings: SamplingSettings, param: str, value) -> SamplingSettings:
    """A copy of `settings` with one swept value applied (a swept guidance scale is the joint one)."""
    kind, _, key = param.partition(":")
    if kind == "reward":
        return settings.replace(rewards={**settings.rewards, key: value})
    if kind == "negative":
        return settings.replace(negative_rewards={**settings.negative_rewards, key: value})
    if param == "guidance":
        return settings.replace(guidance=value, text_guidance=None, reward_guidance=None)
    return settings.replace(**{param: value})


def run_sweep(pipe, base: SamplingSettings, sweeps: list[tuple[str, list]], records: list[dict], indices: list[int],
              *, metric, scorers: dict, images_per_prompt: int = 1, reference: SamplingSettings | None = None,
              reference_name: str = "reference", progress: bool = True) -> dict:
    """Evaluate the grid of swept values (one or two sweeps) and the optional reference -> the summary dict."""
    if not 1 <= len(sweeps) <= 2:
        raise ValueError("give one or two --sweep")
    if len(sweeps) == 2 and sweeps[0][0] == sweeps[1][0]:
        raise ValueError(f"--sweep {sweeps[0][0]} is given twice")
    grid = list(itertools.product(*[values for _, values in sweeps]))
    per_point = len(indices) * images_per_prompt
    bar = tqdm(total=(len(grid) + (reference is not None)) * per_point, desc=f"sweep ({len(grid)} settings)",
               unit="img", disable=not progress, dynamic_ncols=True)
    ref = None
    if reference is not None:
        ref = evaluate_setting(pipe, reference, records, indices, metric=metric, scorers=scorers,
                               images_per_prompt=images_per_prompt, bar=bar)
    points = []
    for values in grid:
        setting = base
        for (param, _), value in zip(sweeps, values):
            setting = apply_value(setting, param, value)
        res = evaluate_setting(pipe, setting, records, indices, metric=metric, scorers=scorers,
                               images_per_prompt=images_per_prompt, bar=bar)
        point = {"values": {param: value for (param, _), value in zip(sweeps, values)}, "setting": setting.to_preset(),
                 "nfe": setting.function_evaluations, "metric": res["metric"],
                 "rewards": res["rewards"]}
        if ref is not None:
            point["vs_reference"] = paired_difference(res, ref, records)
        points.append(point)
    bar.close()
    summary = {"sweeps": [{"param": p, "values": v} for p, v in sweeps], "metric_name": metric.name,
               "base": base.to_preset(), "points": points,
               "ci_method": "95%: metric stratified by tag for GenEval-schema prompts, else t-interval clustered by "
                            "prompt; rewards t-interval clustered by prompt"}
    if ref is not None:
        summary["reference"] = {"name": reference_name, "setting": reference.to_preset(), "metric": ref["metric"],
                                "rewards": ref["rewards"], "nfe": reference.function_evaluations}
        summary["sampling_cost"] = sampling_cost(points, summary["reference"])
    return summary


def _lower_end(ci: dict, value: float) -> float:
    return ci["low"] if math.isfinite(ci.get("low", math.nan)) else value


def sampling_cost(points: list[dict], reference: dict) -> dict:
    """Per solver, the fewest network evaluations whose means reach the reference's 95% interval (its lower
    end) on the metric and on every reported reward (higher is better for both), so a cheap sampler cannot
    win on a coarse metric while losing on a sensitive reward."""
    threshold = _lower_end(reference["metric"]["ci"], reference["metric"]["value"])
    reward_thresholds = {k: _lower_end(ci, ci["mean"]) for k, ci in reference.get("rewards", {}).items()}

    def reaches(point: dict) -> bool:
        return point["metric"]["value"] >= threshold and all(
            point["rewards"][k]["mean"] >= t for k, t in reward_thresholds.items() if k in point["rewards"])

    by_solver: dict[str, dict | None] = {}
    for point in sorted(points, key=lambda p: p["nfe"]):
        solver = point["setting"]["solver"]
        by_solver.setdefault(solver, None)
        if by_solver[solver] is None and reaches(point):
            by_solver[solver] = {"steps": point["setting"]["steps"], "nfe": point["nfe"],
                                 "value": point["metric"]["value"], "setting": point["setting"],
                                 "fraction_of_reference": point["nfe"] / reference["nfe"]}
    reached = [v for v in by_solver.values() if v is not None]
    best = min(reached, key=lambda v: v["nfe"]) if reached else None
    return {"threshold": threshold, "reward_thresholds": reward_thresholds, "reference_nfe": reference["nfe"],
            "solvers": by_solver, "best": best, "goal_met": bool(best and best["nfe"] * 2 <= reference["nfe"])}


def cost_markdown(summary: dict) -> str:
    """The sampling-cost table as Markdown (for BENCHMARKS.md)."""
    cost, ref = summary["sampling_cost"], summary["reference"]
    lines = [f"Reference {ref['name']}: {ref['setting']['solver']} {ref['setting']['steps']} steps, "
             f"{ref['nfe']} evaluations, {summary['metric_name']} {fmt_ci(ref['metric']['ci'])}; "
             f"a setting counts when its mean is >= {cost['threshold']:.4f} (the interval's lower end) and so is "
             f"every reward's ({', '.join(f'{k} >= {t:.4f}' for k, t in cost.get('reward_thresholds', {}).items())}"
             ").", "",
             "| solver | fewest steps | network evaluations | fraction of reference | metric |",
             "|---|---|---|---|---|"]
    for solver, hit in cost["solvers"].items():
        if hit is None:
            lines.append(f"| {solver} | not reached | - | - | - |")
        else:
            lines.append(f"| {solver} | {hit['steps']} | {hit['nfe']} | {hit['fraction_of_reference']:.2f} | "
                         f"{hit['value']:.4f} |")
    return "\n".join(lines) + "\n"


def _label(values: dict) -> str:
    """{setting: value} as the --sweep text that asks for it (an interval LO:HI, no interval `full`)."""
    def text(v):
        if v is None:
            return "full"
        return ":".join(f"{x:g}" for x in v) if isinstance(v, (tuple, list)) else str(v)
    return ", ".join(f"{k}={text(v)}" for k, v in values.items())


def _versus(point: dict) -> list[str]:
    """The paired difference from the reference, as a table cell (empty without a reference)."""
    return [fmt_ci(point["vs_reference"], 3)] if "vs_reference" in point else []


def write_sweep_report(summary: dict, out_dir: str | Path) -> dict[str, Path]:
    """OUT/summary.json, OUT/sweep.png, OUT/pareto.png (two reward sweeps), OUT/cost.png, OUT/sampling_cost.md and
    OUT/fastest_preset.json (with a reference), OUT/report.html -> paths."""
    from mirokit.sampling.presets import save_preset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, figures = {"summary": write_json(out / "summary.json", summary)}, {}
    sweeps, points = summary["sweeps"], summary["points"]
    x_param = sweeps[0]["param"]
    xs = sweeps[0]["values"]
    categorical = any(not isinstance(v, (int, float)) or v is None for v in xs)
    lines = [None] if len(sweeps) == 1 else sweeps[1]["values"]
    quantities = {summary["metric_name"]: lambda p: p["metric"]["ci"]}
    for key in points[0]["rewards"]:
        quantities[key] = lambda p, key=key: p["rewards"][key]
    panels = {}
    for name, get in quantities.items():
        series = {}
        for line in lines:
            chosen = [p for p in points if len(sweeps) == 1 or p["values"][sweeps[1]["param"]] == line]
            label = summary["metric_name"] if line is None else f"{sweeps[1]['param']}={line}"
            series[label] = (xs, [get(p) for p in chosen])
        panels[name] = series
    paths["sweep"] = plot_ci_grid(panels, out / "sweep.png", xlabel=x_param, categorical_x=categorical)
    figures[f"Every reward's mean and {summary['metric_name']} against {x_param} (95% CI)"] = "sweep.png"
    if len(sweeps) == 2 and all(s["param"].startswith("reward:") for s in sweeps):
        ka, kb = (s["param"].split(":", 1)[1] for s in sweeps)
        if ka in points[0]["rewards"] and kb in points[0]["rewards"]:
            pts = [(p["rewards"][ka]["mean"], p["rewards"][kb]["mean"]) for p in points]
            labels = [",".join(str(v) for v in p["values"].values()) for p in points]
            paths["pareto"] = plot_pareto(pts, labels, out / "pareto.png", xlabel=f"{ka} (mean score)",
                                          ylabel=f"{kb} (mean score)",
                                          title="labels: the two targets; red: the Pareto front")
            figures[f"Trade-off between {ka} and {kb}"] = "pareto.png"
    versus = [f"{summary['metric_name']} - reference (paired)"] if "vs_reference" in points[0] else []
    head = ["setting", "network evaluations", summary["metric_name"], *versus, *points[0]["rewards"]]
    rows = [[_label(p["values"]), p["nfe"], fmt_ci(p["metric"]["ci"]), *_versus(p),
             *(fmt_ci(c) for c in p["rewards"].values())] for p in points]
    tables = [("Every setting [95% CI]", head, rows)]
    if "sampling_cost" in summary:
        ref = summary["reference"]
        tables.insert(0, (f"Reference ({ref['name']})", head,
                          [[_label({"solver": ref["setting"]["solver"], "steps": ref["setting"]["steps"]}), ref["nfe"],
                            fmt_ci(ref["metric"]["ci"]), *(["-"] if versus else []),
                            *(fmt_ci(c) for c in ref["rewards"].values())]]))
        by_solver: dict[str, list] = {}
        for p in sorted(points, key=lambda p: p["nfe"]):
            by_solver.setdefault(p["setting"]["solver"], []).append(p)
        series = {solver: ([p["nfe"] for p in pts], [p["metric"]["ci"] for p in pts])
                  for solver, pts in by_solver.items()}
        paths["cost_plot"] = plot_ci_curves(
            series, out / "cost.png", xlabel="network evaluations per image", ylabel=summary["metric_name"],
            title="sampling cost", hlines={f"{ref['name']} ({ref['nfe']} evaluations)": ref["metric"]["value"],
                                           "its 95% interval's lower end": summary["sampling_cost"]["threshold"]})
        figures[f"{summary['metric_name']} against network evaluations, per solver (95% CI)"] = "cost.png"
        write_atomic(out / "sampling_cost.md", cost_markdown(summary))
        paths["cost"] = out / "sampling_cost.md"
        cost = summary["sampling_cost"]
        tables.append(("Sampling cost: fewest evaluations reaching the reference", ["solver", "steps", "evaluations",
                       "fraction"], [[s, *(("-", "-", "-") if h is None else (h["steps"], h["nfe"],
                                     f"{h['fraction_of_reference']:.2f}"))] for s, h in cost["solvers"].items()]))
        if cost["best"] is not None:
            best = cost["best"]
            sampler = {k: v for k, v in best["setting"].items() if k not in ("rewards", "negative_rewards")}
            about = {"found_by": "mirokit eval sweep", "metric": summary["metric_name"], "value": best["value"],
                     "nfe": best["nfe"], "reference_nfe": cost["reference_nfe"]}
            paths["preset"] = save_preset(sampler, out / "fastest_preset.json", about=about)
    paths["html"] = write_page(out, "Sweep", tables=tables, figures=figures, summary=summary,
                               intro=[f"Swept: {', '.join(s['param'] for s in sweeps)}; metric "
                                      f"{summary['metric_name']}. {summary['ci_method']}."])
    return paths


def format_sweep(summary: dict) -> str:
    """The terminal table (and the sampling-cost table)."""
    points = summary["points"]
    versus = [f"{summary['metric_name']} - reference (paired)"] if "vs_reference" in points[0] else []
    head = ["setting", "evals", summary["metric_name"], *versus, *points[0]["rewards"]]
    rows = [[_label(p["values"]), p["nfe"], fmt_ci(p["metric"]["ci"], 3), *_versus(p),
             *(fmt_ci(c, 3) for c in p["rewards"].values())] for p in points]
    text = text_table(head, rows)
    if "sampling_cost" in summary:
        text += "\n\n" + cost_markdown(summary)
    return text
