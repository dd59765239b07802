"""The one interface every experiment tracker implements (orchestrator.tracking.mlflow_tracker,
orchestrator.tracking.wandb_tracker). The sweep's Tune callback (orchestrator.tracking.callback) calls
it from the driver process; a tracker never sees Tune or the run directory's layout.

A tracker keeps one run per sweep (the parent) and one run per trial, found again by the trial's key,
so a resumed or rerun trial continues its own run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TrialInfo:
    key: str                 # e.g. smollm2-135m-soft-002: the run's name and how it is found again
    cell: str                # "<model>:<method>": the group (MLflow tag, W&B job_type)
    params: dict             # lr, mix, model, method, seed, optuna_number
    configs: dict = field(default_factory=dict)   # {"training": {...}, "evaluation": {...}} in full


class Tracker:
    """Each method is called once per event; a tracker that fails warns and is dropped by the callback."""
    name = "tracker"

    def open_sweep(self, sweep: str, info: dict) -> None:
        """Start (or find again) the sweep-level parent run."""

    def open_trial(self, trial: TrialInfo) -> None:
        """Start (or find again, by key) the trial's run and log its parameters and configs."""

    def log_step(self, key: str, step: int, metrics: dict[str, float]) -> None:
        """One training step's metrics (loss, tokens_per_s, lr)."""

    def close_trial(self, key: str, summary: dict[str, float], tags: dict[str, str], status: str) -> None:
        """The trial's final numbers (objectives, standard errors, evaluation summary, cost) and tags;
        status: "done", "error" or "interrupted"."""

    def close_sweep(self, summary: dict[str, float], artifacts: list[Path], finished: bool) -> None:
        """The sweep's totals and files (base models' scores, Pareto table, report); `finished`: False
        when it was interrupted (the run stays open for the resume)."""


def flatten(data, prefix: str = "") -> dict[str, str]:
    """A nested config as flat `a.b.c` parameters, values as text (lists and None included)."""
    out = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    out[prefix.rstrip(".")] = "" if data is None else str(data)
    return out


def numbers(data: dict) -> dict[str, float]:
    """The finite numbers of a flat dict (booleans dropped)."""
    import math

    return {k: float(v) for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
