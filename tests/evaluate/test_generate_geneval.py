"""`mirokit generate geneval`: GenEval's layout, per-image noise, bit-identical sharded/resumed/multi-rank runs,
settings checked on resume, one-line errors."""

import json
import sys

import pytest
import torch
from evalkit import read_jsonl, shapes_prompts, world_models

from mirokit.cli.main import main
from mirokit.sampling import image_seed, initial_noise

STEPS = ["--steps", "3", "--batch-size", "3"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return world_models(tmp_path_factory)["miro"]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    return shapes_prompts(tmp_path_factory.mktemp("prompts") / "p.jsonl", 5, step=97)


def _gen(model, prompts, out, *extra):
    return main(["generate", "geneval", "--model", str(model), "--prompts", str(prompts), "--out", str(out),
                 "--images-per-prompt", "2", *STEPS, *extra])


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "settings.json"}


@pytest.fixture(scope="module")
def unsharded(model, prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "full"
    assert _gen(model, prompts, out) == 0
    return out


def test_writes_the_official_layout(unsharded, prompts):
    records = read_jsonl(prompts)
    assert sorted(p.name for p in unsharded.iterdir() if p.is_dir()) == [f"{i:05d}" for i in range(5)]
    for i, record in enumerate(records):
        folder = unsharded / f"{i:05d}"
        assert json.loads((folder / "metadata.jsonl").read_text()) == record
        assert (folder / "metadata.jsonl").read_text().count("\n") == 1
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png"]
    settings = json.loads((unsharded / "settings.json").read_text())
    assert settings["steps"] == 3 and settings["images_per_prompt"] == 2 and settings["prompts"] == str(prompts)
    assert settings["rewards"] == {} and settings["reward_keys"] == ["world_alignment", "world_quality",
                                                                     "world_composition"]


def test_noise_depends_only_on_seed_prompt_and_image():
    shape = (3, 16, 16)
    alone = initial_noise(shape, 5, [(3, 1)])
    batch = initial_noise(shape, 5, [(0, 0), (3, 1), (7, 2)])
    assert torch.equal(alone[0], batch[1]) and alone.shape == (1, 3, 16, 16)
    assert not torch.equal(initial_noise(shape, 6, [(3, 1)]), alone)
    assert len({image_seed(0, i, j) for i in range(20) for j in range(20)}) == 400


def test_shards_and_resume_give_bit_identical_images(unsharded, model, prompts, tmp_path, capsys):
    out = tmp_path / "sharded"
    assert _gen(model, prompts, out, "--num-shards", "2", "--shard-index", "1") == 0
    half = _files(out)
    assert 0 < sum(k.endswith(".png") for k in half) < 10  # shard 1 alone wrote part of the images
    # an interrupted shard 0: one image missing, one corrupt, then resumed
    assert _gen(model, prompts, out, "--num-shards", "2", "--shard-index", "0") == 0
    (out / "00000" / "samples" / "0001.png").unlink()
    (out / "00004" / "samples" / "0000.png").write_bytes(b"not a png")
    capsys.readouterr()
    assert _gen(model, prompts, out, "--num-shards", "2", "--shard-index", "0") == 0
    assert _gen(model, prompts, out, "--num-shards", "2", "--shard-index", "1") == 0
    log = capsys.readouterr().out
    assert "wrote 2 images" in log and "1 unreadable ones redrawn" in log and "wrote 0 images" in log
    assert _files(out) == _files(unsharded)


def test_two_torchrun_ranks_equal_one_process(unsharded, model, prompts, tmp_path):
    from runs import rank_envs, run_processes

    out = tmp_path / "ranks"
    cmd = [sys.executable, "-m", "mirokit.cli.main", "generate", "geneval", "--model", str(model), "--prompts",
           str(prompts), "--out", str(out), "--images-per-prompt", "2", *STEPS, "--device", "cpu"]
    run_processes([cmd, cmd], rank_envs(2), timeout=120, what="two-rank generate")
    assert _files(out) == _files(unsharded)


def test_resume_with_other_settings_is_refused_in_one_line(unsharded, model, prompts, capsys):
    assert main(["generate", "geneval", "--model", str(model), "--prompts", str(prompts), "--out", str(unsharded),
                 "--images-per-prompt", "2", "--steps", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "generated with steps=3, not 4" in err


@pytest.mark.parametrize("argv,expected", [
    (["--shard-index", "2", "--num-shards", "2"], "--shard-index must be in 0..1"),
    (["--prompts", "/nope/p.jsonl"], "prompt file not found: /nope/p.jsonl"),
    (["--reward", "aesthetic=1"], "unknown reward key 'aesthetic'"),
    (["--preset", "fastest"], "preset 'fastest' is neither a built-in preset"),
])
def test_bad_input_is_one_line(model, prompts, tmp_path, capsys, argv, expected):
    base = ["generate", "geneval", "--model", str(model), "--out", str(tmp_path / "o")]
    if "--prompts" not in argv:
        base += ["--prompts", str(prompts)]
    assert main([*base, *STEPS, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_a_preset_sets_the_targets_and_flags_override_it(model, prompts, tmp_path):
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"rewards": {"world_quality": 0.25}, "negative_rewards": {"world_quality": 0.75},
                                  "guidance": 2.0, "steps": 5}))
    out = tmp_path / "with_preset"
    assert main(["generate", "geneval", "--model", str(model), "--prompts", str(prompts), "--out", str(out),
                 "--images-per-prompt", "1", "--preset", str(preset), "--steps", "2"]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["rewards"] == {"world_quality": 0.25} and settings["negative_rewards"] == {"world_quality": 0.75}
    assert settings["guidance"] == 2.0 and settings["steps"] == 2 and settings["preset"] == str(preset)


def test_default_prompts_are_genevals_553():
    from mirokit.cli.generate import default_geneval_prompts

    records = default_geneval_prompts()
    assert len(records) == 553 and {"prompt", "tag", "include"} <= set(records[0])
