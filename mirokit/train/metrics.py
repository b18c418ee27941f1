"""Append-only JSONL metrics (the source of truth for plots) mirrored to TensorBoard and to optional mirrors
(Weights & Biases: mirokit.train.reporting).

One line per `log` call: `{"step": 120, "time": 1718000000.0, "loss": 0.41, ...}`.  The file is
opened in append mode and flushed after every line, so a crash loses at most the line being
written and a resumed run continues the same file after `truncate_after(resume_step)`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mirokit.atomic import SOLE_WRITER, write_atomic

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
_RESERVED = ("step", "time")


def _summary_writer_cls() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed (an extra): JSONL only, said once
        print("note: tensorboard is not installed, so this run's metrics go to metrics.jsonl only "
              "(pip install 'mirokit[tensorboard]', or train.report_to=[jsonl] to silence this)", flush=True)
        return None
    return SummaryWriter


def _to_number(key: str, value: Any) -> float | int:
    if hasattr(value, "item"):  # torch / numpy scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}")
    return value


class Mirror(Protocol):
    """Another place the metrics go (e.g. `reporting.WandbReporter`), fed by MetricsLogger after the JSONL."""

    def log(self, step: int, values: dict[str, float | int]) -> None:
        """Send the scalar metrics `values` of step `step`."""

    def log_image(self, step: int, name: str, image) -> None:
        """Send an (H, W, 3) uint8 `image` under `name` at step `step`."""

    def skip_through(self, step: int) -> None:
        """Steps <= `step` were already sent by an earlier start of the run: do not send them again."""

    def close(self, exit_code: int = 0) -> None:
        """End the mirror's run; a non-zero `exit_code` marks it failed."""


class MetricsLogger:
    """Write metrics to `out_dir/metrics.jsonl` and `out_dir/tensorboard/` (and to `mirrors`).

    Args:
        out_dir: run folder (created if needed).
        enabled: False on non-zero ranks: every method is then a no-op and nothing is created.
        tensorboard: also write TensorBoard scalars (skipped, with a printed note, if tensorboard is missing).
        mirrors: further destinations (see `Mirror`), closed with the logger; ignored when not enabled.
    """

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 mirrors: Sequence[Mirror] = ()) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / METRICS_FILE
        self.enabled = enabled
        self.mirrors = list(mirrors) if enabled else []
        self._file = None
        self._writer = None
        self._tb_cls = _summary_writer_cls() if (enabled and tensorboard) else None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        if self._tb_cls is not None:
            self._writer = self._tb_cls(log_dir=str(self.out_dir / TENSORBOARD_DIR))

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Append one line `{"step", "time", **values}`; values must be numbers or 0-d tensors."""
        if not self.enabled:
            return
        bad = [k for k in _RESERVED if k in values]
        if bad:
            raise ValueError(f"metric names {bad} are reserved")
        numbers = {k: _to_number(k, v) for k, v in values.items()}
        record = {"step": int(step), "time": time.time(), **numbers}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in numbers.items():
                if math.isfinite(value):
                    self._writer.add_scalar(key, value, int(step))
        for mirror in self.mirrors:
            mirror.log(int(step), numbers)

    def log_image(self, step: int, name: str, image) -> None:
        """Add an (H, W, 3) uint8 image to TensorBoard and the mirrors under `name` (the PNG itself is the caller's
        to save)."""
        if self._writer is not None:
            self._writer.add_image(name, image, int(step), dataformats="HWC")
        for mirror in self.mirrors:
            mirror.log_image(int(step), name, image)

    def truncate_after(self, step: int) -> None:
        """Drop JSONL lines with step > `step` (and a torn last line); hide later TB events; tell the mirrors the
        last step logged before (they cannot take steps back: they skip up to it).

        Call once when resuming from the checkpoint taken at `step`, before logging again.
        """
        if not self.enabled:
            return
        self._file.close()
        lines = _read_lines(self.path)
        for mirror in self.mirrors:
            mirror.skip_through(max((record["step"] for _, record in lines), default=-1))
        kept = [line for line in lines if line[1]["step"] <= step]
        write_atomic(self.path, "".join(raw + "\n" for raw, _ in kept), SOLE_WRITER)  # the old file or the new
        self._file = open(self.path, "a", encoding="utf-8")
        if self._writer is not None:
            # purge_step makes TensorBoard discard events at steps >= purge_step from older files.
            self._writer.close()
            self._writer = self._tb_cls(log_dir=str(self.out_dir / TENSORBOARD_DIR), purge_step=step + 1)

    def close(self, exit_code: int = 0) -> None:
        """Flush and close the JSONL file, the TensorBoard writer and the mirrors (safe to call twice); a non-zero
        `exit_code` marks a failed run where the mirror knows the difference (W&B)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        mirrors, self.mirrors = self.mirrors, []
        for mirror in mirrors:
            mirror.close(exit_code)

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(0 if exc_type is None else 1)


def _read_lines(path: Path) -> list[tuple[str, dict]]:
    """(raw line, record) pairs; a malformed *last* line (torn write) is dropped, others raise."""
    if not path.is_file():
        return []
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
        out.append((line, record))
    return out


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a metrics.jsonl file (or of `path/metrics.jsonl` for a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    return [record for _, record in _read_lines(path)]
