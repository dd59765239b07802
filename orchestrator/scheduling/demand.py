"""The sweep as scheduling sees it: its models' scorer settings and its cells' training settings, with
every override merged in (orchestrator.parts cuts it from the spec). Scheduling reads nothing else."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from evaluators.settings import EngineOptions
from trainers.config import TrainConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class ModelDemand(_Frozen):
    """One model's scorer app: its replicas' settings, and the largest LoRA rank its cells train."""
    label: str
    ref: str
    scorer: EngineOptions
    lora_rank: int


class CellDemand(_Frozen):
    """One cell's trial training (the spec's, the model's and the method's settings)."""
    name: str
    model: str
    method: str
    training: TrainConfig


class SweepDemand(_Frozen):
    name: str
    models: list[ModelDemand]
    cells: list[CellDemand]
    trials_per_cell: int
    max_concurrent_trials: int | None
    mix_mid: float          # the middle of the searched mix range: the cost model's trial
    training: TrainConfig   # the sweep-wide training section (the embedded cluster's sizing)

    def model(self, label: str) -> ModelDemand:
        return next(m for m in self.models if m.label == label)
