"""The model card (README.md) that MiroPipeline.save_pretrained writes: its front matter, what it says about the
rewards (checked against the calibration it describes), the training and the sampler, a quickstart that runs, the
evaluation results, and a README.md the user wrote is never replaced (docs/HUB.md)."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from mirokit.data.calibration import Calibration
from mirokit.model_card import build_model_card, check_repo_id, write_model_card, written_by_mirokit
from mirokit.pipeline import MiroPipeline

sys.path.insert(0, str(Path(__file__).parent / "train"))
from runs import tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder exported by a real 2-step training run (toy data, rewards brightness and size)."""
    from mirokit.train.loop import train

    run = tmp_path_factory.mktemp("run")
    return train(tiny_run(run, "model.reward_keys=[brightness,size]", "train.batch_size=8", "train.steps=2",
                          "optim.warmup_steps=1", "train.precision=fp32"))


@pytest.fixture(scope="module")
def calibrated(trained, tmp_path_factory):
    """The trained model saved again with a calibration of known raw scores and stored sampler defaults."""
    pipe = MiroPipeline.from_pretrained(trained)
    rng = np.random.default_rng(0)
    pipe.raw = {"brightness": rng.normal(5.0, 2.0, 5000), "size": np.concatenate([rng.uniform(0, 1, 999), [np.nan]])}
    pipe.calibration = Calibration.fit(pipe.raw)
    pipe.extra["sampler_defaults"] = {"steps": 3, "guidance": 2.5}
    out = tmp_path_factory.mktemp("calibrated") / "tiny-miro"
    pipe.save_pretrained(out)
    return out, pipe


def _card(folder) -> ModelCard:
    return ModelCard.load(Path(folder) / "README.md")


def test_the_front_matter(trained):
    card = _card(trained)
    data = card.data.to_dict()
    assert data["library_name"] == "mirokit" and data["pipeline_tag"] == "text-to-image"
    assert data["tags"] == ["mirokit", "miro", "text-to-image", "reward-conditioning", "brightness", "size"]
    assert data["license"] == "other" and "model-index" not in data and "base_model" not in data
    assert written_by_mirokit(Path(trained) / "README.md")


def test_the_training_summary_is_the_run_s(trained):
    text = _card(trained).text
    generator = sum(p.numel() for p in MiroPipeline.from_pretrained(trained).generator.state_dict().values())
    assert f"`rin` backbone, {generator / 1e3:.1f}K parameters (F32), samples of 16×16×3" in text
    for row in ("| steps | 2 (of 2 configured) |", "| batch | 8 images per step (gradient accumulation 1) |",
                "| images seen | 16 |", "| precision | fp32 |", "| data | `toy`: num_samples=256, seed=0 |",
                "| EMA | decay 0.999", "| text encoder | `tokens`: ", "trained with the generator",
                "| image space | `pixels` |"):
        assert row in text, row
    assert "This folder has no calibration.json" in text and str(trained.parent) not in text  # no local paths


def test_the_reward_rows_say_what_the_calibration_does(calibrated):
    out, pipe = calibrated
    text = _card(out).text
    row = r"^\| \d \| `(\w+)` \| raw ≥ (\S+) \| raw ≈ (\S+) \| raw < (\S+) \| (.*) \|$"
    rows = {m[0]: m[1:] for m in re.findall(row, text, flags=re.M)}
    assert list(rows) == ["brightness", "size"]
    for key, (top, median, bottom, _seen) in rows.items():
        cal = pipe.calibration.rewards[key]
        top, median, bottom = float(top), float(median), float(bottom)
        assert cal.apply(np.array([top * (1 + 1e-3) if top > 0 else top * (1 - 1e-3)]))[0] == 1.0  # the top bin
        assert cal.apply(np.array([bottom - 1e-3 * abs(bottom)]))[0] == 0.0  # the bottom bin
        assert abs(cal.apply(np.array([median]))[0] - 0.5) <= 1 / 63  # next to 0.5
        raw = pipe.raw[key]
        assert median == pytest.approx(np.median(np.unique(raw[np.isfinite(raw)])), rel=1e-3)  # the distinct scores'
    assert rows["size"][3].endswith("1,000 scores (1 missing)") and rows["brightness"][3].endswith("5,000 scores")
    assert "64 quantile bins" in text and "(b − 1)/63" in text


def test_the_sampler_defaults_come_from_the_model(calibrated):
    text = _card(calibrated[0]).text
    assert "| steps | 3 | this model |" in text and "| guidance | 2.5 | this model |" in text
    assert "| solver | euler | mirokit |" in text and "| negative_rewards | every reward 0.0 | mirokit |" in text
    assert "num_inference_steps=3," in text and "guidance_scale=2.5," in text


def test_the_quickstart_runs(calibrated, tmp_path, monkeypatch):
    out, _ = calibrated
    code = re.search(r"```python\n(.*?)```", _card(out).text, re.S).group(1)
    assert 'MiroPipeline.from_pretrained("path/to/tiny-miro")' in code
    assert 'reward_targets={"brightness": 1.0, "size": 1.0}' in code
    code = code.replace('"path/to/tiny-miro"', repr(str(out))).replace("num_inference_steps=3", "num_inference_steps=2")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "quickstart", "exec"), {})  # our own card's example
    assert (tmp_path / "sample.png").is_file()
    command = re.search(r"```bash\n(.*?)\n```", _card(out).text, re.S).group(1)
    assert command.startswith("mirokit sample --model path/to/tiny-miro --prompt") and "--reward size=1.0" in command


