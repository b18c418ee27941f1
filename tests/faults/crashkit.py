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
POINTS = int(os.environ.get("MIROKIT_CRASH_POINTS", "1"))
"""crash points tried per stage in `make test` (make test-all: 60, which finds a window of 5% of the events with
probability 1 - 0.95**60 = 95%); MIROKIT_CRASH_SEED picks other points"""
SEED = int(os.environ.get("MIROKIT_CRASH_SEED", "0"))


def run(argv: list[str], events: Path, at: int = 0, mode: str = "kill") -> subprocess.CompletedProcess:
    """`mirokit ARGV` in a fresh process that dies at write event `at` (0: never; then `events` holds the count);
    mode "enospc": the write fails with a full disk instead."""
    return subprocess.run([sys.executable, str(RUNNER), str(events), str(at), *argv],
                          env=dict(ENV, CRASH_MODE=mode), capture_output=True, text=True, timeout=600)


RANKS_TIMEOUT_S = 300.0
"""how long the ranks of one run may take together: a rank left waiting for a dead one must stop, not hang"""


def run_ranks(argv: list[str], events: Path, ranks: int, at: int = 0, crash_rank: int = 0,
              mode: str = "kill") -> list[subprocess.CompletedProcess]:
    """`mirokit ARGV` as `ranks` torchrun ranks at once (each with its events file `events.R`); rank `crash_rank`
    fails at its write event `at` (0: none does). A run still going after RANKS_TIMEOUT_S fails the test."""
    from runs import rank_envs

    envs = [dict(env, **ENV, RANK=env["RANK"], LOCAL_RANK=env["LOCAL_RANK"], WORLD_SIZE=str(ranks), CRASH_MODE=mode)
            for env in rank_envs(ranks)]
    procs = [subprocess.Popen([sys.executable, str(RUNNER), f"{events}.{r}", str(at if r == crash_rank else 0), *argv],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r, env in enumerate(envs)]
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=RANKS_TIMEOUT_S)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"a rank still ran {RANKS_TIMEOUT_S:.0f} s after rank {crash_rank} failed at write "
                             f"event {at} (a hang)") from None
    finally:
        for proc in procs:
            proc.kill()
    return done


def _check_survivor(rank: subprocess.CompletedProcess, where: str) -> None:
    """A rank that outlived a failed one finished, or stopped with one line (no traceback)."""
    last = rank.stderr.strip().splitlines()[-1] if rank.stderr.strip() else ""
    ok = rank.returncode == 0 or (rank.returncode != CRASH_EXIT and last.startswith("mirokit ")
                                  and "Traceback" not in rank.stderr)
    assert ok, f"{where}: a surviving rank exited {rank.returncode}\n{rank.stderr[-3000:]}"


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
            return {"metadata": f.metadata(),
                    **{k: f.get_tensor(k).contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                       for k in f.keys()}}
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
    except Exception as err:  # a torn file is a difference to report, not a test error
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
                modes: tuple[str, ...] = ("kill",), ranks: int = 1) -> dict:
    """Run `argv` (which writes into `out`) twice uninterrupted, then for each crash point and mode (kill: as
    `kill -9`; enospc: that write fails, the disk full): fail there, rerun, compare.

    ranks > 1: the command runs as that many torchrun ranks; the crash points are drawn from the write events of
    all ranks together (the rank that writes event k fails there; the others must finish or stop with one line).
    resume_keys: leaf names that may differ after a resume and say so (e.g. a manifest's "skipped_done").
    Returns {"events": total write events, "modes", "points": failures tried, "crashed": runs that failed there,
    "volatile": the leaves two uninterrupted runs disagreed on}.
    """
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events"

    def launch(at: int = 0, rank: int = 0, mode: str = "kill") -> list[subprocess.CompletedProcess]:
        if ranks == 1:
            return [run(argv, events, at, mode)]
        return run_ranks(argv, events, ranks, at, rank, mode)

    def totals() -> list[int]:
        if ranks == 1:
            return [int(events.read_text())]
        return [int(Path(f"{events}.{r}").read_text()) for r in range(ranks)]

    clean = []
    for name in ("clean_a", "clean_b"):
        shutil.rmtree(out, ignore_errors=True)
        for rank in launch():
            assert rank.returncode == 0, rank.stderr[-2000:]
        clean.append(snapshot(out))
        shutil.move(str(out), str(work / name))
    per_rank = totals()
    total = sum(per_rank)
    volatile = set(differences(*clean))
    points = crash_points(total)
    crashed = 0
    for mode in modes:
        for point in points:
            rank, at = _rank_event(point, per_rank)
            where = (f"{mode} at write event {at} of {per_rank[rank]}"
                     + (f" of rank {rank} of {ranks}" if ranks > 1 else ""))
            shutil.rmtree(out, ignore_errors=True)
            results = launch(at, rank, mode)
            _check_failure(results[rank], mode, where)
            for other, result in enumerate(results):
                if other != rank:
                    _check_survivor(result, where)
            crashed += 1
            for result in launch():
                assert result.returncode == 0, f"rerun after a {where}:\n{result.stderr[-2000:]}"
            wrong = [d for d in differences(clean[0], snapshot(out))
                     if d not in volatile and d.rsplit("/", 1)[-1].split("[")[0] not in resume_keys]
            assert not wrong, f"{where}, then the same command: {wrong[:8]}"
    stats = {"events": total, "modes": len(modes), "points": len(points) * len(modes), "crashed": crashed,
             "volatile": sorted(volatile)}
    print(f"crash points: {argv[0]} x{ranks} {' '.join(modes)}: {stats}")  # shown with pytest -s
    return stats


def _rank_event(point: int, per_rank: list[int]) -> tuple[int, int]:
    """The `point`-th write event of all ranks together (1-based, rank 0's first) -> (rank, its event number)."""
    for rank, count in enumerate(per_rank):
        if point <= count:
            return rank, point
        point -= count
    raise ValueError(f"write event {point} beyond the {sum(per_rank)} of the run")
