"""The trial record: one JSON file per trial under <run>/trials/, the sweep's source of truth.

Written by the trial (orchestrator.trial) at start and end, read by resume (orchestrator.tuning) and by
orchestrator.results. Unknown keys are ignored on reading, so records written by older versions load.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["running", "done", "error", "interrupted"]


class TrialRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str
    cell: str                       # "<model label>:<method>"
    model: str                      # model label
    model_ref: str = ""
    method: str
    lr: float
    mix: float
    optuna_number: int              # the Optuna trial it ran as (last); a rerun keeps its key
    seed: int | None = None         # the trial's training seed (None in records of older versions)
    model_revision: str | None = None   # what the model was: a hub commit sha or sha256 of a local directory
    code_commit: str | None = None      # the project's git commit ("-dirty" when tracked files differed)
    status: Status = "running"
    started_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    adapter_dir: str | None = None
    train_metrics: dict = {}
    metrics: dict = {}              # the evaluation summary (flat keys; `<metric>_se` standard errors)
    objectives: dict[str, float | None] = {}
    objective_se: dict[str, float | None] = {}
    train_wall_s: float | None = None
    eval_wall_s: float | None = None
    error: str | None = None
    traceback: str | None = None
    # What the trial held (orchestrator.tracking.cost; written by the sweep once the trial ends): GPU- and
    # CPU-seconds while training and while scored, their sums in hours, the planner's estimate of its
    # GPU-hours (`--plan`; None where nothing was planned) and dollars (None where no price is known).
    train_gpu_s: float | None = None
    train_cpu_s: float | None = None
    eval_gpu_s: float | None = None
    eval_cpu_s: float | None = None
    gpu_hours: float | None = None
    cpu_hours: float | None = None
    planned_gpu_hours: float | None = None
    dollars: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error")
