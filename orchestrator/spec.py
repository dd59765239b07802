"""Sweep specs (YAML in sweeps/), validated with typed models before any cluster work.

Every invalid field is reported with its path and reason, e.g.
    search.lr: low (0.1) must be < high (0.001)
    models.0.ref: model path './nope' does not exist
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cft.families import FAMILIES
from cft.splits import SPLITS
from models.resolve import ALIASES, looks_like_path

# Objectives a spec can optimise: name -> (summary metric it reads, natural direction).
# capability_loss = base model's arithmetic accuracy - the tuned model's (flexible match).
OBJECTIVES = {
    "calibration_error": ("fidelity/tv", "min"),
    "calibration_w1": ("fidelity/w1_rel", "min"),
    "calibration_kl": ("fidelity/kl", "min"),
    "off_support_mass": ("fidelity/off_support_mass", "min"),
    "sampled_w1": ("sampled/w1", "min"),
    "capability_loss": ("arithmetic/flexible_acc", "min"),
    "capability_loss_strict": ("arithmetic/strict_acc", "min"),
}
EVALS = ("fidelity", "sampled", "arithmetic", "openrandom", "mcq")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(Strict):
    ref: str = Field(min_length=1, description="alias (tiny, smollm2-135m-instruct), local path or hub id")
    name: str | None = Field(None, description="short name used in results; default derived from ref")
    chat: dict = Field(default_factory=dict, description="cft.prompts.ChatOptions fields")
    training: dict = Field(default_factory=dict, description="overrides of the sweep's training fields")

    @field_validator("ref")
    @classmethod
    def _local_path_exists(cls, ref: str) -> str:
        if ref not in ALIASES and looks_like_path(ref) and not Path(ref).expanduser().is_dir():
            raise ValueError(f"model path {ref!r} does not exist")
        return ref

    @field_validator("chat")
    @classmethod
    def _chat_fields(cls, chat: dict) -> dict:
        known = {"use_chat_template", "enable_thinking", "system_prompt", "template_kwargs"}
        unknown = sorted(set(chat) - known)
        if unknown:
            raise ValueError(f"unknown chat option(s) {unknown}; known: {sorted(known)}")
        return chat

    @field_validator("training")
    @classmethod
    def _training_overrides(cls, overrides: dict) -> dict:
        try:
            TrainingSpec.model_validate(overrides)  # every field has a default, so a partial one checks
        except ValidationError as err:
            raise ValueError("; ".join(line.strip() for line in _format(err).splitlines())) from None
        return overrides

    @property
    def label(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(self.ref).name or self.ref).strip("-")


class Range(Strict):
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0 (got {self.low})")
        return self


class SearchSpec(Strict):
    lr: Range = Range(low=1e-5, high=1e-3, log=True)
    mix: Range = Range(low=0.0, high=0.9)
    sampler: Literal["tpe", "random", "grid"] = "tpe"

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, r: Range) -> Range:
        if r.low <= 0:
            raise ValueError(f"learning rates must be > 0 (low is {r.low})")
        return r

    @field_validator("mix")
    @classmethod
    def _mix_fraction(cls, r: Range) -> Range:
        if r.low < 0 or r.high >= 1:
            raise ValueError(f"mix must lie in [0, 1) (got [{r.low}, {r.high}])")
        return r


class Objective(Strict):
    name: str
    direction: Literal["min", "max"] | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
        return name

    @property
    def metric(self) -> str:
        return OBJECTIVES[self.name][0]

    @property
    def mode(self) -> str:
        return self.direction or OBJECTIVES[self.name][1]


DEFAULT_OBJECTIVES = [Objective(name="calibration_error"), Objective(name="capability_loss")]


class TrainingSpec(Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    lora: bool = True
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    zero_stage: Literal[0, 1, 2, 3] = 0
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: Literal[0, 1] = 0
    families: list[str] | None = None
    prompts_per_family: int | None = Field(None, ge=1)
    num_decimals: int = Field(5, ge=0, le=8)
    max_bins: int = Field(1001, ge=2)
    hard_samples_per_prompt: int = Field(16, ge=1)
    replay_pool: int = Field(2000, ge=1)
    replay_jsonl: str | None = None
    checkpoint_every: int = Field(50, ge=1)

    @field_validator("lora")
    @classmethod
    def _lora_only(cls, lora: bool) -> bool:
        if not lora:
            raise ValueError("full fine-tuning is not supported in sweeps yet: each scorer app serves one "
                             "base model and loads trials as LoRA adapters (python -m trainers.train --full "
                             "trains one full model)")
        return lora

    @field_validator("families")
    @classmethod
    def _known_families(cls, families):
        unknown = [f for f in families or [] if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown family(ies) {unknown}")
        if families is not None and not families:
            raise ValueError("an empty family list trains on nothing; omit it to use all families")
        return families

    @field_validator("replay_jsonl")
    @classmethod
    def _replay_file(cls, path):
        if path is not None and not Path(path).expanduser().is_file():
            raise ValueError(f"replay file {path!r} does not exist")
        return path


class EvaluationSpec(Strict):
    engine: Literal["vllm", "hf"] = "vllm"
    replicas: int = Field(1, ge=1)
    cpus_per_replica: float = Field(1.0, gt=0)
    gpus_per_replica: float = Field(0.0, ge=0)
    evals: list[Literal["fidelity", "sampled", "arithmetic", "openrandom", "mcq"]] = ["fidelity", "arithmetic"]
    splits: list[str] = ["test_unseen_params", "test_ood_family"]
    selection: Literal["full", "selected"] = "selected"
    families: list[str] | None = None
    samples_per_prompt: int = Field(1000, ge=1)
    arithmetic_problems: int = Field(50, ge=1)
    num_decimals: int = Field(5, ge=0, le=8)
    max_bins: int = Field(1001, ge=2)
    max_model_len: int = Field(512, ge=32)

    @field_validator("splits")
    @classmethod
    def _known_splits(cls, splits):
        unknown = [s for s in splits if s not in SPLITS]
        if unknown or not splits:
            raise ValueError(f"splits must be a non-empty subset of {list(SPLITS)} (unknown: {unknown})")
        return splits

    @field_validator("families")
    @classmethod
    def _known_families(cls, families):
        return TrainingSpec._known_families(families)


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    storage: str = "results"
    ray_address: str | None = None
    models: list[ModelSpec] = Field(min_length=1)
    methods: list[Literal["soft", "hard"]] = Field(["soft", "hard"], min_length=1)
    search: SearchSpec = SearchSpec()
    objectives: list[Objective] = Field(default_factory=lambda: list(DEFAULT_OBJECTIVES), min_length=1)
    trials_per_cell: int = Field(8, ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    optuna_storage: str | None = Field(None, description="database URL; default: SQLite under the storage path")
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self):
        labels = [m.label for m in self.models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"models: duplicate model name(s) {dupes}; give each a distinct `name`")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("methods: a method is listed twice")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objectives: an objective is listed twice")
        needed = {o.metric.split("/")[0] for o in self.objectives}
        missing = sorted(needed - set(self.evaluation.evals))
        if missing:
            raise ValueError(f"objectives: need evaluation.evals to include {missing}")
        return self

    def model(self, label: str) -> ModelSpec:
        return next(m for m in self.models if m.label == label)

    def training_for(self, label: str) -> TrainingSpec:
        """The sweep's training settings with the model's own overrides applied."""
        return TrainingSpec.model_validate(self.training.model_dump() | self.model(label).training)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.storage, self.name)

    @property
    def cells(self) -> list[tuple[ModelSpec, str]]:
        return [(m, method) for m in self.models for method in self.methods]


class SpecError(ValueError):
    """A sweep spec is unreadable or invalid; the message lists every bad field."""


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        named = re.match(r"^([\w.]+): (.*)$", msg, re.DOTALL)
        if not path and named:  # a cross-field check names its own field
            path, msg = named.groups()
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {path or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_spec(data: dict, source: str = "spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the top level must be a mapping of fields, got {type(data).__name__}")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{source}: invalid sweep spec\n{_format(err)}") from None


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such sweep spec")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    return parse_spec(data, str(path))
