"""What crosses a module boundary while a sweep runs, typed: a trial's Tune config (searcher -> trial),
the report a trial makes when its training is done (trial -> searcher), and an evaluation's result
(trial backend -> trial and base-model scoring). Tune carries the first two as plain dicts, so each
has a `to_tune` / `from_tune` pair at the two ends; nothing in between reads them by string key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class TrialConfig(BaseModel):
    """One trial as the searcher hands it to Tune: which cell, which Optuna trial, its parameters and
    its training seed (chosen with its key, so a rerun trains and resumes the same run)."""
    model_config = ConfigDict(frozen=True)

    key: str
    model: str          # model label
    method: str
    optuna_number: int
    lr: float
    mix: float
    seed: int

    @property
    def cell(self) -> str:
        return f"{self.model}:{self.method}"

    def to_tune(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_tune(cls, config: dict) -> TrialConfig:
        return cls.model_validate({k: v for k, v in config.items() if k in cls.model_fields})


class TrainedReport(BaseModel):
    """Reported by a trial between its training and its score: its GPUs are free (the searcher's
    admission hands them to the next trial while this one waits for its score)."""
    phase: Literal["trained"] = "trained"
    trial_key: str

    def to_tune(self) -> dict:
        return self.model_dump()

    @staticmethod
    def is_one(result: dict | None) -> bool:
        return bool(result) and result.get("phase") == "trained"


class Evaluation(BaseModel):
    """An evaluation's result: flat summary metrics (`<metric>_se` their standard errors) and, per
    evaluation, its per-item rows (what paired standard errors need)."""
    summary: dict
    rows: dict[str, list[dict]] = {}
