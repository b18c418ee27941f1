"""`mirokit eval diversity`: the Vendi score and cosine distance on known answers, best-of-k selection, the CLIP
extractor (tiny random CLIPModel), the shapes world's extractors on rendered ground truth, image folders (a
collapsed folder scores 1), two tiny models side by side with resume, and best-of-N's scaling comparison."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from evalkit import read_jsonl, shapes_prompts, world_models

from mirokit.cli.main import main
from mirokit.evaluate.best_of_n import per_prompt_best_of_n, scaling_comparison, scaling_table
from mirokit.evaluate.diversity import entropy_bits, mean_cosine_distance, select_best, vendi_score
from mirokit.evaluate.features import build_extractor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rewards"))


def test_vendi_known_answers():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, 16))
    assert vendi_score(np.repeat(one, 7, axis=0)) == pytest.approx(1.0)
    assert vendi_score(np.eye(5) * 3.0) == pytest.approx(5.0)
    # two groups of identical features, orthogonal to each other: 2 distinct images
    two = np.concatenate([np.repeat(np.eye(4)[:1], 3, axis=0), np.repeat(np.eye(4)[1:2], 3, axis=0)])
    assert vendi_score(two) == pytest.approx(2.0)
    # unequal groups (1 vs 3): exp of the entropy of (1/4, 3/4)
    skew = np.concatenate([np.eye(4)[:1], np.repeat(np.eye(4)[1:2], 3, axis=0)])
    assert vendi_score(skew) == pytest.approx(np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))))
    # scale does not matter (cosine), and random features lie strictly between 1 and N
    x = rng.normal(size=(6, 3))
    assert vendi_score(x) == pytest.approx(vendi_score(x * np.arange(1, 7)[:, None]))
    assert 1.0 < vendi_score(x) < 6.0


def test_cosine_distance_and_entropy():
    assert mean_cosine_distance(np.ones((4, 3))) == pytest.approx(0.0)
    assert mean_cosine_distance(np.eye(3)) == pytest.approx(1.0)
    assert mean_cosine_distance(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)
    assert np.isnan(mean_cosine_distance(np.ones((1, 3))))
    assert entropy_bits(["a"] * 5) == 0.0 and entropy_bits(list("abcd")) == pytest.approx(2.0)
    assert entropy_bits([0, 0, 1, 1]) == pytest.approx(1.0) and np.isnan(entropy_bits([]))


def test_select_best_picks_each_groups_argmax():
    images = np.arange(6)[:, None, None, None] * np.ones((6, 2, 2, 3), np.uint8)
    scores = np.array([0.1, 0.9, 0.5, np.nan, 0.2, 0.1])
    chosen, pick = select_best(images, scores, 2)
    assert pick.tolist() == [1, 2, 4] and chosen[:, 0, 0, 0].tolist() == [1, 2, 4]


def test_clip_extractor_on_a_tiny_random_clip(tmp_path):
    from clip_testkit import save_clip_folder

    folder = save_clip_folder(tmp_path / "clip")
    ext = build_extractor("clip", {"model": folder})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    feats = ext.features(images, [{}] * 5)
    assert feats.shape == (5, 16) and np.isfinite(feats).all()
    assert vendi_score(ext.features(np.repeat(images[:1], 4, axis=0), [{}] * 4)) == pytest.approx(1.0, abs=1e-6)
    assert vendi_score(feats) > 1.0
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'"):
        build_extractor("nope")


def test_world_scene_attributes_follow_the_prompt(tmp_path):
    records = [json.loads(line) for line in shapes_prompts(tmp_path / "p.jsonl", 553).read_text().splitlines()]
    by_tag = {}
    for r in records:
        by_tag.setdefault(r["tag"], r)
    ext = build_extractor("world_scene")
    out = tmp_path / "gt"
    file = tmp_path / "tags.jsonl"
    file.write_text("".join(json.dumps(by_tag[t]) + "\n" for t in ("single_object", "colors", "position")))
    assert main(["world", "render", "--prompts", str(file), "--out", str(out), "--images-per-prompt", "8"]) == 0
    from PIL import Image

    rows = {}
    for i, tag in enumerate(("single_object", "colors", "position")):
        images = np.stack([np.asarray(Image.open(p).convert("RGB"))
                           for p in sorted((out / f"{i:05d}" / "samples").iterdir())])
        attrs = ext.attributes(images, [by_tag[tag]] * 8)
        feats = ext.features(images, [by_tag[tag]] * 8)
        assert feats.shape == (8, 4 * 17 + 1) and (np.abs(feats).sum(1) > 0).all()
        rows[tag] = {k: entropy_bits([v for a in attrs for v in a.get(k, [])]) for k in ("colour", "position", "size")}
    # an object without a named colour takes random colours and cells; a named colour is not free; a stated
    # relative position leaves no free position
    assert rows["single_object"]["colour"] > 1.0 and rows["single_object"]["position"] > 0.5
    assert np.isnan(rows["colors"]["colour"]) and rows["colors"]["position"] > 0.5
    assert np.isnan(rows["position"]["position"]) and rows["position"]["size"] >= 0


def test_folder_arms_collapsed_folder_scores_one(tmp_path, capsys):
    gt, collapsed = tmp_path / "gt", tmp_path / "collapsed"
    prompts = shapes_prompts(tmp_path / "p.jsonl", 6, step=90)
    assert main(["world", "render", "--prompts", str(prompts), "--out", str(gt), "--images-per-prompt", "4"]) == 0
    shutil.copytree(gt, collapsed)
    for first in collapsed.glob("*/samples/0000.png"):
        for other in first.parent.glob("000[1-3].png"):
            shutil.copy(first, other)
    out = tmp_path / "div"
    assert main(["eval", "diversity", "--images", f"gt={gt}", "--images", f"collapsed={collapsed}",
                 "--images-per-prompt", "4", "--features", "world_scene", "--features", "world_ae",
                 "--out", str(out)]) == 0
    assert "collapsed" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    col, truth = summary["models"]["collapsed"], summary["models"]["gt"]
    assert col["num_prompts"] == 6 and truth["num_prompts"] == 6
    assert col["features"]["world_ae"]["vendi"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert col["features"]["world_scene"]["cosine_distance"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert truth["features"]["world_ae"]["vendi"]["mean"] > 1.5
    assert truth["features"]["world_ae"]["vendi"]["low"] < truth["features"]["world_ae"]["vendi"]["mean"]
    assert col["vs_first"]["features"]["world_ae"]["vendi"]["high"] < 0  # significantly less diverse, paired
    assert (out / "report.html").is_file() and (out / "diversity.png").stat().st_size > 2000


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    models = world_models(tmp_path_factory)
    root = tmp_path_factory.mktemp("diversity")
    args = ["eval", "diversity", "--model", f"baseline={models['baseline']}", "--model", f"miro={models['miro']}",
            "--prompts", str(shapes_prompts(root / "p.jsonl", 40)), "--max-prompts", "4", "--images-per-prompt", "3",
            "--steps", "2", "--features", "world_scene", "--features", "world_ae", "--best-of", "world_quality=2",
            "--out", str(root / "out")]
    assert main(args) == 0
    return root / "out", args


def test_models_side_by_side_with_selection(model_run):
    out, _ = model_run
    summary = json.loads((out / "summary.json").read_text())
    rows = read_jsonl(out / "diversity.jsonl")
    names = ["baseline", "miro", "baseline best-of-2 world_quality", "miro best-of-2 world_quality"]
    assert list(summary["models"]) == names and len(rows) == 4 * 4
    for name in names:
        mine = [r for r in rows if r["arm"] == name]
        vendi = [r["features"]["world_ae"]["vendi"] for r in mine]
        assert all(1.0 - 1e-9 <= v <= 3.0 + 1e-9 for v in vendi) and all(r["n_images"] == 3 for r in mine)
        assert summary["models"][name]["features"]["world_ae"]["vendi"]["mean"] == pytest.approx(np.mean(vendi))
    diff = summary["models"]["miro"]["vs_first"]["features"]["world_ae"]["vendi"]["mean"]
    per = {r["prompt_index"]: r["features"]["world_ae"]["vendi"] for r in rows if r["arm"] == "baseline"}
    assert diff == pytest.approx(np.mean([r["features"]["world_ae"]["vendi"] - per[r["prompt_index"]]
                                          for r in rows if r["arm"] == "miro"]))


def test_resume_skips_done_prompts_and_refuses_other_settings(model_run, capsys):
    out, args = model_run
    before = (out / "diversity.jsonl").read_text()
    assert main(args) == 0
    assert (out / "diversity.jsonl").read_text() == before
    changed = [a if a != "3" else "4" for a in args]
    assert main(changed) == 2  # the ValueError: exit code 2 and one line
    assert "other settings" in capsys.readouterr().err


def test_scaling_comparison_on_known_pools():
    ref = [np.array([0.8, 0.8]), np.array([0.6, 0.6])]  # reference best-of-1 = 0.7
    base = [np.array([0.1, 0.9, 0.2, 0.3]), np.array([0.5, 0.1, 0.2, 0.7])]
    comp = scaling_comparison({"miro": ref, "baseline": base}, "miro")
    assert comp["reference_best_of_1"]["mean"] == pytest.approx(0.7)
    curve = [c["mean"] for c in comp["curves"]["baseline"]]
    assert curve[0] == pytest.approx(np.mean([b.mean() for b in base])) and curve[-1] == pytest.approx(0.8)
    exact = [np.mean(per_prompt_best_of_n(base, n)) for n in range(1, 5)]
    assert curve == pytest.approx(exact)
    first = next(n for n, v in enumerate(curve, 1) if v >= 0.7)
    v = comp["vs_reference"]["baseline"]
    assert v["first_n"] == first and v["at_pool"]["mean"] == pytest.approx(0.1)
    never = scaling_comparison({"miro": ref, "low": [b * 0.5 for b in base]}, "miro")
    assert never["vs_reference"]["low"]["first_n"] is None
    head, rows = scaling_table({"q": never})
    assert rows[1][-1] == "never within 4" and rows[0][-1] == "(reference)" and head[2] == "N=1"


def test_best_of_n_with_several_selections(tmp_path_factory):
    from mirokit.evaluate.best_of_n import best_of_n
    from mirokit.evaluate.samples import ModelRun, build_scorers, load_pipes, load_prompts
    from mirokit.sampling import SamplingSettings

    models = world_models(tmp_path_factory)
    pipes = load_pipes({"miro": str(models["miro"]), "baseline": str(models["baseline"])})
    runs = [ModelRun(name=n, pipe=p, settings=SamplingSettings(steps=2)) for n, p in pipes.items()]
    records = load_prompts(shapes_prompts(tmp_path_factory.mktemp("bon") / "p.jsonl", 10))
    keys = ["world_quality", "world_composition"]
    summary, rows = best_of_n(runs, records, [0, 3, 6], build_scorers(keys), select=keys, pool=4, progress=False)
    assert summary["select"] == "world_quality" and set(summary["scaling"]) == set(keys)
    for key in keys:
        comp = summary["scaling"][key]
        pools = {}
        for r in rows:
            if r["model"] == "baseline":
                pools.setdefault(r["prompt_index"], []).append(r[key])
        assert comp["curves"]["baseline"][3]["mean"] == pytest.approx(np.mean([max(v) for v in pools.values()]))
        assert len(comp["curves"]["miro"]) == 4 and "baseline" in comp["vs_reference"]
    # the main selection's curves are the ones of a single-selection call
    assert summary["models"]["baseline"]["curves"]["world_quality"]["4"]["mean"] == pytest.approx(
        summary["scaling"]["world_quality"]["curves"]["baseline"][3]["mean"])
