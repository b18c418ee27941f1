"""Safety and bad input (RELIABILITY.md): nothing in mirokit unpickles or evaluates data, and a corrupt weights
file, an out-of-range target or a caption that is not text is one line naming the item, or a counted bad row."""

import ast
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mirokit.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "mirokit").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])


def _unsafe_calls(path: Path, root: Path = ROOT) -> list[str]:
    """pickle.load(s), torch.load without weights_only=True, builtin eval/exec, np.load(allow_pickle=True),
    trust_remote_code=True written as a constant."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else func.id if isinstance(func, ast.Name) else "")
        keywords = {k.arg: k.value for k in node.keywords}

        def constant(key, value, keywords=keywords):
            return key in keywords and isinstance(keywords[key], ast.Constant) and keywords[key].value is value

        where = f"{path.relative_to(root)}:{node.lineno}"
        if name in ("pickle.load", "pickle.loads", "eval", "exec"):
            found.append(f"{where}: {name}")
        if name == "torch.load" and not constant("weights_only", True):
            found.append(f"{where}: torch.load without weights_only=True")
        if constant("allow_pickle", True) or constant("trust_remote_code", True):
            found.append(f"{where}: allow_pickle / trust_remote_code=True")
    return found


def test_no_pickle_no_eval_no_remote_code():
    assert len(SOURCES) > 100  # the scan sees the package
    found = [f for path in SOURCES for f in _unsafe_calls(path)]
    assert not found, "\n".join(found)


def test_the_scan_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle, torch\npickle.loads(b'')\ntorch.load('x')\neval('1')\n"
                   "torch.load('y', weights_only=True)\nf(trust_remote_code=True)\n")
    kinds = [f.split(": ", 1)[1] for f in _unsafe_calls(bad, tmp_path)]
    assert kinds == ["pickle.loads", "torch.load without weights_only=True", "eval",
                     "allow_pickle / trust_remote_code=True"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "studio"))
    from studio_kit import KEYS, save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("model") / "m", KEYS)


def test_a_corrupt_weights_file_is_one_line_naming_it(model, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(100))
    assert main(["sample", "--model", str(broken), "--prompt", "x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{broken / 'model.safetensors'}" in err and "Traceback" not in err


def _missing_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _truncated_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _config_not_matching(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["backbone"]["channels"] = [16, 48]
    (folder / "config.json").write_text(json.dumps(config))


def _torn_pipeline_json(folder: Path) -> None:
    (folder / "pipeline.json").write_text('{"model": ')


@pytest.mark.parametrize("damage, says", [
    (_missing_weights, "missing model.safetensors"), (_truncated_weights, "cannot read"),
    (_config_not_matching, "do not match the model"), (_torn_pipeline_json, "is not valid JSON")])
def test_a_damaged_model_folder_is_one_line_naming_what_is_wrong(model, tmp_path, capsys, damage, says):
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    damage(broken)
    assert main(["sample", "--model", str(broken), "--prompt", "x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(broken) in err and says in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_non_finite_scores_are_missing_in_calibration_and_a_torn_table_is_named(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"key": list("abcde"), "q": [0.1, float("nan"), float("inf"), -float("inf"), 0.5]}),
                   scores)
    assert main(["calibrate", "fit", str(scores), "--out", str(tmp_path / "cal.json")]) == 0
    assert "5 scores (3 missing or not finite)" in capsys.readouterr().out
    assert main(["calibrate", "apply", str(scores), "--calibration", str(tmp_path / "cal.json"),
                 "--out", str(tmp_path / "calibrated")]) == 0
    targets = pq.read_table(tmp_path / "calibrated" / "scores.parquet").column("q").to_pylist()
    assert targets[0] == 0.0 and targets[4] == 1.0 and all(np.isnan(t) for t in targets[1:4])  # inf is no target
    torn = tmp_path / "torn.parquet"
    torn.write_bytes(scores.read_bytes()[:-20])
    for argv in (["fit", str(torn), "--out", str(tmp_path / "c2.json")],
                 ["apply", str(torn), "--calibration", str(tmp_path / "cal.json"), "--out", str(tmp_path / "c3")]):
        assert main(["calibrate", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{torn}: not a readable parquet file" in err


@pytest.mark.parametrize("flag", ["--reward", "--negative-reward"])
def test_a_target_outside_0_1_is_refused(model, tmp_path, capsys, flag):
    assert main(["sample", "--model", str(model), "--prompt", "x", flag, "world_quality=1.7",
                 "--out", str(tmp_path / "o")]) == 2
    assert "world_quality=1.7 is outside [0, 1]" in capsys.readouterr().err


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """A tar with these (name, bytes) members, in order (duplicates kept)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _score(folder: Path, *inputs: str) -> dict:
    """`mirokit score` of the inputs (world_quality) -> its manifest."""
    assert main(["score", *(str(folder / i) for i in inputs), "--reward", "world_quality", "--num-workers", "0",
                 "--out", str(folder / "scores")]) == 0
    return json.loads((folder / "scores" / "manifest.000-of-001.json").read_text())


