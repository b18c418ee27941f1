"""Tiny run configs and process launching shared by the training tests."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mirokit.train.config import load_run_config

PINNED_PRECISION = "train.precision=fp32"
"""`auto` times bf16 against fp32 on CPU and can decide either way where they are close (tiny models, a loaded
machine): runs that tests compare are pinned; tests/train/test_precision_auto.py tests `auto` itself"""
TINY_RIN = [
    "model.image_channels=3", "model.image_size=16",
    "model.backbone={kind: rin, patch_size: 2, data_dim: 32, latents_dim: 32, num_latents: 8, num_blocks: 2, "
    "num_processing_layers: 1, read_write_heads: 4, compute_heads: 4, hidden_multiple: 8}",
    "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
    "text_encoder={kind: tokens, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}",
    PINNED_PRECISION,
]
TINY_UNET = [
    "model.image_channels=3", "model.image_size=16",
    "model.backbone={kind: unet, channels: [16, 32], attention_levels: [1], cond_dim: 64, heads: 4}",
    "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
    "text_encoder={kind: tokens, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}",
    PINNED_PRECISION,
]


def tiny_run(out_dir, *overrides, base=TINY_RIN):
    """A RunConfig on the toy dataset at 16x16, no progress bar, writing into out_dir."""
    return load_run_config(None, [*base, f"out_dir={out_dir}", "train.progress=false",
                                  "data={kind: toy, num_samples: 256}", "train.threads=1", "loader.num_workers=0",
                                  *overrides])


def free_port() -> int:
    """A TCP port free on localhost right now (for MASTER_PORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process now running (Linux /proc)."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_tree(pid: int, timeout: float = 30.0) -> list[int]:
    """SIGKILL process `pid` and all its descendants, as a preempted node would, and wait until they are gone.

    torchrun starts its ranks in sessions of their own, so killing torchrun's process group leaves the ranks
    running (and writing checkpoints under a resumed run). Returns the pids killed, `pid` first."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    for victim in found:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while any(alive(v) for v in found[1:]) and time.time() < deadline:
        time.sleep(0.05)
    return found


def rank_envs(world_size: int, **extra: str) -> list[dict]:
    """The environment torchrun would give each of `world_size` ranks (one thread each), plus `extra`."""
    port = str(free_port())
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                WORLD_SIZE=str(world_size), **extra)
    return [dict(base, RANK=str(r), LOCAL_RANK=str(r)) for r in range(world_size)]


def run_processes(cmds: list[list[str]], envs: list[dict], *, timeout: float, what: str) -> None:
    """Start every command at once; fail the test (with their output) if one fails or they time out."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd, env in zip(cmds, envs)]
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            pytest.fail(f"{what} timed out")
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-4000:]
