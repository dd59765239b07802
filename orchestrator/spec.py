"""Sweep specs (YAML in sweeps/), validated with typed models before any cluster work.

The spec embeds each component's own config as it is: `training:` is a trainers.config.TrainConfig
(less the fields a trial sets), `evaluation:` an evaluators.settings.EvaluationConfig. Per-model and
per-method `training` overrides are merged into it by pydantic. Every invalid field is reported with
its path and reason, e.g.
    search.lr: low (0.1) must be < high (0.001)
    models.0.ref: model path './nope' does not exist
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, Field, ValidationError, field_serializer,
                      field_validator, model_validator)

from cft.cli import format_errors
from cft.prompts import ChatOptions
from evaluators.registry import EVALUATIONS
from evaluators.settings import EngineOptions, EvalSettings, EvaluationConfig
from models.resolve import ALIASES, looks_like_path
from orchestrator.spec_sections import BudgetSpec, Strict, TrackingSpec  # noqa: F401 (part of the spec)
from orchestrator.spec_limits import (SPEC_MAX_BYTES, SPEC_MAX_DEPTH, check_spec_size, redact_url,  # noqa: F401
                                      storage_url)
from trainers.config import Method, TrainConfig

# Set per trial by the sweep (from models, methods, search, seed), so a spec's training section
# (or an override) may not set them; the same for the evaluation's seed.
TRIAL_FIELDS = ("model", "method", "lr", "mix", "seed", "chat")
SWEEP_EVAL_FIELDS = ("seed",)
SET_BY_SWEEP = {"training": TRIAL_FIELDS, "evaluation": SWEEP_EVAL_FIELDS}


class KnownObjective(BaseModel):
    metric: str
    direction: Literal["min", "max"]
    relative_to_base: bool = False


# Objectives a spec can name without spelling out their metric. A `relative_to_base` objective is
# (base model's value - tuned value) of its metric: a loss of something the base model had.
OBJECTIVES = {
    # the paper's sampling protocol: family-balanced scale-free W1, invalid samples counted as worst
    "calibration_error": KnownObjective(metric="sampled/calibration_error", direction="min"),
    # its exact counterpart (no sampling; a calibration measure on integer families only, docs/method.md 5)
    "exact_calibration_error": KnownObjective(metric="fidelity/calibration_error", direction="min"),
    "exact_tv": KnownObjective(metric="fidelity/tv", direction="min"),
    "calibration_kl": KnownObjective(metric="fidelity/kl", direction="min"),
    "off_support_mass": KnownObjective(metric="fidelity/off_support_mass", direction="min"),
    "sampled_w1": KnownObjective(metric="sampled/w1", direction="min"),
    # GSM8K test items, which no replay source shares: mean gold-answer log-prob per token (exact)
    "capability_loss": KnownObjective(metric="gsm8k/gold_logprob", direction="min", relative_to_base=True),
    "capability_loss_acc": KnownObjective(metric="gsm8k/flexible_acc", direction="min", relative_to_base=True),
    "arithmetic_loss": KnownObjective(metric="arithmetic/flexible_acc", direction="min", relative_to_base=True),
}
# What the two default names meant before they were declared with their metric (run dirs from then).
LEGACY_METRICS = {"calibration_error": "fidelity/tv", "capability_loss": "arithmetic/flexible_acc"}


class Objective(Strict):
    """One objective: a summary metric of the evaluation, its direction, and whether its value is
    measured against the base model (base - tuned). Known names fill in the rest."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    metric: str | None = Field(None, description="evaluation summary metric, e.g. fidelity/kl")
    direction: Literal["min", "max"] | None = None
    relative_to_base: bool | None = None

    @model_validator(mode="after")
    def _complete(self):
        known = OBJECTIVES.get(self.name)
        if known is None and self.metric is None:
            raise ValueError(f"name: unknown objective {self.name!r}; known: {', '.join(OBJECTIVES)} "
                             "(or give `metric` and `direction`)")
        if known is None and self.direction is None:
            raise ValueError(f"direction: objective {self.name!r} needs a direction (min or max)")
        known = known or KnownObjective(metric=self.metric, direction=self.direction)
        self.metric = self.metric or known.metric
        self.direction = self.direction or known.direction
        if self.relative_to_base is None:
            self.relative_to_base = known.relative_to_base
        if self.metric.split("/")[0] not in EVALUATIONS:
            raise ValueError(f"metric: {self.metric!r} names no evaluation; known: {', '.join(EVALUATIONS)}")
        return self

    @property
    def evaluation(self) -> str:
        return self.metric.split("/")[0]


DEFAULT_OBJECTIVES = [Objective(name="calibration_error"), Objective(name="capability_loss")]


def _reject_trial_fields(overrides: dict, fields=TRIAL_FIELDS) -> dict:
    taken = [k for k in overrides if k in fields]
    if taken:
        raise ValueError(f"{', '.join(taken)}: set per trial by the sweep (models, methods, search, seed), "
                         "not in a training section")
    return overrides


# TrainConfig fields that differ for one model or one method (checked whole in SweepSpec._consistent).
Overrides = Annotated[dict, AfterValidator(_reject_trial_fields)]


