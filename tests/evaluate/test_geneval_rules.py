import math

import pytest

from mirokit.evaluate.geneval_rules import (
    RuleConfig,
    check_clauses,
    evaluate_detections,
    filter_detections,
    relative_position,
    summarize,
    tag_counts,
)
from mirokit.world.detector import Detection


def det(cls, box, colour="red", score=0.99):
    return Detection(cls=cls, box=box, colour=colour, score=score)


def box_at(cx, cy, half=0.1):
    return (cx - half, cy - half, cx + half, cy + half)


def test_single_and_two_object():
    meta = {"tag": "single_object", "include": [{"class": "star", "count": 1}], "prompt": "a photo of a star"}
    assert evaluate_detections([det("star", box_at(0.5, 0.5))], meta) == (True, "")
    ok, reason = evaluate_detections([det("ring", box_at(0.5, 0.5))], meta)
    assert not ok and reason == "expected star>=1, found 0"
    two = {"tag": "two_object", "include": [{"class": "star", "count": 1}, {"class": "ring", "count": 1}]}
    assert evaluate_detections([det("star", box_at(0.2, 0.2)), det("ring", box_at(0.7, 0.7))], two)[0]
    assert not evaluate_detections([det("star", box_at(0.2, 0.2))], two)[0]


def test_score_thresholds_and_counting_exclude():
    meta = {"tag": "counting", "include": [{"class": "star", "count": 2}], "exclude": [{"class": "star", "count": 3}]}
    stars = [det("star", box_at(0.2, 0.2)), det("star", box_at(0.7, 0.7))]
    assert evaluate_detections(stars, meta)[0]
    # counting keeps only scores > 0.9 (other tags > 0.3)
    weak = [det("star", box_at(0.2, 0.2)), det("star", box_at(0.7, 0.7), score=0.85)]
    assert not evaluate_detections(weak, meta)[0]
    assert evaluate_detections(weak, {**meta, "tag": "two_object", "exclude": []})[0]
    # a third confident star fails the exclude clause (OR over excludes)
    ok, reason = evaluate_detections(stars + [det("star", box_at(0.5, 0.2))], meta)
    assert not ok and reason == "expected star<3, found 3"
    # ... but a third star under the threshold does not count
    assert evaluate_detections(stars + [det("star", box_at(0.5, 0.2), score=0.5)], meta)[0]
    # thresholds are strict (>), as in GenEval
    assert not evaluate_detections([det("star", box_at(0.5, 0.5), score=0.3)],
                                   {"tag": "single_object", "include": [{"class": "star", "count": 1}]})[0]


def test_colour_uses_the_top_count_detections():
    meta = {"tag": "colors", "include": [{"class": "star", "count": 1, "color": "red"}]}
    assert evaluate_detections([det("star", box_at(0.5, 0.5), "red")], meta)[0]
    # the most confident star is blue: GenEval checks the colour of the top-`count` detections only
    dets = [det("star", box_at(0.2, 0.2), "blue", 0.99), det("star", box_at(0.7, 0.7), "red", 0.95)]
    ok, reason = evaluate_detections(dets, meta)
    assert not ok and reason.startswith("expected red star>=1, found 0 red; and 1 blue")
    # colour_of replaces the detections' own colour (e.g. a CLIP colour classifier)
    assert evaluate_detections(dets, meta, colour_of=lambda objs, cls: ["red"] * len(objs))[0]
    attr = {"tag": "color_attr", "include": [{"class": "star", "count": 1, "color": "red"},
                                             {"class": "ring", "count": 1, "color": "blue"}]}
    good = [det("star", box_at(0.2, 0.2), "red"), det("ring", box_at(0.7, 0.7), "blue")]
    swapped = [det("star", box_at(0.2, 0.2), "blue"), det("ring", box_at(0.7, 0.7), "red")]
    assert evaluate_detections(good, attr)[0] and not evaluate_detections(swapped, attr)[0]


