"""The sweep's scoring side: one Serve scorer app per base model (orchestrator.baselines scores the
base models themselves)."""

from __future__ import annotations

import os
import time

from models.resolve import ModelNotFound, fetch_model
from orchestrator.spec import SpecError, SweepSpec


def resolve_models(spec: SweepSpec) -> dict[str, str]:
    """Each model as a local directory; hub models are downloaded here, once, before any trial starts."""
    if spec.standins:   # the stand-ins load nothing
        return {m.label: m.ref for m in spec.models}
    paths = {}
    for m in spec.models:
        try:
            paths[m.label] = fetch_model(m.ref)
        except ModelNotFound as err:
            raise SpecError(f"models: {err}") from None
    return paths


def app_name(spec: SweepSpec, label: str) -> str:
    return f"cft-{spec.name}-{label}"


def start_scorers(spec: SweepSpec, model_paths: dict[str, str]) -> dict[str, str]:
    """One app per model. Serve's HTTP proxy runs on the head only: trials reach the scorers through
    handles, and a proxy on a GPU node kept it from counting as idle for 30 s after its last replica
    went (a Serve instance already running keeps its own settings)."""
    from ray import serve

    from evaluators.service import start_scorer

    serve.start(proxy_location="HeadOnly")
    names = {}
    for m in spec.models:
        e = spec.evaluation_for(m.label)
        names[m.label] = app_name(spec, m.label)
        print(f"Starting scorer app {names[m.label]} ({e.engine}, {e.replicas} replica(s)) for {m.ref}", flush=True)
        settings = e.scorer(model=model_paths[m.label], chat=m.chat, app_name=names[m.label],
                            max_lora_rank=max(e.max_lora_rank, largest_lora_rank(spec, m.label)))
        if spec.standins:
            from orchestrator.standins import start_scorer as stand_in

            stand_in(settings, spec.standins, os.path.abspath(spec.run_dir))
        else:
            start_scorer(settings)
    return names


def largest_lora_rank(spec: SweepSpec, label: str) -> int:
    """The largest LoRA rank any of the model's cells trains (per-model and per-method overrides)."""
    return max(spec.training_for(label, method).lora_r for method in spec.methods)


class ReplicasUp:
    """Replicas up per model (starting, running or stopping: each holds its GPUs) of the given scorer
    apps, from Serve's status, read at most once every `every_s` (the searcher asks on every
    suggestion). The sweep gives it the apps that scale to zero: the planner's budgets already leave
    out always-on replicas' GPUs."""

    @classmethod
    def scaling_to_zero(cls, spec: SweepSpec, app_names: dict[str, str]) -> ReplicasUp:
        return cls({label: name for label, name in app_names.items()
                    if spec.evaluation_for(label).release_idle_after_s is not None})

    def __init__(self, app_names: dict[str, str], every_s: float = 1.0):
        self.apps = {name: label for label, name in app_names.items()}   # of scale-to-zero scorers only
        self.every_s, self.read_at, self.counts = every_s, -float("inf"), {}

    def __call__(self) -> dict[str, int]:
        if self.apps and time.monotonic() - self.read_at >= self.every_s:
            from ray import serve

            applications = serve.status().applications
            self.counts = {label: sum(sum(d.replica_states.values()) for d in applications[name].deployments.values())
                           for name, label in self.apps.items() if name in applications}
            self.read_at = time.monotonic()
        return self.counts


def stop_scorers(app_names: dict[str, str]) -> None:
    from evaluators.service import stop_scorer

    for name in app_names.values():
        stop_scorer(name)
