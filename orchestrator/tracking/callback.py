"""The sweep's side of tracking: a Tune callback (Train V2's RunConfig takes no Tune logger callbacks,
ray#64179, but every training report reaches Tune through trainers.run.progress_callbacks) that opens a
tracker run per trial, logs each training step, writes the trial's cost into its record when it ends and
closes its run with its objectives; and the sweep-level run, closed with the report as artifacts."""

from __future__ import annotations

import math
import warnings

from ray.tune import Callback

from orchestrator.tracking.base import Tracker, TrialInfo
from orchestrator.tracking.cost import COST_FIELDS, SweepCosts

STEP_METRICS = {"loss": "loss", "tokens_per_s": "tokens_per_s", "lr": "lr"}


class SweepTracking:
    """The trackers of one sweep run plus the costing every trial record gets (with or without trackers)."""

    def __init__(self, trackers: list[Tracker], store, parts, costs: SweepCosts):
        self.trackers, self.store, self.parts, self.costs = list(trackers), store, parts, costs

    def _each(self, what: str, *args) -> None:
        for t in list(self.trackers):
            try:
                getattr(t, what)(*args)
            except Exception as err:   # a tracker must never stop the sweep
                warnings.warn(f"{t.name}: {what} failed ({type(err).__name__}: {err}); the sweep goes on",
                              stacklevel=2)
                if what == "open_sweep":
                    self.trackers.remove(t)

    def open_sweep(self, info: dict) -> None:
        self._each("open_sweep", self.parts.study.name, info)

    def trial_started(self, config: dict, model_path: str | None = None) -> None:
        from orchestrator.messages import TrialConfig

        if not self.trackers:
            return
        trial = TrialConfig.from_tune(config)
        self._each("open_trial", TrialInfo(key=trial.key, cell=trial.cell, params=dict(
            lr=trial.lr, mix=trial.mix, model=trial.model, model_ref=self.parts.trials.model_refs[trial.model],
            method=trial.method, seed=trial.seed, optuna_number=trial.optuna_number), configs=self.configs(trial)))

    def configs(self, trial) -> dict:
        settings = self.parts.trials
        training = settings.training[trial.cell].model_copy(update={"lr": trial.lr, "mix": trial.mix,
                                                                     "seed": trial.seed})
        return {"training": training.model_dump(mode="json"),
                "evaluation": {**settings.evaluation.model_dump(mode="json"),
                               "scorer": settings.scorers[trial.model].model_dump(mode="json")}}

    def step(self, key: str, result: dict) -> None:
        metrics = {name: result[k] for k, name in STEP_METRICS.items() if isinstance(result.get(k), (int, float))}
        if self.trackers and metrics:
            self._each("log_step", key, int(result["step"]), metrics)

    def trial_ended(self, key: str) -> None:
        """Write the trial's cost into its record and close its tracker runs."""
        record = self.store.read_trial(key)
        if record is None:
            return
        if record.status in ("done", "error"):
            record = record.model_copy(update=self.costs.of(record))
            self.store.write_trial(record)
        summary = {**record.objectives, **{f"{k}_se": v for k, v in record.objective_se.items()},
                   **record.metrics, **{f"train/{k}": v for k, v in record.train_metrics.items()},
                   **{k: getattr(record, k) for k in COST_FIELDS}, "train_wall_s": record.train_wall_s,
                   "eval_wall_s": record.eval_wall_s}
        summary = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        self._each("close_trial", key, summary, {"adapter_dir": record.adapter_dir, "status": record.status,
                                                 "error": (record.error or "")[:500] or None}, record.status)

    def close_sweep(self, finished: bool) -> None:
        if not self.trackers:
            return
        root = self.store.root
        summary = {}
        records = self.store.trial_records()
        for k in ("gpu_hours", "cpu_hours", "planned_gpu_hours", "dollars"):
            values = [getattr(r, k) for r in records if getattr(r, k) is not None]
            if values:
                summary[f"total_{k}"] = sum(values)
        summary["trials_done"] = sum(r.status == "done" for r in records)
        for label, entry in self.store.baselines().items():
            for metric, v in (entry.get("metrics") or {}).items():
                if isinstance(v, (int, float)):
                    summary[f"base/{label}/{metric}"] = v
        artifacts = [root / "baselines.json", root / "pareto" / "pareto.csv", root / "pareto" / "trials.csv",
                     root / "pareto" / "index.html"]
        self._each("close_sweep", summary, artifacts, finished)


def sweep_info(spec) -> dict:
    """What the sweep's parent run holds as parameters."""
    return {"sweep": spec.name, "cells": ", ".join(f"{m.label}:{method}" for m, method in spec.cells),
            "trials_per_cell": spec.trials_per_cell, "objectives": ", ".join(o.name for o in spec.objectives),
            "search": spec.search.model_dump(mode="json"), "seed": spec.seed,
            "budget": spec.budget.model_dump(mode="json") if spec.budget else None}


class TrackingCallback(Callback):
    def __init__(self, tracking: SweepTracking):
        self.tracking = tracking

    def on_trial_start(self, iteration, trials, trial, **info):
        if (trial.config or {}).get("key"):
            self.tracking.trial_started(trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        key = (trial.config or {}).get("key")
        if key and "step" in result and "total_steps" in result and "loss" in result:
            self.tracking.step(key, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)

    def _ended(self, trial):
        key = (trial.config or {}).get("key")
        if key:
            try:
                self.tracking.trial_ended(key)
            except Exception as err:
                warnings.warn(f"costing/tracking trial {key} failed ({type(err).__name__}: {err})", stacklevel=2)


def open_tracking(spec, store, parts, plan=None) -> SweepTracking:
    """The sweep's trackers, its parent runs opened; `plan` (set later by orchestrator.tuning, once Ray is
    joined and the cluster known) prices the trials and gives the planner's estimates."""
    from orchestrator.tracking import open_trackers

    tracking = SweepTracking(open_trackers(spec, store.root), store, parts, SweepCosts(parts, plan))
    tracking.open_sweep(sweep_info(spec))
    return tracking


__all__ = ["SweepTracking", "TrackingCallback", "open_tracking", "sweep_info"]
