"""Report helpers: NaN-safe JSON, interval formatting, text tables, and every plot writes a real PNG."""

import json
import math

import numpy as np

from mirokit.evaluate.pages import (
    fmt_ci,
    plot_ci_curves,
    plot_ci_grid,
    plot_ci_panels,
    plot_pareto,
    text_table,
    write_json,
    write_page,
)
from mirokit.evaluate.stats import mean_ci


def test_json_writes_nan_as_null(tmp_path):
    path = write_json(tmp_path / "s.json", {"a": float("nan"), "b": [np.float32(1.5), math.inf], "c": {1: 2}})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None], "c": {"1": 2}}


def test_fmt_ci_and_table():
    assert fmt_ci(mean_ci([1, 2, 3]), 2) == "2.00 [-0.48, 4.48]"
    assert fmt_ci(mean_ci([4.0]), 1) == "4.0" and fmt_ci(mean_ci([]), 1) == "n/a"
    assert text_table(["a", "bb"], [[1, 2], [333, 4]]).splitlines() == ["a    bb", "---  --", "1    2", "333  4"]


def test_plots_and_page(tmp_path):
    ci = [mean_ci([1, 2, 3]), mean_ci([2, 3, 5]), mean_ci([7.0])]
    plot_ci_panels({"m1": {"k": ci[0], "j": ci[2]}, "m2": {"k": ci[1], "j": ci[1]}}, tmp_path / "a.png")
    plot_ci_curves({"m1": ([1, 2, 4], ci)}, tmp_path / "b.png", xlabel="N", ylabel="y", log2_x=True, hlines={"r": 2})
    plot_ci_grid({"k": {"s": (["euler", "heun", "ab2"], ci)}}, tmp_path / "c.png", xlabel="solver", categorical_x=True)
    plot_pareto([(0, 1), (1, 0), (0.2, 0.2)], ["a", "b", "c"], tmp_path / "d.png", xlabel="x", ylabel="y")
    for name in "abcd":
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = write_page(tmp_path, "T <1>", intro=["x & y"], tables=[("h", ["a"], [["<b>"]])], figures={"f": "a.png"},
                      notes=["n"], summary={"k": 1}).read_text()
    assert "T &lt;1&gt;" in page and "&lt;b&gt;" in page and "<img src='a.png'" in page and "x &amp; y" in page
