"""The seam between the sweep and what it runs trials with. The sweep trains, starts scorer apps and
evaluates only through a TrialBackend: RayBackend (the default) uses the real trainer (Ray Train +
DeepSpeed) and scorers (Serve + vLLM or HF); a simulation passes its own (benchmarks/sim). A backend
travels to every trial driver with the trial's context, so it must pickle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from evaluators.settings import EvalSettings, ScorerSettings
from orchestrator.messages import Evaluation
from trainers.config import TrainConfig


@dataclass(frozen=True)
class Trained:
    """A trained adapter: where it is, and the training's final metrics."""
    output_dir: str
    metrics: dict


class TrialBackend(Protocol):
    def model_paths(self, refs: dict[str, str]) -> dict[str, str]:
        """Model label -> a path the trainer and scorer load (raises SpecError for a missing model)."""

    def train(self, cfg: TrainConfig, output_dir: str, storage_path: str, name: str) -> Trained:
        """Train one trial's adapter into output_dir; a run with the same (storage_path, name) resumes."""

    def start_scorer(self, settings: ScorerSettings) -> None:
        """Deploy one model's scorer app (Serve) under settings.app_name."""

    def evaluate(self, handle, settings: EvalSettings, adapter_dir: str | None,
                 progress: str | None = None) -> Evaluation:
        """Score the base model (adapter_dir None) or an adapter on the scorer app behind `handle`."""


class RayBackend:
    """The real steps: trainers.run, evaluators.service and evaluators.evaluate."""

    def model_paths(self, refs: dict[str, str]) -> dict[str, str]:
        """Hub models are downloaded here, once, before any trial starts."""
        from models.resolve import ModelNotFound, fetch_model
        from orchestrator.spec import SpecError

        paths = {}
        for label, ref in refs.items():
            try:
                paths[label] = fetch_model(ref)
            except ModelNotFound as err:
                raise SpecError(f"models: {err}") from None
        return paths

    def train(self, cfg: TrainConfig, output_dir: str, storage_path: str, name: str) -> Trained:
        from trainers.run import run_training

        result = run_training(cfg, output_dir=output_dir, storage_path=storage_path, name=name)
        return Trained(result.output_dir, result.metrics)

    def start_scorer(self, settings: ScorerSettings) -> None:
        from evaluators.service import start_scorer

        start_scorer(settings)

    def evaluate(self, handle, settings: EvalSettings, adapter_dir: str | None,
                 progress: str | None = None) -> Evaluation:
        from evaluators.evaluate import evaluate

        return Evaluation.model_validate(evaluate(handle, settings, adapter=adapter_dir, progress=progress))
