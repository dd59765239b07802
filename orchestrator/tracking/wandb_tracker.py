"""Weights & Biases: one run per trial whose id is derived from the sweep and the trial key, opened with
resume="allow" (a resumed or rerun trial continues its run), group = the sweep, job_type = the cell;
one run per sweep (job_type "sweep") holds the totals and the files. Training steps are logged against
their own `train/step` axis, so a trial resumed from an earlier checkpoint logs its steps again
without W&B dropping them as out of order."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from orchestrator.tracking.base import Tracker, TrialInfo, numbers


def run_id(sweep: str, key: str) -> str:
    """A W&B run id (letters, digits, - and _; at most 64 characters) that only this key of this sweep has."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{sweep}-{key}")
    if len(text) > 64:
        text = text[:55] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return text


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, project: str, entity: str | None, mode: str, group: str | None, directory: str | None = None):
        import wandb

        self.wandb = wandb
        self.settings = dict(project=project, entity=entity, mode=mode, dir=directory)
        self.group = group
        self.sweep = ""
        self.parent = None
        self.runs: dict = {}

    def _init(self, rid: str, name: str, job_type: str, config: dict):
        return self.wandb.init(id=rid, name=name, group=self.group or self.sweep, job_type=job_type,
                               config=config, resume="allow", reinit="create_new",
                               **{k: v for k, v in self.settings.items() if v is not None})

    def open_sweep(self, sweep: str, info: dict) -> None:
        self.sweep = sweep
        self.parent = self._init(run_id(sweep, "sweep"), sweep, "sweep", info)

    def open_trial(self, trial: TrialInfo) -> None:
        run = self._init(run_id(self.sweep, trial.key), trial.key, trial.cell.replace(":", "-"),
                         {**trial.params, **trial.configs, "cell": trial.cell, "trial_key": trial.key})
        run.define_metric("train/step")
        run.define_metric("train/*", step_metric="train/step")
        self.runs[trial.key] = run

    def log_step(self, key: str, step: int, metrics: dict[str, float]) -> None:
        run = self.runs.get(key)
        if run is not None:
            run.log({"train/step": step, **{f"train/{k}": v for k, v in numbers(metrics).items()}})

    def close_trial(self, key: str, summary: dict[str, float], tags: dict[str, str], status: str) -> None:
        run = self.runs.pop(key, None)
        if run is None:
            return
        for k, v in numbers(summary).items():
            run.summary[k] = v
        for k, v in tags.items():
            if v is not None:
                run.summary[k] = str(v)
        run.tags = tuple(sorted(set(run.tags or ()) | {status}))
        run.finish(exit_code=0 if status == "done" else 1)

    def close_sweep(self, summary: dict[str, float], artifacts: list[Path], finished: bool) -> None:
        for key in list(self.runs):
            self.close_trial(key, {}, {}, "interrupted")
        if self.parent is None:
            return
        for k, v in numbers(summary).items():
            self.parent.summary[k] = v
        files = [p for p in artifacts if p.is_file()]
        if files:
            artifact = self.wandb.Artifact(run_id(self.sweep, "results"), type="sweep-results")
            for p in files:
                artifact.add_file(str(p))
            self.parent.log_artifact(artifact)
        self.parent.finish(exit_code=0 if finished else 1)
        self.parent = None