def _engine_fields_only(overrides: dict) -> dict:
    """A model's scorer may run differently (replicas, GPUs, tensor parallelism, accelerator type, engine
    limits), but every model is evaluated on the same evaluations, so what to evaluate stays sweep-wide."""
    shared = [k for k in overrides if k in EvalSettings.model_fields]
    if shared:
        raise ValueError(f"{', '.join(shared)}: what to evaluate is the same for every model; set it in the "
                         "sweep's evaluation section")
    unknown = [k for k in overrides if k not in EngineOptions.model_fields]
    if unknown:
        known = ", ".join(EngineOptions.model_fields)
        raise ValueError(f"{', '.join(unknown)}: unknown scorer setting; known: {known}")
    return overrides


# EngineOptions fields that differ for one model's scorer app (checked whole in SweepSpec._evaluation_overrides).
EngineOverrides = Annotated[dict, AfterValidator(_engine_fields_only)]


def check_storage(storage: str) -> str:
    """The sweep writes its records, adapters, checkpoints and Optuna's SQLite database with local file
    APIs, so an object-store URI would silently become a local directory named like it."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", storage):
        raise ValueError(f"{storage!r} is a URI; the sweep writes its results with local file APIs, so give a "
                         "directory every node sees at the same path: a shared filesystem such as EFS "
                         "(cluster.yaml mounts it at /mnt/shared) or an object store mounted there")
    return storage


# A model label names files and directories (records, adapters, checkpoints, Ray job and Serve app
# names): 64 characters leaves room for "<label>-<method>-<number>.json.unreadable" in 255-byte names.
# The longest hub id among the paper's models (meta-llama/Llama-3.1-8B-Instruct) has 32.
MAX_LABEL = 64
MAX_REF = 512   # a hub id ("org/name", at most 96 each on the Hub) or a local path


class ModelSpec(Strict):
    ref: str = Field(min_length=1, max_length=MAX_REF,
                     description="alias (tiny, smollm2-135m-instruct), local path or hub id")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=MAX_LABEL,
                             description="short name used in results and paths; default derived from ref")
    chat: ChatOptions = ChatOptions()
    training: Overrides = {}
    evaluation: EngineOverrides = Field({}, description="this model's scorer settings (EngineOptions fields), "
                                        "e.g. {tensor_parallel_size: 4, accelerator_type: A100}")

    @field_validator("ref")
    @classmethod
    def _local_path_exists(cls, ref: str) -> str:
        if ref not in ALIASES and looks_like_path(ref) and not Path(ref).expanduser().is_dir():
            raise ValueError(f"model path {ref!r} does not exist")
        return ref

    @model_validator(mode="after")
    def _usable_label(self):
        label = self.label
        if not label:
            raise ValueError(f"name: ref {self.ref!r} gives no usable name (it names no file or model); give "
                             "the model a `name`")
        if len(label) > MAX_LABEL:
            raise ValueError(f"name: the name derived from ref is {len(label)} characters; names the sweep "
                             f"writes as paths are at most {MAX_LABEL}: give the model a shorter `name`")
        return self

    @property
    def label(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(self.ref).name or self.ref).strip("-.")


class Range(Strict):
    """A searched interval; low == high (or a plain number in the spec, `lr: 2.0e-4`) fixes the value, so
    every trial of a cell runs at it (sweeps/paper_replication.yaml: the paper's settings)."""
    low: float
    high: float
    log: bool = False

    @model_validator(mode="before")
    @classmethod
    def _fixed(cls, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"low": value, "high": value}
        return value

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high}), or equal to it to fix the value")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0 (got {self.low})")
        return self


