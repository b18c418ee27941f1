"""The studio's job queue: one worker thread runs jobs in arrival order; each job reports progress, a preview of
the current estimate and can be cancelled while queued or running.

A job is a list of `Call`s (requests.plan builds them); the worker runs each through `runner(job, call, on_step)`
(the pipeline call) and collects what it returns. Jobs belong to the client that submitted them: a client sees
only its own (`get(job_id, client)` is None for another client's job).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class Call:
    """One pipeline call of a job: which model, the keyword arguments of `MiroPipeline.__call__` and a label."""

    model: str
    kwargs: dict
    label: str = ""
    cost: int = 1
    """network evaluations x images: what the ETA is estimated from"""
    steps: int = 1
    """ODE steps over every batch of the call: what its progress counts"""
    meta: dict = field(default_factory=dict)
    """what the page needs to place the result (sweep point, grid cell, ...)"""


@dataclass
class Job:
    """A queued request and what became of it."""

    id: str
    client: str
    mode: str
    request: dict
    calls: list[Call]
    status: str = QUEUED
    step: int = 0
    """steps done over every call of the job"""
    total: int = 0
    """steps of every call of the job"""
    results: list[dict] = field(default_factory=list)
    error: str = ""
    preview: bytes | None = None
    """PNG of the current estimate's first image (while running)"""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    order: int = 0
    summary: dict = field(default_factory=dict)
    """what the mode concludes over its results (a sweep's Spearman, ...), set when done"""

    @property
    def cost(self) -> int:
        """Network evaluations x images over every call of the job (what the ETA is estimated from)."""
        return sum(c.cost for c in self.calls)

    def public(self) -> dict:
        """What the page sees of the job (no tensors, no preview bytes)."""
        return {"id": self.id, "mode": self.mode, "status": self.status, "step": self.step, "total": self.total,
                "results": self.results, "error": self.error, "request": self.request,
                "created": self.created, "started": self.started, "finished": self.finished,
                "has_preview": self.preview is not None, "summary": self.summary}


Runner = Callable[[Job, Call, Callable[[int, int, Any], bool]], list[dict]]
"""runner(job, call, on_step) -> result dicts; on_step(step, total, estimate) returns False to cancel"""


class JobQueue:
    """FIFO jobs run by one worker thread; `runner` does the work of one call (see Runner)."""

    def __init__(self, runner: Runner, *, preview: Callable[[Any], bytes] | None,
                 max_queued_per_client: int = 4, keep_finished: int = 200,
                 on_finish: Callable[[Job, str], None] | None = None):
        """runner: runs one call (see Runner); preview(x): PNG bytes of what
        on_step passed as the estimate; on_finish(job, status): called once when a job is done, failed or cancelled,
        before its status changes."""
        self._runner = runner
        self._preview = preview
        self._max_queued = max_queued_per_client
        self._keep = keep_finished
        self._on_finish = on_finish
        self._jobs: dict[str, Job] = {}
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._seconds_per_cost = None  # measured: wall seconds per unit of Call.cost
        self._thread = threading.Thread(target=self._work, name="mirokit-studio-worker", daemon=True)
        self._thread.start()

    # ---- the clients' side -------------------------------------------------------------------------------------
    def submit(self, client: str, mode: str, request: dict, calls: list[Call]) -> Job:
        """Queue a job for `client`; a client with too many unfinished jobs is refused (ValueError)."""
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.client == client and j.status in (QUEUED, RUNNING))
            if waiting >= self._max_queued:
                raise ValueError(f"you already have {waiting} jobs waiting or running (limit {self._max_queued}); "
                                 "wait for one or cancel it")
            job = Job(id=uuid.uuid4().hex[:12], client=client, mode=mode, request=request, calls=calls,
                      total=sum(c.steps for c in calls), order=next(self._counter))
            self._jobs[job.id] = job
            self._forget_old()
        self._pending.put(job.id)
        return job

    def get(self, job_id: str, client: str) -> Job | None:
        """The job, if it exists and belongs to `client`."""
        job = self._jobs.get(job_id)
        return job if job is not None and job.client == client else None

    def cancel(self, job_id: str, client: str) -> Job | None:
        """Cancel a queued job at once, a running one at its next step; None if not the client's job."""
        with self._lock:
            job = self.get(job_id, client)
            if job is None:
                return None
            if job.status == QUEUED:
                self._finish(job, CANCELLED)
            elif job.status == RUNNING:
                job.cancel_requested = True
            return job

    def position(self, job: Job) -> int:
        """Jobs ahead of `job` in the queue (0 = next or running)."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status in (QUEUED, RUNNING) and j.order < job.order)

    def eta_seconds(self, job: Job) -> float | None:
        """Estimated seconds until `job` finishes (None before the first job has been timed)."""
        if self._seconds_per_cost is None or job.status in FINISHED:
            return None
        with self._lock:
            ahead = [j for j in self._jobs.values() if j.status in (QUEUED, RUNNING) and j.order <= job.order]
        left = 0.0
        for j in ahead:
            done = j.step / j.total if j.total else 0.0
            left += j.cost * (1.0 - done)
        return left * self._seconds_per_cost

    def status(self, job: Job) -> dict:
        """The job as the page polls it: its public fields, queue position and ETA."""
        out = job.public()
        out["position"] = self.position(job) if job.status == QUEUED else 0
        eta = self.eta_seconds(job)
        out["eta_seconds"] = None if eta is None else round(eta, 1)
        return out

    def idle(self) -> bool:
        """No job queued or running."""
        return all(j.status in FINISHED for j in self._jobs.values())

    # ---- the worker --------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._pending.get()
            if job_id is None:
                return
            job = self._jobs.get(job_id)
            if job is None or job.status != QUEUED:
                continue
            with self._lock:
                job.status, job.started = RUNNING, time.time()
            self._run(job)

    def _run(self, job: Job) -> None:
        done_before = 0
        last_preview = [0.0]

        def on_step(step: int, total: int, estimate) -> bool:
            job.step = done_before + step
            if self._preview is not None and estimate is not None and time.time() - last_preview[0] > 0.3:
                last_preview[0] = time.time()
                job.preview = self._preview(estimate)
            return not job.cancel_requested

        start = time.perf_counter()
        try:
            for call in job.calls:
                if job.cancel_requested:
                    break
                job.results.extend(self._runner(job, call, on_step))
                done_before += call.steps
                job.step = done_before
        except Exception as err:  # every failure is shown on the page as one line
            from mirokit.sampling import SamplingCancelled

            if isinstance(err, SamplingCancelled) or job.cancel_requested:
                self._finish(job, CANCELLED)
            else:
                job.error = _first_line(err)
                self._finish(job, FAILED)
            return
        self._finish(job, CANCELLED if job.cancel_requested else DONE)
        seconds = (time.perf_counter() - start) / max(job.cost, 1)
        self._seconds_per_cost = seconds if self._seconds_per_cost is None else \
            0.7 * self._seconds_per_cost + 0.3 * seconds

    def _finish(self, job: Job, status: str) -> None:
        """Run on_finish (the history, the summary), then publish the status: a poller that sees "done" sees all."""
        job.finished, job.preview = time.time(), None
        if self._on_finish is not None:
            try:
                self._on_finish(job, status)
            except Exception as err:
                job.error = f"could not save to the history: {_first_line(err)}"
        job.status = status

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.status in FINISHED), key=lambda j: j.order)
        for job in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job.id]

    def close(self) -> None:
        """Stop the worker after the job it is running (queued jobs are dropped)."""
        self._pending.put(None)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
