import json
from collections import Counter

import pytest

from mirokit.world.captions import GENEVAL_TAGS
from mirokit.world.prompts import (
    SHAPES_EVAL_PATH,
    TASK_COUNTS,
    derangement,
    load_shapes_eval,
    make_shapes_eval_prompts,
)
from mirokit.world.vocab import SHAPES


def test_shipped_file_is_the_generator_output():
    expected = "".join(json.dumps(p) + "\n" for p in make_shapes_eval_prompts(0))
    assert SHAPES_EVAL_PATH.read_text() == expected, "regenerate with: python -m mirokit.world.prompts"
    prompts = load_shapes_eval()
    assert prompts == make_shapes_eval_prompts(0) and len(prompts) >= 500
    assert Counter(p["tag"] for p in prompts) == TASK_COUNTS and set(TASK_COUNTS) == set(GENEVAL_TAGS)
    assert make_shapes_eval_prompts(1) != prompts


def test_prompts_follow_geneval_schema():
    for p in load_shapes_eval():
        assert all(req["class"] in SHAPES for req in p["include"])
        if p["tag"] == "counting":
            (req,) = p["include"]
            assert 2 <= req["count"] <= 4 and p["exclude"] == [{"class": req["class"], "count": req["count"] + 1}]
        else:
            assert "exclude" not in p and all(req["count"] == 1 for req in p["include"])
        if p["tag"] in ("two_object", "position", "color_attr"):
            assert p["include"][0]["class"] != p["include"][1]["class"]
    assert len({p["prompt"] for p in load_shapes_eval() if p["tag"] == "color_attr"}) == 100


def test_load_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tag": "x", "include": [], "prompt": "p"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_shapes_eval(bad)
    bad.write_text('{"tag": "x", "prompt": "p"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected an object"):
        load_shapes_eval(bad)
    with pytest.raises(FileNotFoundError):
        load_shapes_eval(tmp_path / "missing.jsonl")


def test_derangement_moves_every_prompt_to_a_different_text():
    prompts = load_shapes_eval()
    src = derangement(prompts, seed=0)
    assert sorted(src) == list(range(len(prompts))) and src == derangement(prompts, seed=0)
    assert all(s != i and prompts[s]["prompt"] != prompts[i]["prompt"] for i, s in enumerate(src))
