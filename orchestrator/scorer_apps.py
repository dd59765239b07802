"""The sweep's scoring side: one Serve scorer app per base model (orchestrator.baselines scores the
base models themselves), deployed through the sweep's TrialBackend."""

from __future__ import annotations

import time

from orchestrator.backend import TrialBackend
from orchestrator.parts import ScorerSetup


def start_scorers(setups: list[ScorerSetup], model_paths: dict[str, str], backend: TrialBackend) -> dict[str, str]:
    """One app per model; returns model label -> app name. Serve's HTTP proxy runs on the head only:
    trials reach the scorers through handles, and a proxy on a GPU node kept it from counting as idle
    for 30 s after its last replica went (a Serve instance already running keeps its own settings)."""
    from ray import serve

    serve.start(proxy_location="HeadOnly")
    names = {}
    for s in setups:
        e = s.engine
        names[s.label] = s.app_name
        print(f"Starting scorer app {s.app_name} ({e.engine}, {e.replicas} replica(s)) for {s.ref}", flush=True)
        backend.start_scorer(e.scorer(model=model_paths[s.label], chat=s.chat, app_name=s.app_name,
                                      max_lora_rank=s.max_lora_rank))
    return names


class ReplicasUp:
    """Replicas up per model (starting, running or stopping: each holds its GPUs) of the given scorer
    apps, from Serve's status, read at most once every `every_s` (the searcher asks on every
    suggestion). The sweep gives it the apps that scale to zero: the Plan's budgets already leave
    out always-on replicas' GPUs."""

    @classmethod
    def scaling_to_zero(cls, setups: list[ScorerSetup]) -> ReplicasUp:
        return cls({s.label: s.app_name for s in setups if s.engine.release_idle_after_s is not None})

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
