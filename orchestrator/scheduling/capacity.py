"""What a fixed-size cluster holds: the embedded local Ray's size (its logical CPUs: on 2 physical
cores they must be oversubscribed and trial drivers take a sliver of a CPU, else Train workers never
get scheduled; docs/stack.md), and how many trials fit next to the scorer replicas on a cluster of
known totals (the embedded one, or one whose launcher YAML is unknown)."""

from __future__ import annotations

import math

from orchestrator.scheduling.demand import SweepDemand

TRIAL_DRIVER_CPU = 0.01


def scorer_cpus(demand: SweepDemand) -> float:
    return sum(m.scorer.replicas * m.scorer.cpus_per_replica for m in demand.models)


def scorer_gpus(demand: SweepDemand) -> float:
    return sum(m.scorer.replicas * m.scorer.replica_gpus for m in demand.models)


def trial_cpus(demand: SweepDemand) -> float:
    return demand.training.workers_per_trial * demand.training.cpus_per_worker + TRIAL_DRIVER_CPU


def local_num_cpus(demand: SweepDemand) -> int:
    """The logical CPUs of the embedded local Ray: the scorers, the trials that run at once, and one
    for Serve's proxy and controller."""
    concurrent = demand.max_concurrent_trials or 1
    return max(4, math.ceil(scorer_cpus(demand) + concurrent * trial_cpus(demand) + 1))


def concurrency_from_totals(demand: SweepDemand, cpus: float, gpus: float) -> int:
    """Trials a fixed-size cluster of `cpus` and `gpus` holds next to the scorer replicas."""
    limits = [(cpus - scorer_cpus(demand)) // trial_cpus(demand)]
    t = demand.training
    if t.gpus_per_worker:
        limits.append((gpus - scorer_gpus(demand)) // (t.workers_per_trial * t.gpus_per_worker))
    return max(1, int(min(limits)))
