import json

import numpy as np
import pytest
from PIL import Image

from mirokit.cli.main import main
from mirokit.world.render import render_scene
from mirokit.world.sampling import scene_for_metadata
from mirokit.world.shapes_eval import evaluate_folder

# (right prompt, a prompt whose scene contradicts it) per GenEval tag
CASES = {
    "single_object": ({"include": [{"class": "ring", "count": 1}], "prompt": "a photo of a ring"},
                      {"include": [{"class": "square", "count": 1}]}),
    "two_object": ({"include": [{"class": "star", "count": 1}, {"class": "cross", "count": 1}],
                    "prompt": "a photo of a star and a cross"},
                   {"include": [{"class": "star", "count": 1}, {"class": "circle", "count": 1}]}),
    "counting": ({"include": [{"class": "triangle", "count": 3}], "exclude": [{"class": "triangle", "count": 4}],
                  "prompt": "a photo of three triangles"},
                 {"include": [{"class": "triangle", "count": 4}]}),
    "colors": ({"include": [{"class": "circle", "count": 1, "color": "green"}], "prompt": "a photo of a green circle"},
               {"include": [{"class": "circle", "count": 1, "color": "pink"}]}),
    "position": ({"include": [{"class": "square", "count": 1},
                              {"class": "ring", "count": 1, "position": ["above", 0]}],
                  "prompt": "a photo of a ring above a square"},
                 {"include": [{"class": "square", "count": 1},
                              {"class": "ring", "count": 1, "position": ["below", 0]}]}),
    "color_attr": ({"include": [{"class": "star", "count": 1, "color": "red"},
                                {"class": "square", "count": 1, "color": "blue"}],
                    "prompt": "a photo of a red star and a blue square"},
                   {"include": [{"class": "star", "count": 1, "color": "blue"},
                                {"class": "square", "count": 1, "color": "red"}]}),
}


@pytest.fixture(scope="module")
def geneval_folder(tmp_path_factory):
    """Per tag: sample 0000 renders the prompt (correct), 0001 a contradicting scene; one corrupt PNG."""
    root = tmp_path_factory.mktemp("geneval")
    rng = np.random.default_rng(0)
    for k, (tag, (right, wrong)) in enumerate(CASES.items()):
        metadata = {"tag": tag, **right}
        folder = root / f"{k:05d}"
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(json.dumps(metadata) + "\n")
        for i, item in enumerate((metadata, {"tag": tag, **wrong})):
            Image.fromarray(render_scene(scene_for_metadata(item, rng), 32)).save(folder / "samples" / f"{i:04d}.png")
    (root / "00000" / "samples" / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (root / "00099").mkdir()  # a prompt folder without metadata: skipped and reported
    return root


def test_evaluate_folder_per_tag_accuracy(geneval_folder):
    records, summary = evaluate_folder(geneval_folder)
    assert summary["per_tag"] == {tag: 0.5 for tag in CASES}
    assert summary["overall"] == pytest.approx(0.5)
    assert summary["counts"]["counting"] == {"correct": 1, "total": 2}
    assert summary["images"] == {"evaluated": 12, "errors": 1}
    assert summary["prompts"] == {"evaluated": 6, "skipped": 1}
    assert summary["prompt_accuracy"] == 1.0 and summary["image_accuracy"] == 0.5
    assert any("0002.png: unreadable image" in p for p in summary["problems"])
    assert any("00099: no metadata.jsonl" in p for p in summary["problems"])
    by_name = {r["filename"]: r for r in records}
    assert by_name["00000/samples/0000.png"]["correct"] is True
    assert by_name["00000/samples/0001.png"]["reason"] == "expected ring>=1, found 0"
    assert by_name["00000/samples/0002.png"]["correct"] is None


def test_cli_writes_summary_and_jsonl(geneval_folder, tmp_path, capsys):
    out = tmp_path / "res" / "results.json"
    assert main(["eval", "shapes", str(geneval_folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "overall" in printed and "1 unreadable image(s), 1 skipped prompt folder(s)" in printed
    summary = json.loads(out.read_text())
    assert summary["overall"] == pytest.approx(0.5) and summary["rules"]["threshold"] == 0.3
    lines = [json.loads(x) for x in (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 13
    assert {"filename", "tag", "prompt", "correct", "reason", "detections"} <= set(lines[0])
    assert lines[0]["detections"][0]["class"] == "ring"
    # impossible score thresholds fail every include clause (counting has its own threshold)
    assert main(["eval", "shapes", str(geneval_folder), "--out", str(out), "--detector-threshold", "1"]) == 0
    assert json.loads(out.read_text())["per_tag"]["counting"] == 0.5
    assert main(["eval", "shapes", str(geneval_folder), "--out", str(out), "--detector-threshold", "1",
                 "--counting-threshold", "1"]) == 0
    assert json.loads(out.read_text())["overall"] == 0.0


def test_cli_bad_folder_and_flags_are_one_line_errors(tmp_path, capsys):
    for argv, expected in [
        (["eval", "shapes", str(tmp_path / "missing"), "--out", str(tmp_path / "r.json")], "GenEval folder not found"),
        (["eval", "shapes", str(tmp_path), "--out", str(tmp_path / "r.json"), "--detector-threshold", "2"],
         "--detector-threshold must be in [0, 1]"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
