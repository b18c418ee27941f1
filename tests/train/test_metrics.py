"""MetricsLogger: JSONL content, resume truncation, TensorBoard mirror, disabled ranks."""

import json
import time

import pytest
import torch

from mirokit.train.metrics import MetricsLogger, read_metrics


def test_jsonl_lines(tmp_path):
    before = time.time()
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        for step in range(3):
            log.log(step, {"loss": 1.0 / (step + 1), "lr": torch.tensor(0.5 * step)})
        # Each line is flushed immediately: readable before close.
        assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert [r["loss"] for r in rows] == [1.0, 0.5, 1.0 / 3]
    assert [r["lr"] for r in rows] == [0.0, 0.5, 1.0]
    assert all(before <= r["time"] <= time.time() for r in rows)
    assert list(rows[0]) == ["step", "time", "loss", "lr"]
    assert read_metrics(tmp_path) == rows  # a run folder works too
    assert not (tmp_path / "tensorboard").exists()


def test_bad_values_rejected(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        with pytest.raises(ValueError, match="reserved"):
            log.log(0, {"step": 1.0})
        with pytest.raises(TypeError, match="name"):
            log.log(0, {"name": "x"})
    assert read_metrics(tmp_path) == []


def test_resume_truncates_and_appends(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        for step in range(5):
            log.log(step, {"loss": float(step)})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # torn write from a crash
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2, 3, 4]

    with MetricsLogger(tmp_path, tensorboard=False) as log:  # resumed from the checkpoint at step 2
        log.truncate_after(2)
        assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]
        log.log(3, {"loss": 30.0})
    rows = read_metrics(tmp_path)
    assert [(r["step"], r["loss"]) for r in rows] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]
    assert not list(tmp_path.glob("*.tmp"))


def test_malformed_middle_line_raises(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)


def test_tensorboard_event_file(tmp_path):
    log = MetricsLogger(tmp_path)
    log.log(0, {"loss": 2.0})
    log.log(1, {"loss": 9.0})
    log.log(2, {"loss": float("nan")})  # JSONL keeps NaN; TensorBoard skips it
    assert read_metrics(tmp_path)[-1]["loss"] != read_metrics(tmp_path)[-1]["loss"]
    log.truncate_after(0)
    log.log(1, {"loss": 1.5})
    log.close()
    log.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()  # reads every event file in order; purge_step hides the stale step-1 value
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(0, 2.0), (1, 1.5)]
    assert [r["loss"] for r in read_metrics(tmp_path)] == [2.0, 1.5]
    with open(tmp_path / "metrics.jsonl") as f:
        assert json.loads(f.readline())["step"] == 0


def test_disabled_writes_nothing(tmp_path):
    out = tmp_path / "rank1"
    log = MetricsLogger(out, enabled=False)
    log.log(0, {"loss": 1.0})
    log.truncate_after(0)
    log.close()
    assert not out.exists()
