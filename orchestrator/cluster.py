"""Connecting to Ray: a given cluster, or an embedded local one sized so Tune trial drivers, Train
workers and Serve scorer replicas all fit (STACK.md: on 2 physical cores, logical CPUs must be
oversubscribed and trial drivers take a sliver of a CPU, else Train workers never get scheduled)."""

from __future__ import annotations

import math
import os

TRIAL_DRIVER_CPU = 0.01


def scorer_cpus(spec) -> float:
    return len(spec.models) * spec.evaluation.replicas * spec.evaluation.cpus_per_replica


def trial_cpus(spec) -> float:
    return spec.training.workers_per_trial * spec.training.cpus_per_worker + TRIAL_DRIVER_CPU


def connect(spec, address: str | None = None) -> str:
    """Start or join Ray; return a line saying where the dashboard is."""
    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # ~10x faster Train reports
    address = address or spec.ray_address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():  # e.g. several sweeps from one Python process (benchmarks)
        return "Ray: reusing this process's connection"
    if address:
        ctx = ray.init(address=address)
    else:
        from trainers.ray_local import init_local_ray

        concurrent = spec.max_concurrent_trials or 1
        needed = scorer_cpus(spec) + concurrent * trial_cpus(spec) + 1  # +1: Serve proxy and controller
        ctx = init_local_ray(num_cpus=max(4, math.ceil(needed)))
    url = getattr(ctx, "dashboard_url", None)
    return f"Ray dashboard: http://{url}" if url else "Ray dashboard: (not running)"


def max_concurrent_trials(spec) -> int:
    """How many trials the cluster holds at once, after the scorer replicas take their share."""
    if spec.max_concurrent_trials:
        return spec.max_concurrent_trials
    import ray

    total = ray.cluster_resources()
    t, e = spec.training, spec.evaluation
    by_cpu = (total.get("CPU", 0) - scorer_cpus(spec)) // trial_cpus(spec)
    limits = [by_cpu]
    if t.gpus_per_worker:
        free_gpus = total.get("GPU", 0) - len(spec.models) * e.replicas * e.gpus_per_replica
        limits.append(free_gpus // (t.workers_per_trial * t.gpus_per_worker))
    return max(1, int(min(limits)))
