"""Figures with confidence intervals and a plain HTML page, for the evaluation commands (rewards, best-of-N,
sweep, tune-targets). Everything here takes plain numbers; nothing samples or scores.

A confidence interval is a dict {"mean", "low", "high", ...} as made by mirokit.evaluate.stats.mean_ci.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from mirokit.atomic import write_atomic, write_json_atomic
from mirokit.evaluate.report import _plt, html_page, html_table, save_axes, save_figure


def _err(cis: list[dict]) -> np.ndarray:
    """(2, N) lower/upper error-bar lengths (0 where the interval is unknown)."""
    lo = [c["mean"] - c["low"] if math.isfinite(c["half_width"]) else 0.0 for c in cis]
    hi = [c["high"] - c["mean"] if math.isfinite(c["half_width"]) else 0.0 for c in cis]
    return np.array([lo, hi])


def _ci_line(ax, xs: list, cis: list[dict], label: str) -> None:
    """Plot the means of `cis` against `xs` with their 95% intervals shaded (where known)."""
    line = ax.plot(xs, np.array([c["mean"] for c in cis], dtype=float), marker="o", ms=3, label=label)[0]
    low = np.array([c["low"] for c in cis], dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(xs, low, np.array([c["high"] for c in cis], dtype=float), alpha=0.18, color=line.get_color(),
                        linewidth=0)


def plot_ci_panels(values: dict[str, dict[str, dict]], path: Path, *, title: str = "") -> Path:
    """One panel per metric, one point per model with its 95% interval: values[model][metric] = ci dict."""
    plt = _plt()
    models = list(values)
    metrics = list(next(iter(values.values())))
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(2.6, 0.55 * len(models) + 1.4) * len(metrics), 3.0),
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics):
        for k, model in enumerate(models):
            ci = values[model][metric]
            ax.errorbar([k], [ci["mean"]], yerr=_err([ci]), fmt="o", capsize=4, color=colours[k % len(colours)])
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, fontsize=7, rotation=20)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path, title=title)


def plot_ci_curves(series: dict[str, tuple[list, list[dict]]], path: Path, *, xlabel: str, ylabel: str,
                   title: str = "", log2_x: bool = False, hlines: dict[str, float] | None = None,
                   categorical_x: bool = False) -> Path:
    """Lines with shaded 95% intervals: series[name] = (xs, cis); optional horizontal reference lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    labels = []
    for name, (xs, cis) in series.items():
        if categorical_x:
            labels = [str(x) for x in xs]
            xs = list(range(len(xs)))
        _ci_line(ax, xs, cis, name)
    for name, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", linewidth=1, color="grey")
        ax.annotate(name, (0.01, y), xycoords=("axes fraction", "data"), fontsize=7, color="dimgrey",
                    va="bottom")
    if log2_x:
        ax.set_xscale("log", base=2)
        ticks = sorted({x for xs, _ in series.values() for x in xs})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks], fontsize=7)
        ax.minorticks_off()
    if categorical_x:
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7, rotation=20)
    return save_axes(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title)


def plot_ci_grid(panels: dict[str, dict[str, tuple[list, list[dict]]]], path: Path, *, xlabel: str,
                 categorical_x: bool = False, title: str = "") -> Path:
    """One panel per quantity (own y scale), lines with shaded 95% intervals: panels[title][series] = (xs, cis)."""
    plt = _plt()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, (name, series) in zip(axes.flat, panels.items()):
        for label, (xs, cis) in series.items():
            pos = list(range(len(xs))) if categorical_x else [float(x) for x in xs]
            _ci_line(ax, pos, cis, label)
            if categorical_x:
                ax.set_xticks(pos)
                ax.set_xticklabels([str(x) for x in xs], fontsize=7, rotation=20)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return save_figure(fig, path, title=title)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated by another (both coordinates higher-is-better), sorted by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(x2 >= x and y2 >= y and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated and math.isfinite(x) and math.isfinite(y):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(points: list[tuple[float, float]], labels: list[str], path: Path, *, xlabel: str, ylabel: str,
                title: str = "") -> Path:
    """Scatter of settings (x, y) with their labels, the Pareto front joined by a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.4, 4.0))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.scatter(xs, ys, s=18, color="tab:blue")
    for (x, y), label in zip(points, labels):
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    front = pareto_front(points)
    ax.plot([xs[i] for i in front], [ys[i] for i in front], color="tab:red", linewidth=1.2, label="Pareto front")
    return save_axes(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title)


def fmt_ci(ci: dict, digits: int = 4) -> str:
    """"0.5123 [0.4980, 0.5266]" (the interval omitted when unknown)."""
    if not math.isfinite(ci["mean"]):
        return "n/a"
    if not math.isfinite(ci["half_width"]):
        return f"{ci['mean']:.{digits}f}"
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def text_table(header: list[str], rows: list[list]) -> str:
    """A fixed-width text table (for the terminal and the summaries)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_page(out_dir: Path, title: str, *, intro: list[str] = (), tables: list[tuple[str, list, list]] = (),
               figures: dict[str, str] | None = None, notes: list[str] = (), summary: dict | None = None,
               name: str = "report.html") -> Path:
    """OUT/report.html: a title, intro paragraphs, tables [(heading, header, rows)], figures {caption: file
    relative to out_dir}, notes and the summary JSON. Returns the path."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in intro]
    for heading, header, rows in tables:
        parts += [f"<h2>{html.escape(heading)}</h2>", html_table(header, rows)]
    for caption, file in (figures or {}).items():
        parts.append(f"<figure><img src='{html.escape(file)}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if summary is not None:
        parts.append(f"<h2>summary.json</h2><pre>{html.escape(json.dumps(summary, indent=1))}</pre>")
    return write_atomic(Path(out_dir) / name, html_page(title, parts))


def write_json(path: Path, data) -> Path:
    """Write `data` as indented JSON (NaN and infinities as null; atomically, parents created) -> the path."""
    return write_json_atomic(path, _finite(data))


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj
