"""Prompt sets (built-in lists, .txt/.tsv/.jsonl files), the seeded subset, and the `reward:KEY` metric."""

import numpy as np
import pytest
from PIL import Image

from mirokit.evaluate.metrics import parse_metric
from mirokit.evaluate.samples import BUILTIN_PROMPTS, choose_prompts, load_prompts
from mirokit.rewards import build_scorer


@pytest.mark.parametrize("name", sorted(BUILTIN_PROMPTS))
def test_builtin_lists_have_40_to_60_distinct_prompts_with_categories(name):
    records = load_prompts(name)
    assert 40 <= len(records) <= 60 and len({r["prompt"] for r in records}) == len(records)
    assert all(r["prompt"] and r["category"] for r in records) and len({r["category"] for r in records}) >= 6


def test_file_formats(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\n\na red fox\nanimals\ta grey heron\n")
    assert load_prompts(tmp_path / "a.txt") == [{"prompt": "a red fox"},
                                                {"prompt": "a grey heron", "category": "animals"}]
    (tmp_path / "b.tsv").write_text("Prompt\tCategory\tChallenge\nbond\tAbstract\tBasic\na corgi\tAnimals\tBasic\n")
    assert load_prompts(tmp_path / "b.tsv") == [{"prompt": "bond", "category": "Abstract"},
                                                {"prompt": "a corgi", "category": "Animals"}]
    (tmp_path / "c.jsonl").write_text('{"prompt": "a cow", "tag": "single_object", "include": []}\n')
    assert load_prompts(tmp_path / "c.jsonl") == [{"prompt": "a cow", "tag": "single_object", "include": []}]


@pytest.mark.parametrize("name,text,expected", [
    ("bad.jsonl", '{"prompt": "ok"}\n{"text": "no prompt"}\n', "bad.jsonl:2: expected an object"),
    ("bad2.jsonl", '{"prompt": "ok"}\n{oops\n', "bad2.jsonl:2: not valid JSON"),
    ("empty.txt", "# only a comment\n", "empty.txt: no prompts"),
    ("bad.tsv", "Text\tCategory\nx\ty\n", "header naming a Prompt column"),
])
def test_bad_files_are_one_line_errors_naming_file_and_line(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=expected):
        load_prompts(tmp_path / name)


def test_missing_file_lists_the_builtin_sets():
    with pytest.raises(FileNotFoundError, match="built-in sets: parti-style, drawbench-style"):
        load_prompts("/nope.txt")


def test_subset_is_seeded_sorted_and_spread():
    a = choose_prompts(553, 50, seed=1)
    assert a == choose_prompts(553, 50, seed=1) and a != choose_prompts(553, 50, seed=2)
    assert a == sorted(a) and len(set(a)) == 50 and max(a) > 400  # not just the first 50
    assert choose_prompts(10, None) == list(range(10)) == choose_prompts(10, 99)
    with pytest.raises(ValueError, match="--max-prompts must be >= 1"):
        choose_prompts(10, 0)


def test_reward_metric_is_the_mean_raw_score_of_its_scorer():
    metric = parse_metric("reward:world_quality", prompts="drawbench-style")
    assert metric.name == "reward:world_quality" and metric.prompts() == load_prompts("drawbench-style")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    records = [{"prompt": "a photo of a red circle"}] * 3
    expected = build_scorer("world_quality").score([Image.fromarray(a) for a in images], [r["prompt"] for r in records])
    per_image = metric.score(images, records)
    np.testing.assert_allclose(per_image, expected, rtol=1e-6)
    assert metric.summarize(np.array([1.0, np.nan, 3.0]), records) == 2.0
    assert parse_metric("reward:world_quality").prompts() == load_prompts("parti-style")


def test_reward_metric_errors():
    with pytest.raises(ValueError, match="unknown reward key 'nope'"):
        parse_metric("reward:nope")
    with pytest.raises(ValueError, match="needs a scorer key"):
        parse_metric("reward")


def test_build_metric_routes_prompts_and_scorer_options():
    from mirokit.evaluate.settings_eval import build_metric

    metric = build_metric("reward:world_alignment", "drawbench-style", {"world_alignment": {"min_score": 0.5},
                                                                         "world_quality": {"x": 1}})
    assert metric.options == {"min_score": 0.5} and metric.prompt_set == "drawbench-style"
    shapes = build_metric("shapes", "mirokit/world/shapes_eval.jsonl", metric_options={"min_score": 0.5})
    assert len(shapes.prompts()) == 553 and shapes.detector.config.min_score == 0.5
