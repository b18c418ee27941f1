import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from mirokit.cli.main import build_parser, main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from runs import TINY_RIN


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--config", "cpu_tiny", *TINY_RIN, f"out_dir={out}", "train.steps=2",
                 "train.batch_size=4", "train.progress=false", "data.num_samples=32", "train.checkpoint_every=0"]) == 0
    return out / "model"


def _one_line_error(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err, err
    return err


def _subcommands(parser) -> dict:
    """{name: parser} of the sub-commands of an argparse parser ({} if it has none)."""
    found = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return dict(found[0].choices) if found else {}


def test_every_flag_is_documented():
    todo = list(_subcommands(build_parser()).items())
    assert {"train", "sample", "demo"} <= {name for name, _ in todo}
    while todo:
        name, p = todo.pop()
        assert p.description, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        todo += [(f"{name} {child}", q) for child, q in _subcommands(p).items()]


def test_commands_come_from_the_registry_and_the_world_plugin_adds_its_own():
    top = _subcommands(build_parser())
    assert {"convert", "convert-official", "convert-geneval-detector", "calibrate", "vae", "generate"} <= set(top)
    assert set(_subcommands(top["convert"])) == {"official", "geneval-detector", "image-reward", "vqa-score",
                                                 "hpsv2", "aesthetic"}
    assert set(_subcommands(top["calibrate"])) == {"fit", "apply"}
    assert {"rewards", "best-of-n", "sweep", "tune-targets", "geneval", "shapes", "diversity"} == set(
        _subcommands(top["eval"]))
    # the world's commands are registered by its plugin module, which the core CLI never imports
    from mirokit.cli.commands import COMMANDS

    world = {e.kind for e in COMMANDS.entries() if e.target.__module__ == "mirokit.world.commands"}
    assert world == {"demo", "world", "world.render", "world.generate", "world.autoencoder", "eval.shapes"}
    assert set(_subcommands(top["world"])) == {"render", "generate", "autoencoder"}


def test_console_help_runs():
    proc = subprocess.run([sys.executable, "-m", "mirokit.cli.main", "sample", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "--negative-reward" in proc.stdout


def test_sample_writes_pngs_and_settings(trained_model, tmp_path):
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(trained_model), "--prompt", "a red circle", "--prompt", "a blue square",
                 "--reward", "brightness=0.2", "--negative-reward", "size=nan", "--steps", "3", "--num-images", "2",
                 "--solver", "heun", "--seed", "7", "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4
    assert Image.open(pngs[0]).size == (16, 16)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["rewards"] == {"brightness": 0.2} and settings["negative_rewards"] == {"size": None}
    assert settings["solver"] == "heun" and settings["images"][3]["prompt"] == "a blue square"


def test_sample_is_deterministic_given_a_seed(trained_model, tmp_path):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        main(["sample", "--model", str(trained_model), "--prompt", "a red circle", "--steps", "2", "--seed", str(seed),
              "--out", str(tmp_path / name)])
        runs.append((tmp_path / name / "000_000.png").read_bytes())
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_unknown_reward_key_is_one_line_listing_known_keys(trained_model, tmp_path, capsys):
    _one_line_error(capsys, ["sample", "--model", str(trained_model), "--prompt", "x", "--reward", "aesthetic=1",
                             "--out", str(tmp_path)],
                    "unknown reward key 'aesthetic'; this model knows: brightness, size")


@pytest.mark.parametrize("argv,expected", [
    (["train", "--config", "cpu_tiny", "train.stepz=3"], "unknown config key(s) train.stepz"),
    (["demo", "--quality-mix", "2"], "quality_mix must be in [0, 1]"),
    (["train", "--config", "no_such_config.yaml"], "config file not found"),
    (["train", "--config", "cpu_tiny", "train.precision=fp8"], "unknown precision"),
    (["train", "--config", "cpu_tiny", "data.kind=jsonl"], "missing required key(s) data.path"),
    (["train", "--config", "cpu_tiny", "data.kind=jsonl", "data.path=/nope/x.jsonl"], "/nope/x.jsonl"),
    (["sample", "--model", "/nope/model", "--prompt", "x", "--out", "/tmp/x"],
     "model directory not found: /nope/model"),
])
def test_bad_input_is_one_line(capsys, argv, expected):
    _one_line_error(capsys, argv, expected)


def test_bad_reward_value_is_one_line(trained_model, tmp_path, capsys):
    _one_line_error(capsys, ["sample", "--model", str(trained_model), "--prompt", "x", "--reward", "brightness=high",
                             "--out", str(tmp_path)], "'high' is not a number")


def test_demo_smoke(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--samples", "96", "--steps", "2", "--batch-size", "8",
                 "--eval-prompts", "24", "--control-prompts", "2", "--sampling", "{steps: 2}", "--official-negative",
                 "--quality-mix", "0.5",
                 "--control-guidance", "1.5", "--started-at", str(time.time() - 30), "train.progress=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {"miro", "miro, quality 0.5", "miro, away from all-0"}
    assert summary["seconds"] > 0 and set(summary["models"]) == {"baseline", *rows}
    for model in summary["models"].values():
        ci = model["shapes_eval"]
        assert 0.0 <= ci["mean"] <= 1.0 and ci["low"] <= ci["mean"] <= ci["high"]
        assert len(model["per_tag"]) == 6  # every task keeps its share of the 24 prompts
        assert set(model["rewards"]) == {"world_alignment", "world_quality", "world_composition"}
    assert set(summary["minus_baseline"]) == rows
    for diff in summary["minus_baseline"].values():
        assert {"shapes_eval", "colour_fidelity", "single_object_class", "world_quality"} <= set(diff)
    for control in summary["controllability"].values():
        assert len(control["measured"]) == 5 and (control["spearman"] is None or -1 <= control["spearman"] <= 1)
    assert summary["plan"]["steps"] == 2
    # the precision was decided once, by measuring (summary.json, the report), and both runs trained in it
    precision = summary["plan"]["precision"]
    assert precision["precision"] in ("fp32", "bf16") and precision["chosen_by"].startswith("auto: ")
    assert json.loads((out / "runs" / "precision.json").read_text())["precision"] == precision["precision"]
    for run in ("baseline", "miro"):
        assert f"precision: {precision['precision']}" in (out / "runs" / run / "config.yaml").read_text()
    assert f"Both trained in {precision['precision']}" in (out / "report.html").read_text()
    # it ends with the studio command for its two models, which parses and names folders that load
    line = next(li for li in capsys.readouterr().out.splitlines() if "mirokit studio" in li)
    args = build_parser().parse_args(line[line.index("mirokit studio"):].split()[1:])
    assert [m.split("=")[0] for m in args.models] == ["miro", "baseline"]
    assert all((Path(m.split("=")[1]) / "config.json").is_file() for m in args.models)
    _check_control_sweep(summary, out / "runs" / "miro" / "model")
    _check_mix_row(summary, out / "runs" / "miro" / "model")
    _check_pipeline_call(out / "runs" / "miro" / "model", tmp_path)
    # the budget counted from --started-at (make demo's start: the install counts too)
    assert summary["plan"]["seconds_before_demo"] >= 30 and summary["seconds"] >= 30
    html = (out / "report.html").read_text()
    for name in ("grids.png", "loss.png", "shapes_eval.png", "metrics.png", "control.png"):
        assert (out / "figures" / name).stat().st_size > 1000 and f"figures/{name}" in html
    cal = json.loads((out / "calibration.json").read_text())
    assert set(cal["rewards"]) == {"world_alignment", "world_quality", "world_composition"}
    assert (out / "runs" / "miro" / "model" / "calibration.json").is_file()


def _check_pipeline_call(miro_model, tmp_path) -> None:
    """MiroPipeline(...) on the demo's MIRO model: the demo's sampler by default, the same pixels as
    `mirokit sample` with the same settings, other targets other images, an unknown key a one-line error."""
    import numpy as np

    from mirokit.pipeline import MiroPipeline

    pipe = MiroPipeline.from_pretrained(miro_model)
    prompts = ["a red circle", "two blue squares"]
    out = pipe(prompts, rewards={"world_quality": 0.5}, num_images=2, seed=3, steps=2)
    s = out.settings
    assert (s.solver, s.steps, s.guidance, s.seed) == ("ab2", 2, 3.0, 3)  # the demo's sampler, stored with the model
    assert s.negative_rewards == {k: None for k in pipe.reward_keys} and len(out.images) == 4
    assert out.prompts == [prompts[0], prompts[0], prompts[1], prompts[1]] and out.indices[1] == (0, 1)
    folder = tmp_path / "cli_samples"
    assert main(["sample", "--model", str(miro_model), "--prompt", prompts[0], "--prompt", prompts[1],
                 "--reward", "world_quality=0.5", "--num-images", "2", "--seed", "3", "--steps", "2",
                 "--out", str(folder)]) == 0
    for image, (i, j) in zip(out.images, out.indices):
        assert np.array_equal(np.asarray(image), np.asarray(Image.open(folder / f"{i:03d}_{j:03d}.png"))), (i, j)
    other = pipe(prompts, rewards={"world_quality": 0.0}, num_images=2, seed=3, steps=2)
    assert not np.array_equal(np.asarray(other.images[0]), np.asarray(out.images[0]))
    one_by_one = pipe(prompts, rewards={"world_quality": 0.5}, num_images=2, seed=3, steps=2, batch_size=1)
    for a, b in zip(one_by_one.images, out.images):  # the batch does not change an image (beyond float noise)
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1
    with pytest.raises(ValueError, match="unknown reward key 'aesthetic_score'; this model knows: world_") as err:
        pipe("a red circle", rewards={"aesthetic_score": 1.0}, steps=1)
    assert "\n" not in str(err.value)


def _check_mix_row(summary: dict, miro_model) -> None:
    """The quality-mix row is MIRO sampled with world_quality's target at --quality-mix (0.5), the others at 1:
    its mean quality is what those targets give on the evaluation's prompts and noise, not what all-1 gives."""
    import numpy as np

    from mirokit.world import experiment as X
    from mirokit.world.demo_plan import HIGH, MISSING
    from mirokit.world.prompts import load_shapes_eval

    s = summary["settings"]
    prompts = load_shapes_eval()
    chosen = np.linspace(0, len(prompts) - 1, s["eval_prompts"]).round().astype(int)
    captions = [prompts[i]["prompt"] for i in chosen for _ in range(s["eval_images"])]
    exp = X.ExperimentConfig(sampling=s["sampling"], seed=s["seed"])

    def quality_at(target: float) -> float:
        images = X.sample_prompts(miro_model, captions, exp, rewards=HIGH | {"world_quality": target}, negative=MISSING)
        return float(np.mean(X.score_images(images, captions, ["world_quality"])["world_quality"]))

    measured = summary["models"]["miro, quality 0.5"]["rewards"]["world_quality"]["mean"]
    assert s["quality_mix"] == 0.5 and measured == pytest.approx(quality_at(0.5), abs=1e-6)
    assert measured != pytest.approx(quality_at(1.0), abs=1e-6)


def _check_control_sweep(summary: dict, miro_model) -> None:
    """The sweep's first point is what MIRO samples at --control-guidance (1.5), not at --guidance (3), with
    the other rewards missing (the default --control-others), not at 1."""
    import numpy as np

    from mirokit.world import experiment as X
    from mirokit.world.demo_plan import CONTROL_OTHERS, CONTROL_TARGETS, MISSING
    from mirokit.world.prompts import load_shapes_eval

    s = summary["settings"]
    prompts = load_shapes_eval()
    order = np.random.default_rng(s["seed"] + 1).permutation(len(prompts))[: s["control_prompts"]]
    captions = [prompts[i]["prompt"] for i in order]
    key = "world_quality"
    measured = summary["controllability"][key]["measured"][0]["mean"]

    def mean_at(guidance: float, others: str) -> float:
        exp = X.ExperimentConfig(sampling={**s["sampling"], "guidance": guidance}, seed=s["seed"])
        images = X.sample_prompts(miro_model, captions, exp, rewards=CONTROL_OTHERS[others] | {key: CONTROL_TARGETS[0]},
                                  negative=MISSING, seed=s["seed"] + 1)
        return float(np.mean(X.score_images(images, captions, [key])[key]))

    assert s["control_guidance"] == 1.5 and s["control_others"] == "missing"
    assert measured == pytest.approx(mean_at(1.5, "missing"), abs=1e-6)
    assert measured != pytest.approx(mean_at(s["sampling"]["guidance"], "missing"), abs=1e-6)
    assert measured != pytest.approx(mean_at(1.5, "high"), abs=1e-6)


def test_demo_within_a_budget_measures_sizes_the_world_and_plans_the_steps(tmp_path, capsys):
    # the path `make demo` takes (no fixed steps): a probe world, a measured plan, the world sized by it;
    # through run_demo, which the CLI calls, with a smaller smallest world than the CLI's 8,000
    from mirokit.world.demo import DemoConfig, run_demo
    from mirokit.world.demo_report import terminal_summary

    out = tmp_path / "demo"
    cfg = DemoConfig(out_dir=str(out), minutes=0.002, batch_size=8, eval_prompts=12, control_prompts=1,
                     sampling={"solver": "ab2", "steps": 2, "guidance": 3.0}, min_samples=200, probe_samples=64,
                     overrides=["train.progress=false"])
    summary = run_demo(cfg)
    plan = json.loads((out / "summary.json").read_text())["plan"]
    assert plan == summary["plan"] and plan["train_images_per_s"] > 0 and plan["world_seconds_per_sample"] > 0
    # a 0.12-second budget affords no more than the smallest world and the fewest steps
    assert plan["world_samples"] == 200 and plan["steps"] == cfg.min_steps
    assert summary["settings"]["eval_images"] == plan["eval_images_per_prompt"]
    # nor the reward-mix row (its evaluation, ~0.25 s here, would have to fit 15% of 0.12 s): left out, and the
    # report and the terminal say so
    assert plan["quality_mix"] is None and plan["quality_mix_left_out"] == 0.625
    assert set(summary["models"]) == {"baseline", "miro"} and set(summary["minus_baseline"]) == {"miro"}
    assert "The reward-mix row (quality 0.625) was left out" in (out / "report.html").read_text()
    assert "reward-mix row (quality 0.625) left out" in terminal_summary(summary)
    # the budget cut training to the minimum: the terminal (when training starts and at the end) and the report
    # say so, with what to do
    cut = f"training was cut to the minimum of {cfg.min_steps} steps"
    assert cut in capsys.readouterr().out and cut in terminal_summary(summary)
    assert cut in (out / "report.html").read_text() and "make demo" in terminal_summary(summary)
    assert list(summary["stage_seconds"]) == ["measure", "world", "write", "train", "evaluate", "report"]
    assert not (out / "probe").exists()
