"""Where training reports (`train.report_to`): metrics.jsonl (always: the run's record), TensorBoard, Weights & Biases.

W&B is an optional extra (`pip install 'mirokit[wandb]'`), imported only when a run asks for it, and only rank 0
reports. The W&B run id is chosen at the first start and written at once to OUT/wandb_run.json (atomically), and
every checkpoint keeps it in its state, so a resumed run, even one killed before its first checkpoint, continues
the same W&B run (`wandb.init(id=..., resume="allow")`). W&B's history only grows: after a resume the steps up to
the highest one already sent (`logged_through` in that file: the larger of its value and the last step of
metrics.jsonl before the resume cut it back) are not sent again; the JSONL gets them again, W&B keeps the first
values (which an exact resume reproduces, but for timings).
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirokit.atomic import write_json_atomic
from mirokit.config import to_dict
from mirokit.train.config import RunConfig
from mirokit.train.metrics import MetricsLogger

WANDB_RUN_FILE = "wandb_run.json"
"""OUT/wandb_run.json: {"id": W&B run id, "logged_through": last step already sent to W&B}."""
DEFAULT_WANDB_PROJECT = "mirokit"
"""The W&B project when neither train.wandb_project nor WANDB_PROJECT names one."""


def import_wandb() -> Any:
    """The wandb module, or a one-line RuntimeError saying how to install it."""
    try:
        import wandb
    except ImportError:
        raise RuntimeError("train.report_to has wandb but wandb is not installed: "
                           "pip install 'mirokit[wandb]'") from None
    return wandb


def new_run_id() -> str:
    """A fresh W&B run id: 8 random base-36 characters (what wandb itself generates)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def read_wandb_run(out_dir: str | Path) -> dict:
    """The run folder's OUT/wandb_run.json ({} when there is none); a damaged one is a one-line ValueError."""
    path = Path(out_dir) / WANDB_RUN_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]):
            raise ValueError
        int(data.get("logged_through", -1))
    except (ValueError, TypeError):
        raise ValueError(f"{path} is damaged (expected {{\"id\": ..., \"logged_through\": N}}); delete it to "
                         "start a new W&B run") from None
    return data


class WandbReporter:
    """One W&B run fed by a MetricsLogger (a `metrics.Mirror`): scalars at their step, images as wandb.Image.

    Args:
        out_dir: the run folder (its wandb_run.json; W&B's local files go to OUT/wandb/ unless WANDB_DIR is set).
        config: the W&B run config (the resolved RunConfig as a dict).
        project, name: the W&B project and run name (entity: WANDB_ENTITY or the account's default).
        run_id: the id kept in the resumed checkpoint, if any; else the one in wandb_run.json, else a new one.
        import_module: returns the wandb module (`import_wandb`; replaceable to test the missing-package error).
    """

    def __init__(self, out_dir: str | Path, *, config: dict, project: str, name: str, run_id: str | None = None,
                 import_module: Callable[[], Any] = import_wandb) -> None:
        self.wandb = import_module()
        self.out_dir = Path(out_dir)
        stored = read_wandb_run(self.out_dir)
        self.id = run_id or stored.get("id") or new_run_id()
        self.logged_through = int(stored.get("logged_through", -1)) if stored.get("id") == self.id else -1
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._save()  # before wandb.init: a run killed at any later moment resumes into this id
        self.run = self.wandb.init(project=project, name=name, id=self.id, resume="allow", config=config,
                                   dir=os.environ.get("WANDB_DIR") or str(self.out_dir))

    def _save(self) -> None:
        write_json_atomic(self.out_dir / WANDB_RUN_FILE, {"id": self.id, "logged_through": self.logged_through},
                          indent=None)

    def log(self, step: int, values: dict[str, float | int]) -> None:
        """Send the scalars of `step` (unless an earlier start of the run already sent that step)."""
        if self.run is not None and step > self.logged_through:
            self.run.log(dict(values), step=step)

    def log_image(self, step: int, name: str, image) -> None:
        """Send an (H, W, 3) uint8 image as a wandb.Image under `name` at `step`."""
        if self.run is not None and step > self.logged_through:
            self.run.log({name: self.wandb.Image(image, caption=f"step {step}")}, step=step)

    def skip_through(self, step: int) -> None:
        """Never send steps <= `step` (already sent before a resume); kept in wandb_run.json for later resumes."""
        if step > self.logged_through:
            self.logged_through = step
            self._save()

    def close(self, exit_code: int = 0) -> None:
        """Finish the W&B run and, unless another W&B run is open in this process, end wandb's service process
        (which is when its files are complete: offline, `finish` alone may return before the .wandb file is
        written); safe to call twice."""
        run, self.run = self.run, None
        if run is not None:
            run.finish(exit_code=exit_code)
            if self.wandb.run is None:
                self.wandb.teardown()


def open_metrics(cfg: RunConfig, *, enabled: bool, wandb_id: str | None = None,
                 import_module: Callable[[], Any] = import_wandb) -> MetricsLogger:
    """The MetricsLogger of a run: metrics.jsonl, plus TensorBoard and W&B as `cfg.train.report_to` asks (nothing on
    ranks where `enabled` is False). `wandb_id`: the W&B run id kept in the checkpoint being resumed."""
    tc = cfg.train
    mirrors = []
    if enabled and "wandb" in tc.report_to:
        project = tc.wandb_project or os.environ.get("WANDB_PROJECT") or DEFAULT_WANDB_PROJECT
        name = tc.wandb_run_name or Path(cfg.out_dir).resolve().name
        mirrors.append(WandbReporter(cfg.out_dir, config=to_dict(cfg), project=project, name=name, run_id=wandb_id,
                                     import_module=import_module))
    try:
        return MetricsLogger(cfg.out_dir, enabled=enabled, tensorboard="tensorboard" in tc.report_to, mirrors=mirrors)
    except BaseException:
        for mirror in mirrors:
            mirror.close(1)
        raise


def wandb_run_id(metrics: MetricsLogger) -> str | None:
    """The id of the W&B run `metrics` reports to, or None."""
    return next((m.id for m in metrics.mirrors if isinstance(m, WandbReporter)), None)
