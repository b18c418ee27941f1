"""Figures (PNG, matplotlib) and the HTML building blocks (table, page) of every mirokit report.

Everything here takes plain numbers and images; nothing trains or samples.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, *, title: str = "") -> Path:
    """Give `fig` a suptitle (if any), lay it out, write it to `path` as PNG and close it; returns path."""
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def save_axes(fig, ax, path: Path, *, xlabel: str, ylabel: str, title: str = "") -> Path:
    """Label one-axes figure `fig` (legend, grid), write it to `path` as PNG and close it; returns path."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_grids(images_by_model: dict[str, list], captions: list[str], path: Path, *, columns: int = 8) -> Path:
    """One row block per model, the same prompts in the same order: images_by_model[name] = PIL images."""
    plt = _plt()
    names = list(images_by_model)
    n = min(len(captions), columns)
    fig, axes = plt.subplots(len(names), n, figsize=(1.25 * n + 1.2, 1.45 * len(names) + 0.4), squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(np.asarray(images_by_model[name][c]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title("\n".join(_wrap(captions[c].removeprefix("a photo of "), 16)), fontsize=6)
    return save_figure(fig, path)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def plot_curves(series: dict[str, tuple[list[float], list[float]]], path: Path, *, xlabel: str, ylabel: str,
                title: str = "", log_y: bool = False) -> Path:
    """Line plot: series[name] = (xs, ys)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, marker="." if len(xs) < 30 else None)
    if log_y:
        ax.set_yscale("log")
    return save_axes(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title)


def plot_panels(panels: dict[str, tuple[list[float], list[float]]], path: Path, *, xlabel: str, ylabel: str) -> Path:
    """One small line plot per panel (each with its own y scale): panels[title] = (xs, ys)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 2.8), squeeze=False)
    for ax, (title, (xs, ys)) in zip(axes[0], panels.items()):
        ax.plot(xs, ys, marker="o")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    return save_figure(fig, path)


def plot_bars(values: dict[str, dict[str, float]], path: Path, *, title: str = "") -> Path:
    """Grouped bars: values[model][metric] -> one group per metric, one bar per model."""
    plt = _plt()
    models = list(values)
    metrics = list(next(iter(values.values())))
    x = np.arange(len(metrics))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(1.4 * len(metrics) + 2.5, 3.2))
    for i, model in enumerate(models):
        ax.bar(x + i * width - 0.4 + width / 2, [values[model][m] for m in metrics], width, label=model)
    ax.set_xticks(x)
    ax.set_xticklabels(metrics, fontsize=7, rotation=15)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:0.6em 0 1.4em}td,th{border:1px solid #bbb;padding:3px 8px;"
         "text-align:right}th{background:#eee}td:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}"
         "figure{margin:1.4em 0}figcaption{font-size:0.9em;color:#555}pre{font-size:0.8em;background:#f6f6f6;"
         "padding:0.6em;overflow-x:auto}")
"""the CSS of every mirokit HTML page"""


def html_table(header: list[str], rows: list[list], digits: int = 3) -> str:
    """An HTML table; floats are shown with `digits` decimals, everything else as escaped text."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(title: str, body: list[str], *, css: str = "") -> str:
    """A self-contained HTML document: `title`, mirokit's STYLE plus `css`, and the HTML blocks of `body`."""
    return "\n".join([f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                      f"<style>{STYLE}{css}</style></head><body>", *body, "</body></html>"])