def test_captions_that_are_not_text_are_counted_not_scored(tmp_path):
    """A latin-1 caption, a whitespace-only one and an over-long one: three counted bad rows, by kind."""
    from mirokit.tars import MAX_CAPTION_CHARS

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="PNG")
    captions = {"good": b"a red square", "latin": "caf\xe9 cr\xe8me".encode("latin-1"), "blank": b"  \n ",
                "long": b"a " * MAX_CAPTION_CHARS}
    _tar(tmp_path / "s.tar", [(f"{key}.{ext}", data) for key, text in captions.items()
                              for ext, data in (("png", buf.getvalue()), ("txt", text))])
    manifest = _score(tmp_path, "s.tar")
    assert manifest["counts"] == {"rows": 4, "scored": 1, "errors": 3}
    assert manifest["errors_by_kind"] == {"caption not UTF-8": 1, "missing caption": 1, "caption too long": 1}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height grey pixels (a decompression bomb's header) with one tiny IDAT."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def test_the_bad_image_corpus(tmp_path):
    """Unusual but valid images are read upright in RGB; broken ones are counted bad rows, by kind."""
    from mirokit.rewards.inputs import RawSample
    from mirokit.rewards.unit_job import decode

    wide = Image.new("RGB", (20, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    good = {
        "cmyk": _encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
        "grey16": _encoded(Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)), "PNG"),
        "palette_alpha": _encoded(Image.new("P", (16, 16), 0), "PNG", transparency=0),
        "grey_alpha": _encoded(Image.new("LA", (16, 16), (10, 0)), "PNG"),
        "webp": _encoded(Image.new("RGB", (16, 16), (0, 0, 255)), "WEBP"),
        "exif_rotated": _encoded(wide, "JPEG", exif=exif.tobytes()),
    }
    truncated = _encoded(Image.new("RGB", (64, 64), (0, 200, 0)), "JPEG")
    bad = {"zero_bytes": b"", "html": b"<!doctype html><html><body>404</body></html>",
           "truncated": truncated[: len(truncated) // 3], "bomb": _png_header_only(30_000, 30_000)}
    decoded = {k: decode(RawSample(k, v, "a caption")) for k, v in {**good, **bad}.items()}
    for key in good:
        _, _, image, error, _ = decoded[key]
        assert error == "" and image.mode == "RGB", (key, error)
    assert decoded["exif_rotated"][2].size == (10, 20)  # turned upright
    assert decoded["palette_alpha"][2].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert decoded["grey16"][2].getpixel((0, 0)) == (156, 156, 156)  # 40000 / 256, not clipped to 255
    for key in bad:
        _, _, image, error, _ = decoded[key]
        assert image is None and error.startswith("corrupt image"), (key, error)
    assert "DecompressionBombError" in decoded["bomb"][3]
    # through `mirokit score`: counted, never lost
    _tar(tmp_path / "corpus.tar", [(f"{key}.{ext}", member) for key, data in {**good, **bad}.items()
                                    for ext, member in (("jpg", data), ("txt", b"a red square"))])
    manifest = _score(tmp_path, "corpus.tar")
    assert manifest["counts"] == {"rows": len(good) + len(bad), "scored": len(good), "errors": len(bad)}


def test_malformed_tars_are_counted(tmp_path):
    """A duplicated member (which would silently replace the first) marks its sample bad; a truncated archive
    keeps what was read and counts one corrupt entry."""
    png = _encoded(Image.new("RGB", (16, 16), (200, 30, 30)), "PNG")
    _tar(tmp_path / "dup.tar", [("a.png", png), ("a.txt", b"a red square"), ("b.png", png), ("b.txt", b"one"),
                                 ("b.txt", b"another")])
    whole = (tmp_path / "dup.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[:700])  # inside the first image
    manifest = _score(tmp_path, "dup.tar", "cut.tar")
    assert manifest["per_unit"]["dup"] == {"rows": 2, "errors": 1}
    assert manifest["errors_by_kind"]["duplicate tar member b.txt"] == 1
    assert manifest["per_unit"]["cut"]["errors"] >= 1
    assert manifest["errors_by_kind"]["corrupt tar"] == 1


def test_an_append_after_a_torn_line_starts_on_a_new_line(tmp_path):
    from mirokit.atomic import drop_torn_tail, write_atomic

    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')  # a kill during the third record
    assert drop_torn_tail(path) == len(b'{"c": ')
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert drop_torn_tail(path) == 0 and drop_torn_tail(tmp_path / "missing.jsonl") == 0
    path.write_bytes(b'{"c": ')  # torn first line: nothing complete is kept
    assert drop_torn_tail(path) == 6 and path.read_bytes() == b""
    write_atomic(tmp_path / "x.json", "{}", owner="shard-1")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))
    from runs import tiny_run

    from mirokit.train.loop import train
    from mirokit.train.metrics import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "time": 0, "loss": 9.0}\n{"step": 2, "ti')  # the killed run
    train(tiny_run(tmp_path, "model.reward_keys=[brightness]", "train.steps=3", "optim.total_steps=3",
                   "optim.warmup_steps=1", "train.batch_size=4", "train.log_every=1"))
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["loss"] != 9.0


def test_a_model_folder_cannot_make_mirokit_write_outside_the_output_folder(tmp_path):
    """Every string a downloaded model folder carries (pipeline.json's training config with its out_dir and data
    paths, an extra out_dir key, path-like names) is data: sample and generate write only under --out."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "evaluate"))
    from evalkit import shapes_prompts, world_models

    class Factory:  # world_models wants a tmp_path_factory
        def mktemp(self, name):
            (tmp_path / name).mkdir()
            return tmp_path / name

    model = tmp_path / "hostile"
    shutil.copytree(world_models(Factory())["miro"], model)
    escape = tmp_path / "escaped"

    def hostile(value):
        if isinstance(value, dict):
            return {k: hostile(v) for k, v in value.items()}
        if isinstance(value, list):
            return [hostile(v) for v in value]
        return str(escape / "x") if isinstance(value, str) and value not in ("builtin", "pixels", "unet") else value

    meta = json.loads((model / "pipeline.json").read_text())
    meta["training"] = hostile(meta["training"]) | {"out_dir": str(escape), "cache_dir": "../../escaped"}
    meta["out_dir"] = str(escape)
    (model / "pipeline.json").write_text(json.dumps(meta))
    before = {p for p in tmp_path.rglob("*")}
    outs = [tmp_path / "samples", tmp_path / "geneval"]
    assert main(["sample", "--model", str(model), "--prompt", "a red circle", "--steps", "2",
                 "--out", str(outs[0])]) == 0
    prompts = shapes_prompts(tmp_path / "p.jsonl", 2)
    before.add(prompts)
    assert main(["generate", "geneval", "--model", str(model), "--prompts", str(prompts), "--images-per-prompt", "1",
                 "--steps", "2", "--out", str(outs[1])]) == 0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(any(out == p or out in p.parents for out in outs) for p in new), sorted(new)
    assert not escape.exists()


def test_a_model_reward_the_data_does_not_score_is_said_not_silent(tmp_path, capsys):
    """A key of model.reward_keys that no sample carries is missing (NaN) in every step: the run says so."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "train"))
    from runs import tiny_run

    from mirokit.train.loop import train

    train(tiny_run(tmp_path / "run", "model.reward_keys=[brightness, sharpness]", "train.steps=1",
                   "train.batch_size=4", "optim.warmup_steps=1", "train.precision=fp32"))
    out = capsys.readouterr().out
    assert "warning: the data carries no score for sharpness (it has brightness, size)" in out


def test_a_diverging_run_stops_with_one_line_before_a_checkpoint_keeps_it(tmp_path):
    """The loss is read at logging and checkpoint steps only (no device read per step): a run whose loss becomes
    NaN stops there, before the checkpoint of that step is written."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "train"))
    from runs import tiny_run

    from mirokit.train.loop import train

    cfg = tiny_run(tmp_path / "run", "optim.lr=1e30", "optim.warmup_steps=0", "train.steps=6", "train.log_every=100",
                   "train.checkpoint_every=3", "train.batch_size=4")
    with pytest.raises(FloatingPointError, match=r"loss became nan by step 3; lower optim.lr"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())
