import numpy as np
import pytest

from mirokit.evaluate.geneval_rules import validate_metadata
from mirokit.world.caption_parser import parse_caption
from mirokit.world.captions import CAPTION_NOISE, caption_noise_feasible, caption_scene
from mirokit.world.sampling import WorldConfig, sample_scene


def clauses(caption):
    md = parse_caption(caption)
    return None if md is None else (md["include"], md["exclude"])


@pytest.mark.parametrize("caption, include, exclude", [
    ("a photo of a star", [{"class": "star", "count": 1}], []),
    ("a photo of a star and an orange ring", [{"class": "star", "count": 1},
                                              {"class": "ring", "count": 1, "color": "orange"}], []),
    ("a photo of two stars", [{"class": "star", "count": 2}], [{"class": "star", "count": 3}]),
    ("a photo of a star left of a ring", [{"class": "ring", "count": 1},
                                          {"class": "star", "count": 1, "position": ["left of", 0]}], []),
    ("two red stars on a grey background", [{"class": "star", "count": 2, "color": "red"}],
     [{"class": "star", "count": 3}]),
    ("a green ring next to a blue cross", [{"class": "ring", "count": 1, "color": "green"},
                                           {"class": "cross", "count": 1, "color": "blue"}], []),
    ("A cross to the right of two squares.", [{"class": "square", "count": 2},
                                              {"class": "cross", "count": 1, "position": ["right of", 0]}],
     [{"class": "square", "count": 3}]),
    ("three circles, simple flat shapes", [{"class": "circle", "count": 3}], [{"class": "circle", "count": 4}]),
    ("a star on top of a ring on a textured grey background",
     [{"class": "ring", "count": 1}, {"class": "star", "count": 1, "position": ["above", 0]}], []),
    ("a red circle and a blue circle", [{"class": "red circle", "count": 1}, {"class": "blue circle", "count": 1}], []),
    ("a star above a ring left of a square",
     [{"class": "square", "count": 1}, {"class": "ring", "count": 1, "position": ["left of", 0]},
      {"class": "star", "count": 1, "position": ["above", 1]}], []),
])
def test_parse_templates_and_free_form(caption, include, exclude):
    md = parse_caption(caption)
    assert (md["include"], md["exclude"]) == (include, exclude)
    validate_metadata(md)


def test_unparseable_captions():
    for caption in ("a photo of a dog", "", "simple flat shapes", "left of a ring", "a star ring", 3):
        assert parse_caption(caption) is None


def test_parser_agrees_with_the_world_captioner():
    rng = np.random.default_rng(0)
    cfg = WorldConfig()
    for i in range(400):
        scene = sample_scene(rng, cfg)
        noise = [None, *CAPTION_NOISE][i % 5]
        noise = noise if noise and caption_noise_feasible(scene, noise) else None
        caption, md = caption_scene(scene, rng, noise=noise, free_form_prob=0.5)
        got = parse_caption(caption)
        key = lambda cs: sorted(map(str, cs))
        assert (key(got["include"]), key(got["exclude"])) == (key(md["include"]), key(md.get("exclude", []))), caption
