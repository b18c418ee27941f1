"""`train.precision: auto` on CPU: measured on the model (not assumed), decided by a clear margin, written to the run
folder and kept on resume; rank 0 decides for every rank; the probe leaves the model and the random stream alone."""

import json

import pytest
import torch
from runs import tiny_run

from mirokit.train.config import load_run_config
from mirokit.train.loop import Trainer, train
from mirokit.train.precision import CLEAR_SPEEDUP, PRECISION_FILE, measure_cpu_bf16, resolve_precision

CPU = torch.device("cpu")


def _timing(speedup):
    return lambda: {"fp32_s": speedup * 0.01, "bf16_s": 0.01, "speedup": speedup}


def _never():
    raise AssertionError("measured although the precision was decided already")


@pytest.mark.parametrize("speedup, expected", [(CLEAR_SPEEDUP + 0.05, "bf16"), (CLEAR_SPEEDUP - 0.05, "fp32"),
                                                (0.6, "fp32")])
def test_auto_on_cpu_takes_bf16_only_when_it_is_clearly_faster_and_keeps_the_decision(tmp_path, speedup, expected):
    bf16, record = resolve_precision("auto", CPU, tmp_path, _timing(speedup))
    assert bf16 == (expected == "bf16") and record["precision"] == expected
    assert f"{speedup:.2f}x" in record["chosen_by"]
    assert json.loads((tmp_path / PRECISION_FILE).read_text())["precision"] == expected
    # the run resumed: the file decides, nothing is measured again (the same precision, bit-identical resume)
    assert resolve_precision("auto", CPU, tmp_path, _never) == (
        bf16, json.loads((tmp_path / PRECISION_FILE).read_text()))


def test_explicit_precisions_and_cuda_are_not_measured(tmp_path):
    assert resolve_precision("fp32", CPU, tmp_path, _never)[0] is False
    assert resolve_precision("bf16", CPU, tmp_path, _never)[0] is True
    assert resolve_precision("auto", torch.device("cuda"), tmp_path, _never)[0] is True
    assert not (tmp_path / PRECISION_FILE).exists()


def test_a_torn_decision_file_is_measured_again(tmp_path):
    (tmp_path / PRECISION_FILE).write_text('{"precision": "bf')
    assert resolve_precision("auto", CPU, tmp_path, _timing(3.0))[0] is True


def test_other_ranks_take_rank_0s_decision_without_measuring(tmp_path):
    bf16, record = resolve_precision("auto", CPU, tmp_path, _never, is_main=False, agree=lambda mine: True)
    assert bf16 and record["precision"] == "bf16" and not (tmp_path / PRECISION_FILE).exists()


def test_the_probe_times_a_copy_and_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(8, 16)
    state = torch.get_rng_state()
    timing = measure_cpu_bf16(model, lambda m: (m(x) + torch.randn(8, 1)).square().mean(), repeats=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert timing["fp32_s"] > 0 and timing["bf16_s"] > 0
    assert timing["speedup"] == pytest.approx(timing["fp32_s"] / timing["bf16_s"])
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_run_measures_once_and_a_resumed_run_keeps_the_precision_it_started_in(tmp_path):
    out = tmp_path / "run"
    cfg = tiny_run(out, "train.steps=2", "train.checkpoint_every=1", "train.precision=auto")
    assert cfg.train.precision == "auto"
    train(cfg)
    record = json.loads((out / PRECISION_FILE).read_text())
    assert record["precision"] in ("fp32", "bf16") and record["speedup"] > 0
    # whatever this CPU measured, the run folder's decision is what a resumed run uses
    flipped = "fp32" if record["precision"] == "bf16" else "bf16"
    (out / PRECISION_FILE).write_text(json.dumps({**record, "precision": flipped}))
    resumed = Trainer(load_run_config(out / "config.yaml", ["train.steps=3"]))
    assert resumed.step == 2 and resumed.bf16 == (flipped == "bf16")