def test_relative_position_formula_and_threshold_edges():
    # A 0.3 right of B, same height: clearly "right of"
    assert relative_position(box_at(0.8, 0.5), box_at(0.5, 0.5)) == {"right of"}
    assert relative_position(box_at(0.2, 0.5), box_at(0.5, 0.5)) == {"left of"}
    assert relative_position(box_at(0.5, 0.2), box_at(0.5, 0.5)) == {"above"}  # y grows downwards
    assert relative_position(box_at(0.5, 0.8), box_at(0.5, 0.5)) == {"below"}
    # widths 0.2 + 0.2 -> the offset is shrunk by 0.04 per axis: an offset of 0.04 leaves nothing
    assert relative_position(box_at(0.54, 0.5), box_at(0.5, 0.5)) == set()
    assert relative_position(box_at(0.5401, 0.5), box_at(0.5, 0.5)) == set()  # |revised| < 1e-3
    # the shrunk offset is divided by the raw one: a relation needs offset - 0.04 > 0.5 * offset
    assert relative_position(box_at(0.5799, 0.5), box_at(0.5, 0.5)) == set()
    assert relative_position(box_at(0.5801, 0.5), box_at(0.5, 0.5)) == {"right of"}
    assert relative_position(box_at(0.4199, 0.5), box_at(0.5, 0.5)) == {"left of"}
    assert relative_position(box_at(0.5, 0.4201), box_at(0.5, 0.5)) == set()
    assert relative_position(box_at(0.5, 0.4199), box_at(0.5, 0.5)) == {"above"}
    # the threshold scales with the summed box sizes
    assert relative_position(box_at(0.6, 0.5, 0.3), box_at(0.5, 0.5, 0.3)) == set()  # 0.1 <= 0.1 * 1.2
    assert relative_position(box_at(0.6, 0.5, 0.3), box_at(0.5, 0.5, 0.3), position_threshold=0.02) == {"right of"}
    # diagonal: dx, dy normalised by the raw offset; 45 degrees gives both relations
    assert relative_position(box_at(0.8, 0.8), box_at(0.5, 0.5)) == {"right of", "below"}
    # a shallow diagonal: dy / |offset| < 0.5 -> only "right of"
    assert relative_position(box_at(0.8, 0.6), box_at(0.5, 0.5)) == {"right of"}
    # the component just below 0.5 after shrinking: offset (0.3, 0.2), revised dy = 0.16 / 0.36 = 0.44
    assert relative_position(box_at(0.8, 0.7), box_at(0.5, 0.5)) == {"right of"}


def test_position_clause_refers_to_a_matched_group():
    meta = {"tag": "position", "include": [{"class": "ring", "count": 1},
                                           {"class": "star", "count": 1, "position": ["left of", 0]}]}
    assert evaluate_detections([det("ring", box_at(0.7, 0.5)), det("star", box_at(0.3, 0.5))], meta)[0]
    ok, reason = evaluate_detections([det("ring", box_at(0.3, 0.5)), det("star", box_at(0.7, 0.5))], meta)
    assert not ok and reason == "expected star left of target, found right of target"
    ok, reason = evaluate_detections([det("star", box_at(0.3, 0.5))], meta)
    assert not ok and reason.splitlines() == ["expected ring>=1, found 0", "no target for star to be left of"]
    # every matched target counts: a second ring (top-count is 1 for the target: only the best ring)
    dets = [det("ring", box_at(0.7, 0.5), score=0.99), det("ring", box_at(0.1, 0.5), score=0.5),
            det("star", box_at(0.3, 0.5))]
    assert evaluate_detections(dets, meta)[0]
    verdicts = check_clauses(filter_detections(dets, "position"), meta)
    assert [ok for ok, _ in verdicts] == [True, True]


def test_filter_detections_orders_limits_and_nms():
    dets = [det("star", box_at(0.1 * i, 0.5, 0.01), score=0.4 + 0.01 * i) for i in range(30)]
    kept = filter_detections(dets, "single_object")
    assert len(kept["star"]) == 16 and kept["star"][0].score == pytest.approx(0.69)
    assert [d.score for d in kept["star"]] == sorted((d.score for d in kept["star"]), reverse=True)
    dup = [det("star", box_at(0.5, 0.5), score=0.9), det("star", box_at(0.51, 0.5), score=0.8)]
    assert len(filter_detections(dup, "single_object")["star"]) == 2  # GenEval: no NMS by default
    assert len(filter_detections(dup, "single_object", RuleConfig(nms_threshold=0.5))["star"]) == 1
    # GenEval-style raw arrays (x0, y0, x1, y1, score) grouped by class also work
    assert filter_detections({"star": [(0, 0, 1, 1, 0.95), (0, 0, 1, 1, 0.2)]}, "counting") == {
        "star": [(0, 0, 1, 1, 0.95)]}


def test_bad_metadata_is_a_one_line_error():
    for meta, match in [
        ({"include": [{"class": "star", "count": 1}]}, "missing 'tag'"),
        ({"tag": "x", "include": [{"count": 1}]}, r"include\[0\] has no 'class'"),
        ({"tag": "x", "include": [{"class": "star", "count": 0}]}, "count 0"),
        ({"tag": "x", "include": [{"class": "star", "count": 1, "position": ["near", 0]}]}, "position"),
        ({"tag": "x", "include": []}, "no include or exclude"),
    ]:
        with pytest.raises(ValueError, match=match) as err:
            evaluate_detections([], meta)
        assert "\n" not in str(err.value)


def test_summarize_is_mean_of_tag_accuracies():
    results = ([{"tag": "single_object", "correct": True}] * 3 + [{"tag": "single_object", "correct": False}]
               + [{"tag": "counting", "correct": False}] * 2)
    summary = summarize(results)
    assert summary == {"overall": pytest.approx(0.375), "single_object": 0.75, "counting": 0.0}
    assert tag_counts(results)["single_object"] == {"correct": 3, "total": 4}
    assert math.isnan(summarize([])["overall"])