class SearchSpec(Strict):
    lr: Range = Range(low=1e-5, high=1e-3, log=True)
    mix: Range = Range(low=0.0, high=0.9)
    # tpe and gp start with a third of the budget (2 to 10) of start-up trials: gp's a Latin hypercube
    # over lr x mix (orchestrator.samplers), tpe's random; benchmarks/search_efficiency.py compares
    # them all on the default sweep's measured landscape
    sampler: Literal["tpe", "gp", "random", "grid"] = "gp"

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, r: Range) -> Range:
        if r.low <= 0 or r.high > 1:   # TrainConfig.lr's own bounds
            raise ValueError(f"learning rates must lie in (0, 1] (got [{r.low}, {r.high}])")
        return r

    @field_validator("mix")
    @classmethod
    def _mix_fraction(cls, r: Range) -> Range:
        if r.low < 0 or r.high >= 1:
            raise ValueError(f"mix must lie in [0, 1) (got [{r.low}, {r.high}])")
        return r


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=MAX_LABEL)
    # list and string bounds: the paper's sweep has 6 models, 2 objectives and paths of ~100 characters
    storage: str = Field("results", min_length=1, max_length=1024)
    ray_address: str | None = Field(None, max_length=1024)
    models: list[ModelSpec] = Field(min_length=1, max_length=64)
    methods: dict[Method, Overrides | None] = Field({"soft": {}, "hard": {}}, min_length=1,
                                                    description="methods to run, each with its overrides")
    search: SearchSpec = SearchSpec()
    objectives: list[Objective] = Field(default_factory=lambda: list(DEFAULT_OBJECTIVES), min_length=1, max_length=16)
    trials_per_cell: int = Field(8, ge=1, le=10_000)
    max_concurrent_trials: int | None = Field(None, ge=1, le=10_000)
    training: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    optuna_storage: str | None = Field(None, max_length=4096, description="database URL; default: SQLite under "
                                       "the storage path. Never write its password here: ${VAR} is read from the "
                                       "environment (docs/security.md)")
    seed: int = Field(0, ge=0, lt=2**31)
    tracking: TrackingSpec = TrackingSpec()
    budget: BudgetSpec | None = None

    @field_validator("storage")
    @classmethod
    def _local_storage(cls, storage: str) -> str:
        return check_storage(storage)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_as_dict(cls, methods):
        """`methods: [soft, hard]` is short for `methods: {soft: {}, hard: {}}`."""
        if isinstance(methods, list):
            if len(set(map(str, methods))) != len(methods):
                raise ValueError("a method is listed twice")
            return {m: {} for m in methods}
        return methods

    @field_validator("training", "evaluation", mode="before")
    @classmethod
    def _sections(cls, section, info):
        return _reject_trial_fields(section, SET_BY_SWEEP[info.field_name]) if isinstance(section, dict) else section

    @field_serializer("optuna_storage")
    def _redacted_storage(self, url: str | None):
        """spec.json and every dump hold the URL without its password (a resumed sweep compares
        redacted with redacted); the sweep opens the spec's own value (storage_url)."""
        return redact_url(url)

    @field_serializer("training", "evaluation")
    def _dump_sections(self, section: BaseModel, info):
        return section.model_dump(mode="json", exclude=set(SET_BY_SWEEP[info.field_name]))

    @model_validator(mode="after")
    def _consistent(self):
        labels = [m.label for m in self.models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"models: duplicate model name(s) {dupes}; give each a distinct `name`")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objectives: an objective is listed twice")
        missing = sorted({o.evaluation for o in self.objectives} - set(self.evaluation.evals))
        if missing:
            raise ValueError(f"objectives: need evaluation.evals to include {missing}")
        for where, overrides in self._override_sections():
            try:
                config = TrainConfig.model_validate(self.training.model_dump() | overrides)
            except ValidationError as err:
                raise ValueError(f"{where}: " + "; ".join(format_errors(err).splitlines())) from None
            if not config.lora:
                raise ValueError(f"{where}.lora: full fine-tuning is not supported in sweeps yet: each scorer "
                                 "app serves one base model and loads trials as LoRA adapters "
                                 "(python -m trainers.train --full trains one full model)")
        return self

    @model_validator(mode="after")
    def _evaluation_overrides(self):
        for i, m in enumerate(self.models):
            if m.evaluation:
                try:
                    self.evaluation_for(m.label)
                except ValidationError as err:
                    reasons = (line.removeprefix("(top level): ") for line in format_errors(err).splitlines())
                    raise ValueError(f"models.{i}.evaluation: " + "; ".join(reasons)) from None
        return self

    def _override_sections(self):
        yield "training", {}
        for i, m in enumerate(self.models):
            yield f"models.{i}.training", m.training
        for method, overrides in self.methods.items():
            yield f"methods.{method}", overrides or {}

    def model(self, label: str) -> ModelSpec:
        return next(m for m in self.models if m.label == label)

    def training_for(self, label: str, method: str | None = None) -> TrainConfig:
        """The sweep's training settings with the model's, then the method's, overrides merged in."""
        overrides = self.model(label).training | (self.methods.get(method) or {})
        return TrainConfig.model_validate(self.training.model_dump() | overrides)

    def evaluation_for(self, label: str) -> EvaluationConfig:
        """The sweep's evaluation settings with the model's scorer overrides merged in."""
        return EvaluationConfig.model_validate(self.evaluation.model_dump() | self.model(label).evaluation)

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
    for line in format_errors(err).splitlines():
        path, msg = line.split(": ", 1)
        named = re.match(r"^([\w.]+): (.*)$", msg, re.DOTALL)
        if named:  # a model-level check names its field, relative to the model it checked
            path = named.group(1) if path == "(top level)" else f"{path}.{named.group(1)}"
            msg = named.group(2)
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def parse_spec(data: dict, source: str = "spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the top level must be a mapping of fields, got {type(data).__name__}")
    try:
        check_spec_size(data, source)
    except ValueError as err:
        raise SpecError(str(err)) from None
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{source}: invalid sweep spec\n{_format(err)}") from None


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such sweep spec")
    if path.stat().st_size > SPEC_MAX_BYTES:
        raise SpecError(f"{path}: {path.stat().st_size} bytes; a sweep spec is at most {SPEC_MAX_BYTES}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:   # the YAML parser recurses once per nesting level
        raise SpecError(f"{path}: nested deeper than the YAML parser can read (a spec needs {SPEC_MAX_DEPTH} "
                        "levels at most)") from None
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return parse_spec(data, str(path))