def test_the_repo_id_goes_into_the_quickstart_and_the_title(calibrated):
    text = build_model_card(calibrated[0], repo_id="someone/miro-tiny")
    assert 'MiroPipeline.from_pretrained("someone/miro-tiny")' in text and "\n# miro-tiny\n" in text
    assert "mirokit sample --model someone/miro-tiny " in text


@pytest.mark.parametrize("bad", ["miro", "a/b/c", "/miro", "me/", "me/mi ro", "me/-miro", "me/mi..ro", "", None])
def test_a_repo_id_that_is_not_owner_name_is_one_line(bad):
    with pytest.raises(ValueError, match="OWNER/NAME") as err:
        check_repo_id(bad)
    assert "\n" not in str(err.value)


def test_license_and_base_model(calibrated, tmp_path):
    out, pipe = calibrated
    assert "license: apache-2.0" in build_model_card(out, license="apache-2.0")
    pipe.extra.update(license="cc-by-nc-4.0", base_model="nicolas-dufour/miro")
    try:
        pipe.save_pretrained(tmp_path / "m")
    finally:
        del pipe.extra["license"], pipe.extra["base_model"]
    data = _card(tmp_path / "m").data.to_dict()
    assert data["license"] == "cc-by-nc-4.0" and data["base_model"] == "nicolas-dufour/miro"


RESULTS = [{"metric": "accuracy", "value": 0.625, "dataset": "GenEval", "name": "overall"},
           {"metric": "clip_score", "value": 0.3125, "dataset": "parti-prompts", "split": "test"}]


def test_evaluation_results_go_into_the_model_index_and_the_table(calibrated, tmp_path):
    out, pipe = calibrated
    pipe.extra["eval_results"] = RESULTS  # kept in pipeline.json: a reload and save keeps them
    try:
        pipe.save_pretrained(tmp_path / "m")
    finally:
        del pipe.extra["eval_results"]
    MiroPipeline.from_pretrained(tmp_path / "m").save_pretrained(tmp_path / "again")
    for folder in (tmp_path / "m", tmp_path / "again"):
        card = _card(folder)
        results = card.data.eval_results
        assert [(r.task_type, r.dataset_name, r.dataset_type, r.metric_type, r.metric_value, r.dataset_split)
                for r in results] == [("text-to-image", "GenEval", "geneval", "accuracy", 0.625, None),
                                      ("text-to-image", "parti-prompts", "parti-prompts", "clip_score", 0.3125, "test")]
        assert card.data.model_name == folder.name
        assert "| text-to-image | GenEval | overall | 0.625 |" in card.text
        assert "| text-to-image | parti-prompts (test) | clip_score | 0.3125 |" in card.text
    assert "model-index" not in (out / "README.md").read_text()


@pytest.mark.parametrize("results, says", [
    ({"metric": "x"}, "must be a list"), ([{"metric": "fid", "value": 3.0}], r"eval_results\[0\] has no dataset"),
    ([RESULTS[0], "0.5"], r"eval_results\[1\] must be a dict"), ([{**RESULTS[0], "value": [1]}], "number or a string"),
    ([{**RESULTS[0], "metrc": "x"}], "unknown field 'metrc'")])
def test_a_malformed_evaluation_result_is_one_line(calibrated, results, says):
    with pytest.raises(ValueError, match=says) as err:
        build_model_card(calibrated[0], eval_results=results)
    assert "\n" not in str(err.value)


def test_a_readme_the_user_wrote_is_kept(calibrated, tmp_path):
    _, pipe = calibrated
    folder = tmp_path / "m"
    folder.mkdir()
    for text in ("# My model\n\nmy words\n", "---\nlicense: mit\nlibrary_name: diffusers\n---\n# mine\n",
                 "---\n: not yaml [\n---\n"):
        (folder / "README.md").write_text(text)
        with pytest.warns(UserWarning, match="README.md was not written by mirokit.*kept"):
            pipe.save_pretrained(folder)
        assert (folder / "README.md").read_text() == text and (folder / "model.safetensors").is_file()
    assert write_model_card(folder, overwrite=True) == folder / "README.md" and written_by_mirokit(folder / "README.md")


def test_a_card_mirokit_wrote_is_replaced_and_the_card_is_deterministic(calibrated, tmp_path):
    out, pipe = calibrated
    pipe.save_pretrained(tmp_path / "tiny-miro")
    first = (tmp_path / "tiny-miro" / "README.md").read_text()
    assert first == (out / "README.md").read_text()  # same model, same name: same bytes wherever it is saved
    pipe.save_pretrained(tmp_path / "tiny-miro", card={"license": "mit"})
    assert "license: mit" in (tmp_path / "tiny-miro" / "README.md").read_text()
    assert not [p for p in (tmp_path / "tiny-miro").iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_model_without_rewards_or_training_record(tmp_path, tiny_generator_config):
    from dataclasses import replace

    from mirokit.encoders import TokenTextEncoder, TokenTextEncoderConfig
    from mirokit.models import MiroGenerator

    torch.manual_seed(0)
    generator = MiroGenerator(replace(tiny_generator_config, reward_keys=[]))
    text = TokenTextEncoder(TokenTextEncoderConfig(vocab_size=50, dim=12, max_length=6, num_layers=1, num_heads=4))
    MiroPipeline(generator, text).save_pretrained(tmp_path / "plain")
    card = _card(tmp_path / "plain")
    assert card.data.tags == ["mirokit", "miro", "text-to-image", "reward-conditioning"]
    assert "trained without reward keys" in card.text and "## Rewards" not in card.text
    assert "reward_targets" not in card.text and "Not recorded in this folder" in card.text


def test_not_a_model_folder_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a mirokit model folder.*missing pipeline.json"):
        write_model_card(tmp_path)
