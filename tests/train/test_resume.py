import torch
from runs import tiny_run

from mirokit.pipeline import MiroPipeline
from mirokit.train import checkpoint as ckpt
from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics

COMMON = ["model.reward_keys=[brightness,size]", "train.batch_size=8", "optim.warmup_steps=2",
          "optim.total_steps=12", "train.log_every=1", "flow.self_cond_prob=0.5"]


def _state(run_dir):
    path = ckpt.latest_checkpoint(run_dir)
    return path, ckpt.read_tensors(path, "model."), ckpt.read_tensors(path, "ema.")


def test_resume_is_bit_identical(tmp_path):
    straight = tmp_path / "straight"
    train(tiny_run(straight, *COMMON, "train.steps=12", "train.checkpoint_every=6"))
    resumed = tmp_path / "resumed"
    train(tiny_run(resumed, *COMMON, "train.steps=6"))
    train(tiny_run(resumed, *COMMON, "train.steps=12"))
    p1, w1, e1 = _state(straight)
    p2, w2, e2 = _state(resumed)
    assert p1.name == p2.name == "step_0000012"
    assert w1.keys() == w2.keys() and e1.keys() == e2.keys()
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    for k in e1:
        assert torch.equal(e1[k], e2[k]), k
    # the metrics file continues without duplicated steps
    steps = [row["step"] for row in read_metrics(resumed / "metrics.jsonl")]
    assert steps == list(range(1, 13))
    # training moved the weights, and the exported model equals the EMA weights
    first = ckpt.read_tensors(straight / "checkpoints/step_0000006", "model.")
    assert any(not torch.equal(first[k], w1[k]) for k in w1)
    pipe = MiroPipeline.from_pretrained(straight / "model")
    for name, value in pipe.generator.state_dict().items():
        assert torch.equal(value, e1["generator." + name]), name


def test_checkpoints_are_pruned_and_complete(tmp_path):
    train(tiny_run(tmp_path, *COMMON, "train.steps=8", "train.checkpoint_every=2", "train.keep_checkpoints=2"))
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["step_0000006", "step_0000008"]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))
    state = ckpt.read_state(tmp_path / "checkpoints/step_0000008")
    assert state["step"] == 8 and state["train"]["images_seen"] == 64
