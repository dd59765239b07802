"""The sweep spec's `tracking:` and `budget:` sections (orchestrator.spec embeds them): experiment
trackers to write to (orchestrator.tracking) and what the sweep may spend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """A spec section: unknown keys and non-finite numbers are errors."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MlflowTracking(Strict):
    """One MLflow run per trial, nested under one run per sweep (orchestrator.tracking)."""
    tracking_uri: str | None = Field(None, description="e.g. file:///abs/mlruns, sqlite:///mlflow.db, "
                                     "http://host:5000; default: <run dir>/mlruns")
    experiment: str | None = Field(None, description="default: the sweep's name")
    artifact_location: str | None = Field(None, description="where a new experiment keeps its files; default: "
                                          "<run dir>/mlartifacts for a local store (sqlite:, file:), the "
                                          "server's for a tracking server")


class WandbTracking(Strict):
    """One W&B run per trial (its id derived from the trial key), grouped by the sweep, job_type = cell."""
    project: str = "cft-sweep"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] = "online"
    group: str | None = Field(None, description="default: the sweep's name")


class TrackingSpec(Strict):
    """Experiment trackers the sweep writes to; both off unless named."""
    mlflow: MlflowTracking | None = None
    wandb: WandbTracking | None = None


class BudgetSpec(Strict):
    """What the sweep may spend: it starts no trial whose planned cost would cross either limit."""
    gpu_hours: float | None = Field(None, gt=0)
    cpu_hours: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self):
        if self.gpu_hours is None and self.cpu_hours is None:
            raise ValueError("give gpu_hours or cpu_hours")
        return self

    def describe(self) -> str:
        return " and ".join(f"{v:g} {unit}" for unit, v in
                            (("GPU-hours", self.gpu_hours), ("CPU-hours", self.cpu_hours)) if v is not None)
