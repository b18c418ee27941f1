"""`mirokit world render` + `mirokit eval shapes`: ground truth scores >= 0.98, mismatched renders far less."""

import json

from mirokit.cli.main import main


def test_ground_truth_renders_score_high_and_mismatched_ones_low(tmp_path):
    gt, mm = tmp_path / "gt", tmp_path / "mm"
    assert main(["world", "render", "--out", str(gt), "--images-per-prompt", "1"]) == 0
    assert main(["world", "render", "--out", str(mm), "--images-per-prompt", "1", "--mismatch"]) == 0
    assert main(["eval", "shapes", str(gt), "--out", str(tmp_path / "gt.json")]) == 0
    assert main(["eval", "shapes", str(mm), "--out", str(tmp_path / "mm.json")]) == 0
    good = json.loads((tmp_path / "gt.json").read_text())
    bad = json.loads((tmp_path / "mm.json").read_text())
    print("ground truth", good["overall"], "mismatched", bad["overall"])
    assert good["overall"] >= 0.98
    assert bad["overall"] <= 0.3
    assert set(good["per_tag"]) == {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    lines = (tmp_path / "gt.jsonl").read_text().splitlines()
    assert len(lines) == 553 and json.loads(lines[0])["correct"] in (True, False)
