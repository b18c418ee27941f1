"""A rank killed (SIGKILL) in the middle of a two-rank run (DDP and FSDP2, gloo): the surviving rank stops within a
bounded time with one line that says what happened, and the same command then resumes from the last checkpoint."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from runs import TINY_RIN, rank_envs

from mirokit.train.metrics import read_metrics

BOUND_S = 60.0
"""the longest a survivor may take to notice (measured: 0.1 s on 2 cores; gloo sees the closed socket at once)"""


def _ranks(out, steps):
    return [sys.executable, "-m", "mirokit.cli.main", "train", "--config", "cpu_tiny", *TINY_RIN, f"out_dir={out}",
           "train.progress=false", "data={kind: toy, num_samples: 256}", "train.threads=1", "loader.num_workers=0",
           "model.reward_keys=[brightness]", f"train.steps={steps}", f"optim.total_steps={steps}", "train.batch_size=8",
           "train.log_every=1", "train.checkpoint_every=2", "train.device=cpu"]


@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
def test_a_dying_rank_stops_the_others_with_one_line(parallel, tmp_path):
    out = tmp_path / "run"
    cli = [*_ranks(out, 400), f"train.parallel={parallel}"]
    procs = [subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for env in rank_envs(2)]
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "checkpoints" / "step_0000004").is_dir():
            assert procs[0].poll() is None, procs[0].communicate()[0][-3000:]
            time.sleep(0.1)
        os.kill(procs[1].pid, signal.SIGKILL)
        killed = time.time()
        log = procs[0].communicate(timeout=BOUND_S)[0]
        waited = time.time() - killed
    finally:
        for p in procs:
            p.kill()
    last = log.strip().splitlines()[-1]
    assert procs[0].returncode == 2 and "Traceback" not in log, log[-3000:]
    assert last.startswith("mirokit train: error: rank 0 of 2 lost its connection to another rank"), last
    assert waited < BOUND_S
    # the run resumes from the last checkpoint (here on one process, the run shortened): every step logged once
    last_checkpoint = max(int(p.name.split("_")[1]) for p in (out / "checkpoints").glob("step_*"))
    end = last_checkpoint + 2
    done = subprocess.run([*_ranks(out, end), f"train.parallel={parallel}"], env=rank_envs(1)[0], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from {out / 'checkpoints' / f'step_{last_checkpoint:07d}'}" in done.stdout
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl")]
    assert steps == list(range(1, end + 1))
