import json
import tarfile

import numpy as np
from PIL import Image

from mirokit.cli.main import build_parser, main
from mirokit.world.prompts import load_shapes_eval
from mirokit.world.scenes import claim_holds, scene_from_dict
from mirokit.world.shards import read_shard


def _subparsers(parser):
    return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


def test_every_world_flag_is_documented():
    world = _subparsers(build_parser())["world"]
    assert world.description
    for name, p in _subparsers(world).items():
        assert p.description, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"world {name} {action.option_strings or action.dest} has no help"


def test_render_writes_the_geneval_layout(tmp_path, capsys):
    prompts = load_shapes_eval()[::50]  # every task, a few prompts each
    file = tmp_path / "prompts.jsonl"
    file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    out = tmp_path / "gt"
    assert main(["world", "render", "--prompts", str(file), "--out", str(out), "--images-per-prompt", "3",
                 "--size", "40"]) == 0
    assert "wrote 12 prompts x 3 images" in capsys.readouterr().out
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [f"{i:05d}" for i in range(len(prompts))]
    for i, prompt in enumerate(prompts):
        folder = out / f"{i:05d}"
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.jsonl", "samples"]
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png", "0002.png"]
        with open(folder / "metadata.jsonl") as fp:
            assert json.load(fp) == prompt  # GenEval reads it with json.load
        image = Image.open(folder / "samples" / "0000.png")
        assert image.size == (40, 40) and image.mode == "RGB"
    again = tmp_path / "again"
    main(["world", "render", "--prompts", str(file), "--out", str(again), "--images-per-prompt", "3", "--size", "40"])
    assert np.array_equal(np.asarray(Image.open(out / "00005/samples/0002.png")),
                          np.asarray(Image.open(again / "00005/samples/0002.png")))


def test_render_mismatch_uses_other_prompts(tmp_path):
    out, mismatched = tmp_path / "gt", tmp_path / "mm"
    assert main(["world", "render", "--out", str(out), "--images-per-prompt", "1"]) == 0  # shipped ShapesEval
    assert main(["world", "render", "--out", str(mismatched), "--images-per-prompt", "1", "--mismatch"]) == 0
    assert len(list(out.iterdir())) == len(load_shapes_eval())
    assert (out / "00017/metadata.jsonl").read_text() == (mismatched / "00017/metadata.jsonl").read_text()
    differ = sum(not np.array_equal(np.asarray(Image.open(out / f"{i:05d}/samples/0000.png")),
                                    np.asarray(Image.open(mismatched / f"{i:05d}/samples/0000.png")))
                 for i in range(0, 553, 7))
    assert differ == len(range(0, 553, 7))


def test_generate_writes_shards_and_counts_noise(tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["world", "generate", "--num-samples", "60", "--out", str(out), "--shard-size", "25", "--seed", "2",
                 "--size", "32", "--clean", "--noise", "blur=1", "--noise", "count_off=0.5",
                 "--set", "texture_prob=1.0"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 60 samples in 3 shard(s)" in printed and "blur" in printed and "jpeg" in printed
    summary = json.loads((out / "world.json").read_text())
    counts = summary["noise_counts"]
    assert counts["blur"] == 60 and counts["jpeg"] == 0 and 15 < counts["count_off"] < 45
    assert summary["config"]["texture_prob"] == 1.0 and summary["config"]["seed"] == 2
    with tarfile.open(out / "shard-000002.tar") as tar:
        assert len(tar.getnames()) == 3 * 10
    for _key, _image, caption, meta in read_shard(out / "shard-000000.tar"):
        scene = scene_from_dict(meta["scene"])
        assert meta["prompt"] == caption and scene.texture > 0 and "blur" in meta["noise"]
        assert claim_holds(scene, meta) == ("count_off" not in meta["noise"])


def test_generate_errors_are_one_line(tmp_path, capsys):
    for argv, expected in [
        (["--noise", "typo=0.1"], "unknown noise kind"),
        (["--noise", "blur=2"], "blur_rate must be in [0, 1]"),
        (["--set", "bogus=1"], "unknown config key"),
    ]:
        assert main(["world", "generate", "--num-samples", "5", "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert main(["world", "render", "--out", str(tmp_path / "y"), "--prompts", str(tmp_path / "none.jsonl")]) == 2
    assert "prompt file not found" in capsys.readouterr().err
