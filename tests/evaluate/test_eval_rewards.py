"""`mirokit eval rewards` end to end on the shapes world: models side by side, intervals consistent with the
per-image scores, identical models paired to an exact zero difference, targets dropped for a reward-free model."""

import json

import numpy as np
import pytest
from evalkit import read_jsonl, shapes_prompts, world_models

from mirokit.cli.main import main
from mirokit.evaluate.stats import mean_ci

KEYS = ["world_alignment", "world_quality", "world_composition"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    models = world_models(tmp_path_factory)
    root = tmp_path_factory.mktemp("eval_rewards")
    prompts = shapes_prompts(root / "p.jsonl", 60)
    out = root / "out"
    assert main(["eval", "rewards", "--model", f"miro={models['miro']}", "--model", f"same={models['miro']}",
                 "--model", f"baseline={models['baseline']}", "--prompts", str(prompts), "--max-prompts", "8",
                 "--images-per-prompt", "2", "--steps", "3", "--reward", "world_quality=0.8", "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text()), read_jsonl(out / "scores.jsonl")


def test_outputs_and_summary_shape(result):
    out, summary, rows = result
    assert list(summary["models"]) == ["miro", "same", "baseline"] and summary["reward_keys"] == KEYS
    assert summary["num_prompts"] == 8 and len(summary["prompt_indices"]) == 8
    assert len(rows) == 3 * 8 * 2
    for name in ("rewards.png", "samples.png"):
        assert (out / name).stat().st_size > 2000 and name in (out / "report.html").read_text()


def test_intervals_are_recomputed_from_the_per_image_scores(result):
    _, summary, rows = result
    for name, model in summary["models"].items():
        mine = [r for r in rows if r["model"] == name]
        for key in KEYS:
            expected = mean_ci([r[key] for r in mine], [r["prompt_index"] for r in mine])
            got = model["rewards"][key]
            assert got["mean"] == pytest.approx(expected["mean"]) and got["n_groups"] == 8
            if np.isfinite(expected["half_width"]):
                assert got["half_width"] == pytest.approx(expected["half_width"])


def test_same_model_same_noise_gives_a_zero_paired_difference(result):
    _, summary, rows = result
    for key in KEYS:
        diff = summary["models"]["same"]["vs_first"][key]
        assert diff["mean"] == 0 and diff["half_width"] == 0
    same = [r["world_quality"] for r in rows if r["model"] == "same"]
    assert same == [r["world_quality"] for r in rows if r["model"] == "miro"]
    assert "vs_first" in summary["models"]["baseline"] and "vs_first" not in summary["models"]["miro"]


def test_targets_reach_the_reward_model_and_are_dropped_for_the_baseline(result):
    _, summary, _ = result
    assert summary["models"]["miro"]["settings"]["rewards"] == {"world_quality": 0.8}
    assert summary["models"]["baseline"]["settings"]["rewards"] == {}
    assert summary["models"]["baseline"]["settings"]["reward_keys"] == []


def test_unknown_scorer_and_unknown_target_are_one_line(tmp_path_factory, capsys):
    models = world_models(tmp_path_factory)
    out = str(tmp_path_factory.mktemp("bad"))
    for extra, expected in ((["--score", "nope"], "unknown reward key 'nope'"),
                            (["--reward", "nope=1"], "unknown reward key 'nope' in --reward"),
                            (["--model-preset", "other=official"], "--model-preset names 'other'")):
        assert main(["eval", "rewards", "--model", f"miro={models['miro']}", "--prompts", "parti-style",
                     "--max-prompts", "2", "--steps", "2", "--out", out, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
