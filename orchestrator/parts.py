"""The spec cut into the slices its parts read, once, at the top of the sweep: scheduling reads a
SweepDemand, the scorer apps their ScorerSetups, the Tune experiment its StudySettings and each trial
its TrialSettings. Every override (a model's, a method's) is merged in here, so no part below needs
the whole SweepSpec or knows how it nests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cft.prompts import ChatOptions
from evaluators.settings import EvalSettings, EvaluationConfig
from orchestrator.cells import Cell, cell_name
from orchestrator.scheduling.demand import CellDemand, ModelDemand, SweepDemand
from orchestrator.spec import Objective, Range, SweepSpec
from trainers.config import TrainConfig


class _Slice(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class ScorerSetup(_Slice):
    """One model's scorer app."""
    label: str
    ref: str
    chat: ChatOptions
    engine: EvaluationConfig     # the sweep's evaluation section with the model's scorer overrides
    max_lora_rank: int           # at least the largest LoRA rank any of its cells trains
    app_name: str


class TrialSettings(_Slice):
    """What a trial reads: its cell's training, the evaluation, the objectives, its model's scorer."""
    objectives: list[Objective]
    evaluation: EvalSettings                 # what to evaluate (the sweep's seed set)
    training: dict[str, TrainConfig]         # cell name -> its TrainConfig (method and chat set)
    model_refs: dict[str, str]               # model label -> ref (the records name it)
    scorers: dict[str, EvaluationConfig]     # model label -> its scorer's settings
    seed: int


class StudySettings(_Slice):
    """What the Tune experiment and its searcher read."""
    name: str
    cells: list[Cell]
    objectives: list[Objective]
    sampler: str
    seed: int
    trials_per_cell: int
    lr: Range
    mix: Range
    optuna_storage: str | None
    model_refs: dict[str, str]


class SweepParts(_Slice):
    demand: SweepDemand
    scorers: list[ScorerSetup]
    study: StudySettings
    trials: TrialSettings

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.study.objectives]


def slice_spec(spec: SweepSpec) -> SweepParts:
    return SweepParts(demand=demand_of(spec), scorers=scorer_setups(spec), study=study_settings(spec),
                      trials=trial_settings(spec))


def largest_lora_rank(spec: SweepSpec, label: str) -> int:
    """The largest LoRA rank any of the model's cells trains (per-model and per-method overrides)."""
    return max(spec.training_for(label, method).lora_r for method in spec.methods)


def demand_of(spec: SweepSpec) -> SweepDemand:
    models = [ModelDemand(label=m.label, ref=m.ref, scorer=spec.evaluation_for(m.label),
                          lora_rank=largest_lora_rank(spec, m.label)) for m in spec.models]
    cells = [CellDemand(name=cell_name(m.label, method), model=m.label, method=method,
                        training=spec.training_for(m.label, method).model_copy(update={"method": method}))
             for m, method in spec.cells]
    return SweepDemand(name=spec.name, models=models, cells=cells, trials_per_cell=spec.trials_per_cell,
                       max_concurrent_trials=spec.max_concurrent_trials,
                       mix_mid=(spec.search.mix.low + spec.search.mix.high) / 2, training=spec.training)


def scorer_setups(spec: SweepSpec) -> list[ScorerSetup]:
    out = []
    for m in spec.models:
        engine = spec.evaluation_for(m.label)
        out.append(ScorerSetup(label=m.label, ref=m.ref, chat=m.chat, engine=engine,
                               max_lora_rank=max(engine.max_lora_rank, largest_lora_rank(spec, m.label)),
                               app_name=f"cft-{spec.name}-{m.label}"))
    return out


def trial_settings(spec: SweepSpec) -> TrialSettings:
    training = {cell_name(m.label, method): spec.training_for(m.label, method).model_copy(
        update={"method": method, "chat": m.chat}) for m, method in spec.cells}
    return TrialSettings(objectives=spec.objectives, training=training,
                         evaluation=spec.evaluation.eval_settings().model_copy(update={"seed": spec.seed}),
                         model_refs={m.label: m.ref for m in spec.models},
                         scorers={m.label: spec.evaluation_for(m.label) for m in spec.models}, seed=spec.seed)


def study_settings(spec: SweepSpec) -> StudySettings:
    return StudySettings(name=spec.name, cells=[Cell(m.label, method) for m, method in spec.cells],
                         objectives=spec.objectives, sampler=spec.search.sampler, seed=spec.seed,
                         trials_per_cell=spec.trials_per_cell, lr=spec.search.lr, mix=spec.search.mix,
                         optuna_storage=spec.optuna_storage, model_refs={m.label: m.ref for m in spec.models})
