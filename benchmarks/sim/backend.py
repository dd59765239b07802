"""The simulation's TrialBackend: the sweep runs its trials with the stand-ins (benchmarks.sim.standins),
which hold the real resource shapes for the cost model's time and load nothing."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.sim import standins
from benchmarks.sim.standins import StandinConfig
from orchestrator.backend import Trained
from orchestrator.messages import Evaluation


@dataclass(frozen=True)
class SimBackend:
    costs: StandinConfig
    run_dir: str   # the sweep's run directory: the stand-ins' timeline goes under it

    def model_paths(self, refs: dict[str, str]) -> dict[str, str]:
        return dict(refs)   # hub ids are only named, never fetched

    def train(self, cfg, output_dir: str, storage_path: str, name: str) -> Trained:
        result = standins.run_training(cfg, output_dir, storage_path, name, self.costs, self.run_dir)
        return Trained(result.output_dir, result.metrics)

    def start_scorer(self, settings) -> None:
        standins.start_scorer(settings, self.costs, self.run_dir)

    def evaluate(self, handle, settings, adapter_dir: str | None, progress: str | None = None) -> Evaluation:
        return Evaluation.model_validate(standins.evaluate(handle, adapter_dir))
