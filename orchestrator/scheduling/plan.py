"""The Plan: where each cell's training and scoring land on the cluster at its largest, whether they
fit, the GPUs each node type's trials may hold (their budgets), the concurrency and the GPU-hours.
`--plan` prints it (`--json`: `Plan.to_json()`), the sweep sizes Tune's concurrency by it and the
searcher's admission reads its cells' loads and budgets. Numbers are kept as computed (an int stays an
int), so the JSON reads as it always has."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Number = int | float


class _Row(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class NodeTypeRow(_Row):
    name: str
    instance_type: str
    count: int
    gpus: int
    gpu: str | None
    gpu_gib: Number | None
    cpus: Number | None
    source: str
    summary: str


class ModelSize(_Row):
    params_b: Number
    source: str


class ScorerPlan(_Row):
    """One model's scorer app: its replicas, where they land, and what stops them (problem)."""
    model: str
    replicas: int
    shape: str
    node_type: str | None
    gib_per_gpu: Number | None
    estimate_gib: dict[str, Number]
    problem: str | None
    gpus: Number                  # all its replicas'
    replica_gpus: Number          # one replica's (all its tensor-parallel ranks)
    scales_to_zero: bool


class TrainingPlacement(_Row):
    shape: str
    node_type: str | None
    gib_per_gpu: Number | None
    gpu_gib: Number | None
    estimate_gib: dict[str, Number]


class ScoringPlacement(_Row):
    shape: str
    node_type: str | None
    gib_per_gpu: Number | None
    replica_gpus: Number


class CellPlan(_Row):
    cell: str
    model: str
    method: str
    trials: int
    training: TrainingPlacement
    scoring: ScoringPlacement
    training_gpus: Number         # GPUs one trial trains on
    fits: bool
    problem: str | None
    gpu_hours_per_trial: Number | None
    hours_per_trial: Number | None


class GpuBudget(_Row):
    """The GPUs a node type's trials may hold at once (the searcher's admission keeps them within it)."""
    trial_gpus: Number
    trial_gpus_once_scored: Number   # once the cells in reserved_for have no trial left to run or score
    reserved_for_scorers: Number
    reserved_for: list[str]
    useful_gpus: Number | None


class Unplaceable(_Row):
    cell: str
    model: str
    reason: str


class GpuHours(_Row):
    training: Number
    scoring: Number
    total: Number
    sweep_hours: Number
    scorer_gpus: Number
    cells_not_costed: list[str]


class Plan(_Row):
    spec: str
    cluster: str
    node_types: list[NodeTypeRow]
    models: dict[str, ModelSize | None]
    scorers: list[ScorerPlan]
    cells: list[CellPlan]
    max_concurrent_trials: int
    cluster_holds_trials: int
    concurrency_from: str
    budgets: dict[str, GpuBudget] = Field(alias="pools")   # `pools` in the JSON, as it always was
    unplaceable: list[Unplaceable]
    gpu_hours: GpuHours
    warnings: list[str]
    assumptions: dict[str, Number | str]

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def cell(self, name: str) -> CellPlan:
        return next(c for c in self.cells if c.cell == name)
