"""`mirokit eval sweep` end to end: a reward-target pair with its Pareto plot, and the solver x steps grid
against the official sampler with the sampling-cost table recomputed from the points."""

import json

import pytest
from evalkit import shapes_prompts, world_models

from mirokit.cli.main import main
from mirokit.evaluate.pages import pareto_front
from mirokit.evaluate.sweep import parse_sweep
from mirokit.sampling.presets import load_preset

KEYS = ["world_alignment", "world_quality", "world_composition"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return world_models(tmp_path_factory)


def test_reward_pair_sweep_writes_panels_and_a_pareto_plot(models, tmp_path):
    out = tmp_path / "pair"
    assert main(["eval", "sweep", "--model", str(models["miro"]), "--prompts",
                 str(shapes_prompts(tmp_path / "p.jsonl", 30)), "--max-prompts", "4", "--steps", "2",
                 "--sweep", "reward:world_quality=0,1", "--sweep", "reward:world_composition=0,0.5,1",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    points = summary["points"]
    assert len(points) == 6 and summary["metric_name"] == "reward:world_alignment"
    assert [p["values"] for p in points[:2]] == [{"reward:world_quality": 0, "reward:world_composition": 0},
                                                  {"reward:world_quality": 0, "reward:world_composition": 0.5}]
    assert points[1]["setting"]["rewards"] == {"world_quality": 0.0, "world_composition": 0.5}
    for p in points:
        assert set(p["rewards"]) == set(KEYS) and p["nfe"] == 2
        # the metric reward:world_alignment is the alignment reward's mean
        assert p["metric"]["value"] == pytest.approx(p["rewards"]["world_alignment"]["mean"])
    html = (out / "report.html").read_text()
    for name in ("sweep.png", "pareto.png"):
        assert (out / name).stat().st_size > 2000 and name in html
    assert not (out / "sampling_cost.md").exists()


def test_solver_grid_against_official_gives_a_consistent_cost_table(models, tmp_path):
    out = tmp_path / "cost"
    assert main(["eval", "sweep", "--model", str(models["miro"]), "--metric", "reward:world_quality", "--prompts",
                 str(shapes_prompts(tmp_path / "p.jsonl", 30)), "--max-prompts", "4", "--guidance", "7",
                 "--sweep", "solver=euler,heun,dpm++2m", "--sweep", "steps=2,5", "--reference", "official",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ref = summary["reference"]
    assert ref["nfe"] == 50 and ref["setting"]["steps"] == 50 and ref["setting"]["guidance"] == 7.0
    nfe = {(p["setting"]["solver"], p["setting"]["steps"]): p["nfe"] for p in summary["points"]}
    assert nfe == {("euler", 2): 2, ("euler", 5): 5, ("heun", 2): 3, ("heun", 5): 9, ("dpm++2m", 2): 2,
                   ("dpm++2m", 5): 5}
    cost = summary["sampling_cost"]
    assert cost["threshold"] == pytest.approx(ref["metric"]["ci"]["low"])
    assert set(cost["reward_thresholds"]) == set(ref["rewards"]) == set(KEYS)
    for solver in ("euler", "heun", "dpm++2m"):
        reaching = sorted(p["nfe"] for p in summary["points"]
                          if p["setting"]["solver"] == solver and p["metric"]["value"] >= cost["threshold"]
                          and all(p["rewards"][k]["mean"] >= ref["rewards"][k]["low"] for k in ref["rewards"]))
        hit = cost["solvers"][solver]
        assert (hit is None) == (not reaching)
        if hit:
            assert hit["nfe"] == reaching[0] and hit["fraction_of_reference"] == pytest.approx(hit["nfe"] / 50)
    assert (out / "cost.png").stat().st_size > 2000 and "cost.png" in (out / "report.html").read_text()
    table = (out / "sampling_cost.md").read_text()
    assert "| solver | fewest steps |" in table and "dpm++2m" in table
    if cost["best"] is not None:
        preset = load_preset(out / "fastest_preset.json")
        assert (preset["solver"], preset["steps"]) == (cost["best"]["setting"]["solver"],
                                                       cost["best"]["setting"]["steps"])
        assert "rewards" not in preset and preset["about"]["reference_nfe"] == 50
    for p in summary["points"]:  # paired with the reference on the same prompts and noise
        assert p["vs_reference"]["n"] == 4


@pytest.mark.parametrize("spec,expected", [
    ("guidance", "must look like PARAM=V1,V2"),
    ("reward:nope=0,1", "unknown reward key 'nope'"),
    ("solver=euler,rk4", "unknown solver 'rk4'"),
    ("steps=2,2.5", "--sweep steps: must be an integer, got '2.5'"),
    ("steps=0,2", "--sweep steps: must be an integer >= 1, got 0"),
    ("guidance_interval=0.2-0.8", "--sweep guidance_interval: must look like LO:HI"),
    ("guidance_interval=0.8:0.2", "must have 0 <= lo < hi <= 1"),
    ("temperature=1,2", "unknown setting"),
    ("shift=0,1", "--sweep shift: must be > 0, got 0"),
])
def test_bad_sweeps(spec, expected):
    with pytest.raises(ValueError, match=expected.replace("(", "\\(")):
        parse_sweep(spec, KEYS)


def test_parse_values():
    assert parse_sweep("reward:world_quality=0, 0.5,nan", KEYS) == ("reward:world_quality", [0.0, 0.5, None])
    assert parse_sweep("steps=4,8", KEYS) == ("steps", [4, 8])
    assert parse_sweep("solver=heun,ab2", KEYS) == ("solver", ["heun", "ab2"])
    assert parse_sweep("guidance_interval=full,0.2:0.8", KEYS) == ("guidance_interval", [None, (0.2, 0.8)])


def test_pareto_front():
    points = [(0.0, 1.0), (0.5, 0.5), (0.4, 0.4), (1.0, 0.0), (0.2, 0.9)]
    assert pareto_front(points) == [0, 4, 1, 3]


def test_reference_takes_the_presets_sampler_but_the_commands_guidance(models, tmp_path):
    out = tmp_path / "ref"
    assert main(["eval", "sweep", "--model", str(models["miro"]), "--metric", "reward:world_quality", "--prompts",
                 str(shapes_prompts(tmp_path / "p.jsonl", 30)), "--max-prompts", "2", "--guidance", "1.5",
                 "--steps", "3", "--sweep", "solver=euler", "--reference", "official", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ref, point = summary["reference"]["setting"], summary["points"][0]["setting"]
    assert (ref["solver"], ref["steps"], ref["guidance"]) == ("euler", 50, 1.5)
    assert (point["steps"], point["guidance"]) == (3, 1.5)
