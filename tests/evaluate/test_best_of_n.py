"""`mirokit eval best-of-n` end to end: curves recomputed from the written pools, samples saved consistent with
the exact curve, plots and report."""

import json

import numpy as np
import pytest
from evalkit import read_jsonl, shapes_prompts, world_models

from mirokit.cli.main import main
from mirokit.evaluate.best_of_n import powers_of_two

POOL = 6


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    models = world_models(tmp_path_factory)
    root = tmp_path_factory.mktemp("best_of_n")
    out = root / "out"
    assert main(["eval", "best-of-n", "--model", f"baseline={models['baseline']}", "--model", f"miro={models['miro']}",
                 "--prompts", str(shapes_prompts(root / "p.jsonl", 40)), "--max-prompts", "5", "--pool", str(POOL),
                 "--steps", "2", "--select", "world_quality", "--score", "world_composition", "--reference", "miro",
                 "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text()), read_jsonl(out / "scores.jsonl")


def _pools(rows, model, key):
    pools = {}
    for r in rows:
        if r["model"] == model:
            pools.setdefault(r["prompt_index"], []).append(r[key])
    return [np.array(v) for v in pools.values()]


def test_powers_of_two():
    assert powers_of_two(128) == [1, 2, 4, 8, 16, 32, 64, 128] and powers_of_two(6) == [1, 2, 4, 6]


def test_curve_ends_are_the_pool_mean_and_the_pool_max(result):
    _, summary, rows = result
    assert summary["ns"] == [1, 2, 4, 6] and summary["pool"] == POOL
    for model in ("baseline", "miro"):
        pools = _pools(rows, model, "world_quality")
        assert len(pools) == 5 and all(len(p) == POOL for p in pools)
        curve = summary["models"][model]["curves"]["world_quality"]
        assert curve["1"]["mean"] == pytest.approx(np.mean([p.mean() for p in pools]))
        assert curve["6"]["mean"] == pytest.approx(np.mean([p.max() for p in pools]))
        assert curve["1"]["mean"] <= curve["2"]["mean"] <= curve["4"]["mean"] <= curve["6"]["mean"]
        # the reported key follows the selection: at N = pool it is the composition of each pool's best-quality image
        comp = _pools(rows, model, "world_composition")
        best = [c[np.argmax(q)] for q, c in zip(pools, comp)]
        assert summary["models"][model]["curves"]["world_composition"]["6"]["mean"] == pytest.approx(np.mean(best))


def test_samples_saved_is_the_first_n_of_the_exact_curve(result):
    _, summary, _ = result
    target = summary["models"]["miro"]["curves"]["world_quality"]["1"]["mean"]
    saved = summary["samples_saved"]["baseline"]
    exact = summary["exact_curve"]["baseline"]
    assert len(exact) == POOL and saved["reference_best_of_1"] == pytest.approx(target)
    if saved["first_n"] is None:
        assert max(exact) < target and "does not reach" in saved["statement"]
    else:
        n = saved["first_n"]
        assert exact[n - 1] >= target and all(v < target for v in exact[:n - 1])
        assert f"needs N = {n}" in saved["statement"]
    assert "miro" not in summary["samples_saved"]


def test_plots_and_report(result):
    out, _, _ = result
    html = (out / "report.html").read_text()
    for name in ("best_of_n.png", "best_of_n_world_composition.png"):
        assert (out / name).stat().st_size > 2000 and name in html
    assert "Samples saved" in html


def test_pool_must_be_positive_and_reference_known(tmp_path_factory, capsys):
    models = world_models(tmp_path_factory)
    out = str(tmp_path_factory.mktemp("bad"))
    for extra, expected in ((["--pool", "0"], "--pool must be >= 1"),
                            (["--reference", "nope"], "--reference 'nope' is not a --model name")):
        assert main(["eval", "best-of-n", "--model", f"miro={models['miro']}", "--max-prompts", "1", "--steps", "1",
                     "--pool", "2", *extra, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err


def test_several_selections_give_the_scaling_comparison_per_reward(tmp_path_factory, capsys):
    """--select twice: each reward selected and reported by itself, curves N = 1..pool from the written pools, and
    the N at which the baseline reaches the reference's best-of-1 (checked against the pools)."""
    from mirokit.evaluate.best_of_n import per_prompt_best_of_n

    models = world_models(tmp_path_factory)
    root = tmp_path_factory.mktemp("scaling")
    out = root / "out"
    assert main(["eval", "best-of-n", "--model", f"miro={models['miro']}", "--model", f"baseline={models['baseline']}",
                 "--prompts", str(shapes_prompts(root / "p.jsonl", 40)), "--max-prompts", "4", "--pool", "4",
                 "--steps", "2", "--select", "world_quality", "--select", "world_composition", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = read_jsonl(out / "scores.jsonl")
    assert set(summary["scaling"]) == {"world_quality", "world_composition"} and (out / "scaling.png").is_file()
    for key, comp in summary["scaling"].items():
        pools = _pools(rows, "baseline", key)
        curve = [np.nanmean(per_prompt_best_of_n(pools, n)) for n in range(1, 5)]
        assert np.allclose([c["mean"] for c in comp["curves"]["baseline"]], curve)
        target = np.mean([np.mean(p) for p in _pools(rows, "miro", key)])  # best-of-1 = the pool mean
        first = next((n for n, c in enumerate(curve, 1) if c >= target), None)
        assert comp["vs_reference"]["baseline"]["first_n"] == first
    assert "matches ref best-of-1 at N" in capsys.readouterr().out
