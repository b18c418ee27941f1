"""`mirokit eval tune-targets` end to end: disjoint splits, the default evaluated first, an honest verdict that
matches the numbers, and a preset that `mirokit generate` turns into exactly the images that were judged."""

import json

import numpy as np
import pytest
from evalkit import read_jsonl, shapes_prompts, world_models

from mirokit.cli.main import main
from mirokit.evaluate.tune_targets import split_prompts, verdict
from mirokit.sampling.presets import load_preset

KEYS = ["world_alignment", "world_quality", "world_composition"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    model = world_models(tmp_path_factory)["miro"]
    root = tmp_path_factory.mktemp("tune")
    prompts = shapes_prompts(root / "p.jsonl", 12, step=41)
    out = root / "out"
    assert main(["eval", "tune-targets", "--model", str(model), "--metric", "reward:world_quality", "--prompts",
                 str(prompts), "--budget", "4", "--steps", "2", "--guidance", "2", "--batch-size", "1",
                 "--score", "world_composition", "--out", str(out)]) == 0
    return model, prompts, out, json.loads((out / "summary.json").read_text())


def test_splits_are_disjoint_by_prompt_text_and_cover_the_prompts(tuned):
    _, prompts, _, summary = tuned
    records = read_jsonl(prompts)
    tune, held = summary["split"]["tune"], summary["split"]["held_out"]
    assert sorted(tune + held) == list(range(12))
    assert not {records[i]["prompt"] for i in tune} & {records[i]["prompt"] for i in held}


def test_default_first_then_the_best_of_the_trace(tuned):
    _, _, _, summary = tuned
    trace = summary["trace"]
    assert len(trace) == 4 and summary["budget"] == 4
    assert trace[0]["setting"]["rewards"] == {k: 1.0 for k in KEYS}
    assert trace[0]["setting"]["negative_rewards"] == {k: 0.0 for k in KEYS} and trace[0]["setting"]["guidance"] == 2
    values = [t["value"] for t in trace]
    assert summary["best"]["tune_value"] == max(values)
    assert summary["best"]["setting"] == trace[int(np.argmax(values))]["setting"]
    lo, hi = summary["guidance_range"]
    assert (lo, hi) == (1.0, 4.0) and all(lo <= t["setting"]["guidance"] <= hi for t in trace[1:])
    assert all(0 <= v <= 1 for t in trace[1:] for v in t["setting"]["rewards"].values())


def test_verdict_matches_the_held_out_numbers(tuned):
    _, _, out, summary = tuned
    v, ho = summary["verdict"], summary["held_out"]
    if summary["best"]["is_default"]:
        assert not v["beats_default"] and "keeps the defaults" in v["statement"]
    else:
        assert v["beats_default"] == (ho["tuned"]["value"] > ho["default"]["value"])
        assert ("do NOT beat" in v["statement"]) == (not v["beats_default"])
        low = ho["difference"]["low"]
        assert v["significant"] == (v["beats_default"] and low is not None and low > 0)
        assert ho["difference"]["mean"] == pytest.approx(ho["tuned"]["value"] - ho["default"]["value"])
    assert set(ho["tuned"]["rewards"]) == {"world_composition"}
    html = (out / "report.html").read_text()
    assert v["statement"].split("(")[0] in html
    for name in ("search.png", "held_out.png"):
        assert (out / name).stat().st_size > 2000 and name in html


def test_generate_with_the_preset_reproduces_the_judged_images(tuned, tmp_path):
    from mirokit.evaluate.samples import build_scorers

    model, prompts, out, summary = tuned
    preset = load_preset(out / "preset.json")
    best = summary["best"]["setting"]
    assert preset["rewards"] == best["rewards"] and preset["guidance"] == best["guidance"]
    assert preset["about"]["held_out_value"] == summary["held_out"]["tuned"]["value"]
    images = tmp_path / "images"
    assert main(["generate", "geneval", "--model", str(model), "--prompts", str(prompts), "--preset",
                 str(out / "preset.json"), "--images-per-prompt", "1", "--batch-size", "1", "--out", str(images)]) == 0
    from PIL import Image

    held = summary["split"]["held_out"]
    records = read_jsonl(prompts)
    pil = [Image.open(images / f"{i:05d}" / "samples" / "0000.png").convert("RGB") for i in held]
    scores = build_scorers(["world_quality"])["world_quality"].score(pil, [records[i]["prompt"] for i in held])
    assert float(np.mean(scores)) == pytest.approx(summary["held_out"]["tuned"]["value"], rel=1e-6)


def test_split_keeps_repeated_prompts_together_and_stratifies_by_tag():
    records = [{"prompt": f"p{i % 5}", "tag": "a" if i % 5 < 3 else "b"} for i in range(20)]
    tune, held = split_prompts(records, list(range(20)), 0.5, seed=3)
    assert not {records[i]["prompt"] for i in tune} & {records[i]["prompt"] for i in held}
    assert {records[i]["tag"] for i in tune} == {records[i]["tag"] for i in held} == {"a", "b"}
    assert split_prompts(records, list(range(20)), 0.5, seed=3) == (tune, held)
    with pytest.raises(ValueError, match="cannot be split"):
        split_prompts([{"prompt": "same"}] * 4, [0, 1, 2, 3], 0.5, seed=0)


def test_verdict_says_so_when_the_tuned_settings_lose():
    summary = {"metric_name": "m", "best": {"is_default": False, "tune_value": 0.9},
               "default": {"tune_value": 0.5},
               "held_out": {"tuned": {"value": 0.4}, "default": {"value": 0.6},
                            "difference": {"mean": -0.2, "low": -0.3, "high": -0.1, "half_width": 0.1}}}
    v = verdict(summary)
    assert not v["beats_default"] and not v["significant"] and "do NOT beat" in v["statement"]
    summary["held_out"]["tuned"]["value"] = 0.65
    summary["held_out"]["difference"] = {"mean": 0.05, "low": -0.01, "high": 0.11, "half_width": 0.06}
    v = verdict(summary)
    assert v["beats_default"] and not v["significant"] and "not a significant gain" in v["statement"]


def test_bad_arguments_are_one_line(tmp_path_factory, capsys):
    model = world_models(tmp_path_factory)["miro"]
    out = str(tmp_path_factory.mktemp("bad"))
    for extra, expected in ((["--budget", "1"], "--budget must be >= 2"),
                            (["--search", "positive,temperature"], "--search takes positive, negative, guidance"),
                            (["--guidance-range", "3"], "must look like LO,HI"),
                            (["--option", "world_quality.x=1"], "--option for world_quality, which is neither"),
                            (["--metric", "nope"], "unknown metric 'nope'")):
        assert main(["eval", "tune-targets", "--model", str(model), "--metric", "reward:world_alignment",
                     "--budget", "3", "--steps", "1", "--max-prompts", "4", *extra, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err


def test_metric_options_reach_the_metric_or_fail_in_one_line(tmp_path_factory, capsys):
    model = world_models(tmp_path_factory)["miro"]
    out = str(tmp_path_factory.mktemp("opt"))
    assert main(["eval", "tune-targets", "--model", str(model), "--metric", "shapes", "--metric-option", "colour=1",
                 "--budget", "2", "--steps", "1", "--max-prompts", "4", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "colour" in err, err


def test_given_targets_are_judged_on_the_held_out_split_too(tmp_path_factory):
    model = world_models(tmp_path_factory)["miro"]
    root = tmp_path_factory.mktemp("given")
    prompts = shapes_prompts(root / "p.jsonl", 8, step=37)
    out = root / "out"
    missing = [a for k in KEYS for a in ("--negative-reward", f"{k}=nan")]
    assert main(["eval", "tune-targets", "--model", str(model), "--metric", "reward:world_quality", "--prompts",
                 str(prompts), "--budget", "2", "--steps", "1", "--guidance", "2", "--batch-size", "1",
                 "--search", "positive", *missing, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["default"]["setting"]["negative_rewards"] == {k: 0.0 for k in KEYS}
    assert summary["given"]["setting"]["negative_rewards"] == {k: None for k in KEYS}
    ho = summary["held_out"]
    assert ho["difference_vs_given"]["mean"] == pytest.approx(ho["tuned"]["value"] - ho["given"]["value"])
    # the searched candidate keeps the given (missing) negative targets
    assert summary["trace"][1]["setting"]["negative_rewards"] == {k: None for k in KEYS}
    assert "Against the given targets" in summary["verdict"]["statement"]
    assert "given targets" in (out / "report.html").read_text()
