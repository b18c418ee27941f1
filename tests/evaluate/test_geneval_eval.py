"""`mirokit eval geneval` end to end on a tiny Mask2Former whose detections are known (every query: a cat
and a dog covering the whole image, score ~0.4995) and a tiny random CLIP: verdicts, files, resume, shards,
torchrun ranks, bad input, the `geneval` metric and the shipped prompts."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from geneval_testkit import save_clip, tiny_mask2former, write_folder
from PIL import Image

from mirokit.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from runs import rank_envs, run_processes

PROMPTS = [
    {"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"},
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
    {"tag": "two_object", "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1}],
     "prompt": "a photo of a dog and a cat"},
    {"tag": "counting", "include": [{"class": "dog", "count": 2}], "exclude": [{"class": "dog", "count": 3}],
     "prompt": "a photo of two dogs"},
    {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}], "prompt": "a photo of a red dog"},
    {"tag": "position", "include": [{"class": "dog", "count": 1},
                                    {"class": "cat", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a cat right of a dog"},
]
FIELDS = {"filename", "tag", "prompt", "correct", "reason", "metadata", "details"}  # GenEval's record


def _noise(seed, w=48, h=40):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("geneval")
    detector = root / "detector"
    tiny_mask2former({15: 10.0, 16: 10.0}).save_pretrained(detector)
    clip = save_clip(root / "clip")
    folder = write_folder(root / "samples", PROMPTS, [[_noise(2 * k), _noise(2 * k + 1, 40, 48)] for k in range(6)])
    (folder / "00000" / "samples" / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (folder / "00006" / "samples").mkdir(parents=True)
    (folder / "00006" / "metadata.jsonl").write_text("{not json\n")
    (folder / "notes").mkdir()  # not a prompt folder (not digits): ignored, as by GenEval
    return {"root": root, "detector": str(detector), "clip": clip, "folder": folder}


def _run(env, out, *extra):
    return main(["eval", "geneval", str(env["folder"]), "--out", str(out), "--detector", env["detector"],
                 "--clip", env["clip"], "--device", "cpu", "--batch-size", "3", *extra])


def _expected_colour_hits(env):
    from mirokit.evaluate.geneval_colour import ClipColourClassifier
    from mirokit.evaluate.geneval_detector import InstanceDetection

    clf = ClipColourClassifier(env["clip"])
    hits = []
    for name in ("0000.png", "0001.png"):
        image = Image.open(env["folder"] / "00004" / "samples" / name).convert("RGB")
        full = InstanceDetection("dog", (0, 0, image.width, image.height), 0.5, np.ones(image.size[::-1], bool))
        hits.append(clf.classify(image, [full], "dog") == ["red"])
    return hits


@pytest.fixture(scope="module")
def reference(env):
    out = env["root"] / "ref" / "results.json"
    assert _run(env, out) == 0
    return out


def test_verdicts_records_summary_and_page(env, reference, capsys):
    summary = json.loads(reference.read_text())
    colour_hits = _expected_colour_hits(env)
    assert summary["per_tag"] == {"single_object": 0.5, "two_object": 1.0, "counting": 0.0,
                                  "colors": sum(colour_hits) / 2, "position": 0.0}
    assert summary["overall"] == pytest.approx(np.mean(list(summary["per_tag"].values())))
    assert summary["images"] == {"evaluated": 12, "errors": 1, "missing": 0}
    assert summary["prompts"] == {"evaluated": 6, "skipped": 1}
    assert any("00006: metadata.jsonl is not valid JSON" in p for p in summary["problems"])
    assert any("0002.png: unreadable image" in p for p in summary["problems"])
    assert summary["settings"]["rules"]["threshold"] == 0.3
    assert not summary["settings"]["detector"]["converted_from_mmdet"]
    records = [json.loads(x) for x in reference.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["filename"] for r in records] == sorted(r["filename"] for r in records) and len(records) == 13
    by_name = {r["filename"]: r for r in records}
    assert by_name["00000/samples/0002.png"]["correct"] is None and "error" in by_name["00000/samples/0002.png"]
    for r in records:
        if r["correct"] is not None:
            assert FIELDS <= set(r) and json.loads(r["metadata"]) == PROMPTS[int(r["filename"][:5])]
    dog = json.loads(by_name["00000/samples/0001.png"]["details"])["dog"]
    assert len(dog) == 6 and all(box[:4] == [0, 0, 40, 48] and abs(box[4] - 0.4995) < 1e-3 for box in dog)
    assert by_name["00001/samples/0000.png"]["reason"] == "expected bench>=1, found 0"
    assert by_name["00003/samples/0000.png"]["reason"] == "expected dog>=2, found 0"   # 0.9 for counting
    assert by_name["00005/samples/0000.png"]["reason"] == "expected cat right of target, found  target"
    assert [by_name[f"00004/samples/000{i}.png"]["correct"] for i in (0, 1)] == colour_hits
    page = reference.with_suffix(".html").read_text()
    failures = [r for r in records if r["correct"] is False]
    assert "expected bench&gt;=1, found 0" in page and f"Failures ({len(failures)};" in page
    thumbs = sorted((reference.parent / "results_failures").glob("*.png"))
    assert len(thumbs) == len(failures) and Image.open(thumbs[0]).size == (48, 40)
    assert (reference.parent / "results_tags.png").is_file()
    assert not list(reference.parent.glob("results.part-*"))


def test_resume_skips_finished_images_and_refuses_other_settings(env, reference, tmp_path, capsys):
    out = tmp_path / "results.json"
    shutil.copy(reference.with_suffix(".jsonl"), out.with_suffix(".jsonl"))
    shutil.copy(reference.with_name("results.settings.json"), tmp_path / "results.settings.json")
    weights = Path(env["detector"]) / "model.safetensors"
    weights.rename(weights.with_suffix(".away"))
    try:  # nothing left but the corrupt image, which fails again before any model is needed
        assert _run(env, out) == 0
    finally:
        weights.with_suffix(".away").rename(weights)
    assert out.with_suffix(".jsonl").read_text() == reference.with_suffix(".jsonl").read_text()
    lines = out.with_suffix(".jsonl").read_text().splitlines()
    out.with_suffix(".jsonl").write_text("\n".join(lines[:3] + lines[4:]) + "\n")   # lose one record
    assert _run(env, out) == 0
    assert out.with_suffix(".jsonl").read_text() == reference.with_suffix(".jsonl").read_text()
    capsys.readouterr()
    assert _run(env, out, "--detector-threshold", "0.5") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "made with other settings (rules differ)" in err
    assert _run(env, out, "--detector-threshold", "0.5", "--restart") == 0
    assert json.loads(out.read_text())["per_tag"]["two_object"] == 0.0   # 0.4995 is not above 0.5


def test_shards_then_merge_equal_one_run(env, reference, tmp_path, capsys):
    out = tmp_path / "results.json"
    for k in range(2):
        assert _run(env, out, "--shard-index", str(k), "--num-shards", "2") == 0
        assert f"shard {k}/2 done" in capsys.readouterr().out
    assert len(list(tmp_path.glob("results.part-*-of-0002.jsonl"))) == 2 and not out.exists()
    assert _run(env, out) == 0
    assert out.with_suffix(".jsonl").read_text() == reference.with_suffix(".jsonl").read_text()
    assert not list(tmp_path.glob("results.part-*"))


def test_two_torchrun_ranks_equal_one_run(env, reference, tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "mirokit.cli.main", "eval", "geneval", str(env["folder"]), "--out", str(out),
           "--detector", env["detector"], "--clip", env["clip"], "--device", "cpu"]
    run_processes([cmd, cmd], rank_envs(2, HF_HUB_OFFLINE="1"), timeout=240, what="two-rank geneval")
    assert out.with_suffix(".jsonl").read_text() == reference.with_suffix(".jsonl").read_text()
    summary, ref = json.loads(out.read_text()), json.loads(reference.read_text())
    assert summary["per_tag"] == ref["per_tag"] and not list(tmp_path.glob("results.part-*"))


def test_bad_input_is_one_line_errors(env, tmp_path, capsys):
    for extra, expected in [
        (["--detector", str(tmp_path / "nope")], "GenEval detector weights not found"),
        (["--shard-index", "2", "--num-shards", "2"], "--shard-index must be in [0, --num-shards=2)"),
        (["--detector-threshold", "2"], "--detector-threshold must be in [0, 1]"),
        (["--shard-index", "0", "--num-shards", "2", "--restart"], "--restart would delete other shards"),
    ]:
        assert _run(env, tmp_path / "r.json", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert main(["eval", "geneval", str(tmp_path / "missing"), "--out", str(tmp_path / "r.json"),
                 "--detector", env["detector"], "--clip", env["clip"]]) == 2
    assert "GenEval folder not found" in capsys.readouterr().err


def test_geneval_metric_scores_images_in_memory(env):
    from mirokit.evaluate.geneval_metric import GenEvalMetric
    from mirokit.evaluate.metrics import METRICS, parse_metric

    assert METRICS.get("geneval") is GenEvalMetric
    metric = parse_metric("geneval", detector=env["detector"], clip=env["clip"])
    assert len(metric.prompts()) == 553
    images = np.stack([np.asarray(_noise(k)) for k in range(3)])
    per_image = metric.score(images, PROMPTS[:3])
    assert per_image.tolist() == [1.0, 0.0, 1.0]
    assert metric.summarize(per_image, PROMPTS[:3]) == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="3 images but 2 records"):
        metric.score(images, PROMPTS[:2])


def test_shipped_prompts_and_class_names(tmp_path):
    from collections import Counter

    from mirokit.evaluate.geneval_data import load_geneval_prompts, load_object_names

    prompts = load_geneval_prompts()
    assert len(prompts) == 553 and prompts[0]["prompt"] == "a photo of a bench"
    assert Counter(p["tag"] for p in prompts) == {"position": 100, "color_attr": 100, "two_object": 99,
                                                  "colors": 94, "single_object": 80, "counting": 80}
    names = load_object_names()
    assert len(names) == 80 and names[16] == "dog" and names[75] == "vase"
    assert {c["class"] for p in prompts for c in p["include"]} <= set(names)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(prompts[0]) + "\n" + json.dumps({"tag": "x", "prompt": "p"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*no include or exclude clause"):
        load_geneval_prompts(bad)
