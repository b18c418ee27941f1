"""`torchrun --nproc_per_node 2` (gloo, CPU) matches one process at the same global batch."""

import os
import subprocess
import sys

import torch
import yaml

from mirokit.config import to_dict
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SampleConfig, generate
from mirokit.train.metrics import read_metrics

from runs import tiny_run


def _run(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_match_one_process(tmp_path):
    cfg = tiny_run("unused", "model.reward_keys=[brightness,size]", "train.steps=6", "train.batch_size=8",
                   "train.log_every=1", "optim.warmup_steps=1", "train.checkpoint_every=0", "train.threads=0",
                   "train.device=cpu", "train.ema_decay=0.5", "train.ema_warmup=false")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    cli = ["-m", "mirokit.cli.main", "train", "--config", str(config)]
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
          *cli, f"out_dir={tmp_path / 'ddp'}"], tmp_path)
    _run([sys.executable, *cli, f"out_dir={tmp_path / 'single'}"], tmp_path)
    _run([sys.executable, *cli, f"out_dir={tmp_path / 'accum'}", "train.grad_accum=2"], tmp_path)

    # Compare in function space: parameters with a structurally zero gradient (e.g. key biases,
    # which softmax ignores) carry float noise that Adam amplifies, but never change the outputs.
    def outputs(run):
        pipe = MiroPipeline.from_pretrained(tmp_path / run / "model")
        return generate(pipe, ["a red circle", "a blue square"], cfg=SampleConfig(steps=4))

    single = outputs("single")
    single_loss = [r["loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl")]
    for other in ("ddp", "accum"):
        losses = [r["loss"] for r in read_metrics(tmp_path / other / "metrics.jsonl")]
        assert len(losses) == len(single_loss) == 6
        torch.testing.assert_close(torch.tensor(losses), torch.tensor(single_loss), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(outputs(other), single, atol=1e-4, rtol=1e-4)
    # the comparison is not vacuous: training moved the loss
    assert single_loss[-1] < single_loss[0]
