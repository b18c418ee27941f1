"""Crash a mirokit command at seeded write events (crash_run.py), finish it with the same command, and compare
the output folder with an uninterrupted run's: nothing lost, nothing duplicated, nothing half-written left.

What two uninterrupted runs already disagree on (timings, speeds) is found by running the command twice and is
left out of the comparison; everything else must be equal, leaf by leaf (parquet rows, JSON values, tar members,
image and weight bytes)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

RUNNER = Path(__file__).with_name("crash_run.py")
CRASH_EXIT = 137
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
POINTS = int(os.environ.get("MIROKIT_CRASH_POINTS", "3"))
"""crash points tried per stage in `make test` (make test-all: 60, which finds a window of 5% of the events with
probability 1 - 0.95**60 = 95%); MIROKIT_CRASH_SEED picks other points"""
SEED = int(os.environ.get("MIROKIT_CRASH_SEED", "0"))


def run(argv: list[str], events: Path, at: int = 0, mode: str = "kill") -> subprocess.CompletedProcess:
    """`mirokit ARGV` in a fresh process that dies at write event `at` (0: never; then `events` holds the count);
    mode "enospc": the write fails with a full disk instead."""
    return subprocess.run([sys.executable, str(RUNNER), str(events), str(at), *argv],
                          env=dict(ENV, CRASH_MODE=mode), capture_output=True, text=True, timeout=600)


def _check_failure(died: subprocess.CompletedProcess, mode: str, where: str) -> None:
    """A killed run died at its point; a run whose write failed said so in one line, without a traceback."""
    if mode == "kill":
        assert died.returncode == CRASH_EXIT, f"{where}: exit {died.returncode}\n{died.stderr[-2000:]}"
        return
    last = died.stderr.strip().splitlines()[-1] if died.stderr.strip() else ""
    assert died.returncode not in (0, CRASH_EXIT) and "Traceback" not in died.stderr, f"{where}:\n{died.stderr[-3000:]}"
    assert last.startswith("mirokit ") and "No space left on device" in last, f"{where}: last line {last!r}"


def _read(path: Path):
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".safetensors":  # tensors and metadata (writers order the header's keys as they like)
        import torch
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            return {"metadata": f.metadata(), **{k: f.get_tensor(k).contiguous().view(-1).view(torch.uint8).numpy().tobytes() for k in f.keys()}}
    if path.suffix == ".tar":
        with tarfile.open(path) as tar:
            names = tar.getnames()
            assert len(names) == len(set(names)), f"{path}: a member twice"
            return {m.name: _member(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()}
    return path.read_bytes()


def _member(name: str, data: bytes):
    return json.loads(data) if name.endswith(".json") else data


IGNORED = ("tensorboard",)
"""folders left out: TensorBoard names its event files by wall time and host (resuming purges later steps)"""


def snapshot(folder: Path) -> dict:
    """relative path -> content (parsed where the format allows) of every file under `folder` (except IGNORED)."""
    return {p.relative_to(folder).as_posix(): _readable(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in IGNORED}


def _readable(path: Path):
    try:
        return _read(path)
    except Exception as err:  # noqa: BLE001 - a torn file is a difference to report, not a test error
        return f"unreadable: {type(err).__name__}"


def differences(a, b, where: str = "") -> list[str]:
    """The leaf paths where two snapshots (or parts of them) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b), key=str)]
        for k in sorted(set(a) & set(b), key=str):
            out += differences(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [where]


def crash_points(total: int, count: int | None = None, seed: int = SEED) -> list[int]:
    """`count` (default POINTS) distinct write events of 1..total, seeded (every one when there are fewer)."""
    count = POINTS if count is None else count
    events = list(range(1, total + 1))
    return events if total <= count else sorted(random.Random(seed).sample(events, count))


def check_stage(argv: list[str], out: Path, work: Path, *, resume_keys: tuple[str, ...] = (),
                modes: tuple[str, ...] = ("kill",)) -> dict:
    """Run `argv` (which writes into `out`) twice uninterrupted, then for each crash point and mode (kill: as
    `kill -9`; enospc: that write fails, the disk full): fail there, rerun, compare.

    resume_keys: leaf names that may differ after a resume and say so (e.g. a manifest's "skipped_done").
    Returns {"events": total write events, "modes", "points": failures tried, "crashed": runs that failed there}.
    """
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events"
    clean = []
    for name in ("clean_a", "clean_b"):
        shutil.rmtree(out, ignore_errors=True)
        done = run(argv, events)
        assert done.returncode == 0, done.stderr[-2000:]
        clean.append(snapshot(out))
        shutil.move(str(out), str(work / name))
    total = int(events.read_text())
    volatile = set(differences(*clean))
    points = crash_points(total)
    crashed = 0
    for mode in modes:
        for at in points:
            where = f"{mode} at write event {at} of {total}"
            shutil.rmtree(out, ignore_errors=True)
            _check_failure(run(argv, events, at, mode), mode, where)
            crashed += 1
            again = run(argv, events)
            assert again.returncode == 0, f"rerun after a {where}:\n{again.stderr[-2000:]}"
            wrong = [d for d in differences(clean[0], snapshot(out))
                     if d not in volatile and d.rsplit("/", 1)[-1].split("[")[0] not in resume_keys]
            assert not wrong, f"{where}, then the same command: {wrong[:8]}"
    stats = {"events": total, "modes": len(modes), "points": len(points) * len(modes), "crashed": crashed}
    print(f"crash points: {argv[0]} {' '.join(modes)}: {stats}")  # shown with pytest -s
    return stats
