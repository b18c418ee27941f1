import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mirokit.world import captions as captions_module
from mirokit.world.captions import (
    Group,
    caption_scene,
    clear_relation,
    describe_scene,
    free_form_caption,
    geneval_prompt,
)
from mirokit.world.sampling import WorldConfig, sample_scene
from mirokit.world.scenes import Scene, WorldObject, claim_holds

GENEVAL_FILE = Path("/work/shared/geneval/evaluation_metadata.jsonl")


@pytest.mark.parametrize("tag, groups, relation, expected", [
    ("single_object", [Group("star", 1)], None,
     ('{"tag": "single_object", "include": [{"class": "star", "count": 1}], "prompt": "a photo of a star"}')),
    ("two_object", [Group("ring", 1), Group("cross", 1)], None,
     ('{"tag": "two_object", "include": [{"class": "ring", "count": 1}, {"class": "cross", "count": 1}], '
      '"prompt": "a photo of a ring and a cross"}')),
    ("counting", [Group("cross", 3)], None,
     ('{"tag": "counting", "include": [{"class": "cross", "count": 3}], "exclude": [{"class": "cross", "count": 4}], '
      '"prompt": "a photo of three crosses"}')),
    ("colors", [Group("ring", 1, "orange")], None,
     ('{"tag": "colors", "include": [{"class": "ring", "count": 1, "color": "orange"}], '
      '"prompt": "a photo of an orange ring"}')),
    ("position", [Group("circle", 1), Group("square", 1)], "right of",
     ('{"tag": "position", "include": [{"class": "square", "count": 1}, {"class": "circle", "count": 1, '
      '"position": ["right of", 0]}], "prompt": "a photo of a circle right of a square"}')),
    ("color_attr", [Group("star", 1, "orange"), Group("triangle", 1, "blue")], None,
     ('{"tag": "color_attr", "include": [{"class": "star", "count": 1, "color": "orange"}, {"class": "triangle", '
      '"count": 1, "color": "blue"}], "prompt": "a photo of an orange star and a blue triangle"}')),
])
def test_geneval_templates_fixed_examples(tag, groups, relation, expected):
    prompt, metadata = geneval_prompt(tag, groups, relation)
    assert json.dumps(metadata) == expected and prompt == metadata["prompt"]


@pytest.mark.skipif(not GENEVAL_FILE.is_file(), reason="GenEval's metadata file is not available")
def test_templates_rebuild_geneval_file_byte_for_byte(monkeypatch):
    for line in GENEVAL_FILE.read_text().splitlines():
        item = json.loads(line)
        include, relation = item["include"], None
        if item["tag"] == "position":
            groups = [Group(include[1]["class"], 1), Group(include[0]["class"], 1)]
            relation = include[1]["position"][0]
        else:
            groups = [Group(r["class"], r["count"], r.get("color")) for r in include]
        if item["tag"] == "counting":  # COCO plurals come from GenEval's own prompt
            monkeypatch.setitem(captions_module.PLURALS, include[0]["class"], item["prompt"].split(" ", 4)[4])
        assert json.dumps(geneval_prompt(item["tag"], groups, relation)[1]) == line


def test_free_form_captions_and_their_claims():
    rng = np.random.default_rng(0)
    text, metadata = free_form_caption([Group("star", 2, "red")], rng, background="grey")
    assert "two red stars" in text and metadata["tag"] == "free_form"
    assert metadata["include"] == [{"class": "star", "count": 2, "color": "red"}]
    assert metadata["exclude"] == [{"class": "star", "count": 3}]
    texts = {free_form_caption([Group("ring", 1, "green"), Group("cross", 1, "blue")], rng)[0] for _ in range(60)}
    assert "a green ring next to a blue cross" in texts
    assert "two red stars on a grey background" in {
        free_form_caption([Group("star", 2, "red")], rng)[0] for _ in range(40)}
    text, metadata = free_form_caption([Group("ring", 1), Group("star", 1)], rng, relation="above")
    assert metadata["include"][1] == {"class": "ring", "count": 1, "position": ["above", 0]}
    assert " over " in text or " above " in text


def test_clean_captions_are_complete_and_true():
    cfg = WorldConfig()
    rng = np.random.default_rng(0)
    tags = Counter()
    for _ in range(1500):
        scene = sample_scene(rng, cfg)
        caption, metadata = caption_scene(scene, rng, free_form_prob=0.3)
        tags[metadata["tag"]] += 1
        assert metadata["prompt"] == caption and "noise" not in metadata
        assert claim_holds(scene, metadata, strict=True), caption
        # every object is mentioned, with its exact count
        assert sum(req["count"] for req in metadata["include"]) == len(scene.objects), caption
        for req in metadata["include"]:
            assert req["count"] == sum(o.shape == req["class"] for o in scene.objects)
    assert set(tags) == {"single_object", "two_object", "counting", "colors", "position", "color_attr", "free_form"}
    assert 0.25 < tags["free_form"] / 1500 < 0.6  # free-form is also the only caption for mixed 3-4 object scenes


def test_position_needs_a_clear_relation():
    a = WorldObject("circle", "red", 0.2, 0.5, 0.15)
    assert clear_relation(a, WorldObject("square", "blue", 0.8, 0.52, 0.15)) == "left of"
    below = WorldObject("square", "blue", 0.5, 0.85, 0.1)
    assert clear_relation(below, WorldObject("ring", "red", 0.5, 0.15, 0.1)) == "below"
    assert clear_relation(a, WorldObject("square", "blue", 0.6, 0.8, 0.15)) is None  # diagonal
    assert clear_relation(a, WorldObject("square", "blue", 0.35, 0.5, 0.15)) is None  # too close for a margin
    groups, relation = describe_scene(Scene(objects=(a, WorldObject("square", "blue", 0.8, 0.52, 0.15))))
    assert groups == [Group("circle", 1, "red"), Group("square", 1, "blue")] and relation == "left of"
    groups, relation = describe_scene(Scene(objects=(a, WorldObject("circle", "blue", 0.8, 0.5, 0.15))))
    assert groups == [Group("circle", 2, None)] and relation is None  # mixed colours are not stated


def test_infeasible_noise_is_an_error():
    scene = Scene(objects=(WorldObject("star", "red", 0.5, 0.5, 0.2),))
    with pytest.raises(ValueError, match="swap_relation"):
        caption_scene(scene, np.random.default_rng(0), noise="swap_relation")
    with pytest.raises(ValueError, match="unknown caption noise"):
        caption_scene(scene, np.random.default_rng(0), noise="typo")
