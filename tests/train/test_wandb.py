"""Reporting to Weights & Biases (train.report_to), checked on what wandb itself writes in offline mode.

An offline run writes WANDB_DIR/wandb/offline-run-<time>-<id>/run-<id>.wandb: a log of protobuf records
(wandb.proto.wandb_internal_pb2.Record: the run with its config, history rows, summaries) in leveldb-log
framing, which `wandb sync` uploads. `wandb_records` reads it back; no part of wandb is replaced.
"""

import json
import shutil
import sys

import pytest
from runs import tiny_run

from mirokit.config import ConfigError
from mirokit.train import checkpoint as ckpt
from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics
from mirokit.train.reporting import WANDB_RUN_FILE, open_metrics, read_wandb_run

_BLOCK, _HEADER = 32 * 1024, 7  # leveldb log blocks; each chunk: crc32c (4), length (2, little-endian), type (1)


def wandb_records(path):
    """Every Record of a .wandb file, in order (chunks of one record: FULL=1, or FIRST=2, MIDDLE=3, LAST=4)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, parts, records = _HEADER, b"", []
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if left < _HEADER or (kind == 0 and length == 0):  # block trailer / padding
            pos += left
            continue
        chunk, pos = data[pos + _HEADER:pos + _HEADER + length], pos + _HEADER + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def history(records):
    """[{key: value}] of the history rows (images flattened to name/path, ...)."""
    return [{"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]


def last_summary(records):
    """The summary as the last updates leave it."""
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in r.summary.update})
    return summary


def offline_runs(wandb_dir, run_id):
    """The .wandb files of every offline run folder of `run_id`, oldest first."""
    return sorted((wandb_dir / "wandb").glob(f"offline-run-*-{run_id}*/run-{run_id}.wandb"),
                  key=lambda p: p.parent.name)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """wandb in offline mode writing under tmp_path/wb; any run left open is finished afterwards."""
    wandb = pytest.importorskip("wandb")

    for key in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    (tmp_path / "wb").mkdir()
    wandb.teardown()  # wandb reads its environment once per process (wandb.setup): start afresh
    yield tmp_path / "wb"
    wandb.finish()  # no-op unless a failing test left its run open
    wandb.teardown()  # and ends wandb's service process


RUN = ["train.batch_size=4", "train.log_every=2", "train.checkpoint_every=2", "train.precision=fp32",
       "train.report_to=[jsonl, wandb]", "validation.every=4", "validation.prompts=[a red circle]",
       "validation.sampling={steps: 2}"]


def test_training_reports_and_resumes_into_one_wandb_run(tmp_path, offline):
    out = tmp_path / "my-run"
    train(tiny_run(out, *RUN, "train.steps=4"))
    run_id = read_wandb_run(out)["id"]
    assert ckpt.read_state(out / "checkpoints/step_0000004")["train"]["wandb_id"] == run_id
    [first] = offline_runs(offline, run_id)
    records = wandb_records(first)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.run_id, run.project, run.display_name) == (run_id, "mirokit", "my-run")
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["train"]["report_to"] == ["jsonl", "wandb"] and config["out_dir"] == str(out)
    rows = history(records)
    jsonl = read_metrics(out)
    assert [row["_step"] for row in rows] == [r["step"] for r in jsonl] == [2, 4]
    for row, line in zip(rows, jsonl):  # every scalar of metrics.jsonl, at its step, with its value
        assert {k: row[k] for k in line if k not in ("step", "time")} == {k: v for k, v in line.items()
                                                                          if k not in ("step", "time")}
    assert {"loss", "lr", "mfu", "images_per_s", "images_seen"} <= set(rows[0])
    assert rows[1]["validation/_type"] == "image-file"  # the step-4 grid as a wandb.Image
    assert (first.parent / "files" / rows[1]["validation/path"]).is_file()
    assert not (out / "tensorboard").exists()  # report_to without tensorboard

    # the run was killed after logging step 4 but with step 2 as its newest checkpoint: the resume logs
    # steps 3.. again to metrics.jsonl, to W&B only what it never got (steps > 4), into the same W&B run
    shutil.rmtree(out / "checkpoints/step_0000004")
    train(tiny_run(out, *RUN, "train.steps=8"))
    assert read_wandb_run(out) == {"id": run_id, "logged_through": 4}
    assert ckpt.read_state(out / "checkpoints/step_0000008")["train"]["wandb_id"] == run_id
    assert [r["step"] for r in read_metrics(out)] == [2, 4, 6, 8]
    assert first in offline_runs(offline, run_id) and len(offline_runs(offline, run_id)) == 2
    second = wandb_records(offline_runs(offline, run_id)[-1])
    assert next(r.run.run_id for r in second if r.WhichOneof("record_type") == "run") == run_id
    assert [row["_step"] for row in history(second)] == [6, 8]
    summary = last_summary(second)
    assert summary["_step"] == 8 and summary["loss"] == read_metrics(out)[-1]["loss"]
    assert "validation" in summary or "validation/_type" in summary

    # without OUT/wandb_run.json the checkpoint's state still names the run
    (out / WANDB_RUN_FILE).unlink()
    train(tiny_run(out, *RUN, "train.steps=10", "validation.every=0"))
    assert read_wandb_run(out)["id"] == run_id and len(offline_runs(offline, run_id)) == 3
    assert [row["_step"] for row in history(wandb_records(offline_runs(offline, run_id)[-1]))] == [10]

def test_a_restart_before_any_checkpoint_keeps_the_run(tmp_path, offline):
    cfg = tiny_run(tmp_path / "run", "train.report_to=[jsonl, tensorboard, wandb]", "train.wandb_project=proj")
    log = open_metrics(cfg, enabled=True)
    run_id = read_wandb_run(tmp_path / "run")["id"]  # written before the first metric
    log.log(1, {"loss": 1.0})
    log.log(2, {"loss": 2.0})
    log.close()
    with open_metrics(cfg, enabled=True) as log:  # the restart: from step 0, W&B already has steps 1, 2
        log.truncate_after(0)
        for step in (1, 2, 3):
            log.log(step, {"loss": 10.0 * step})
    first, second = offline_runs(offline, run_id)
    assert [(r["_step"], r["loss"]) for r in history(wandb_records(first))] == [(1, 1.0), (2, 2.0)]
    assert [(r["_step"], r["loss"]) for r in history(wandb_records(second))] == [(3, 30.0)]
    assert next(r.run.project for r in wandb_records(second) if r.WhichOneof("record_type") == "run") == "proj"
    assert [r["loss"] for r in read_metrics(tmp_path / "run")] == [10.0, 20.0, 30.0]
    assert list((tmp_path / "run" / "tensorboard").iterdir())


def test_missing_wandb_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    cfg = tiny_run(tmp_path, "train.report_to=[jsonl, wandb]")
    with pytest.raises(RuntimeError) as err:
        open_metrics(cfg, enabled=True)
    assert str(err.value) == ("train.report_to has wandb but wandb is not installed: pip install 'mirokit[wandb]'")
    assert not (tmp_path / WANDB_RUN_FILE).exists()


def test_other_ranks_report_nothing(tmp_path):
    def no_import():
        raise AssertionError("rank != 0 imported wandb")

    cfg = tiny_run(tmp_path / "run", "train.report_to=[jsonl, wandb]")
    log = open_metrics(cfg, enabled=False, import_module=no_import)
    log.log(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value, message", [
    ("[jsonl, mlflow]", "unknown train.report_to 'mlflow'; known: jsonl, tensorboard, wandb"),
    ("[wandb]", "train.report_to must include jsonl"),
    ("wandb", "config key train.report_to: expected a list"),
])
def test_report_to_is_checked(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as err:
        tiny_run(tmp_path, f"train.report_to={value}")
    assert "\n" not in str(err.value)


def test_default_is_jsonl_and_tensorboard(tmp_path):
    assert tiny_run(tmp_path).train.report_to == ["jsonl", "tensorboard"]
