"""Connecting to Ray: a given cluster, or an embedded local one sized so Tune trial drivers, Train
workers and Serve scorer replicas all fit (STACK.md: on 2 physical cores, logical CPUs must be
oversubscribed and trial drivers take a sliver of a CPU, else Train workers never get scheduled).

How many trials run at once: the spec's max_concurrent_trials, else what the cluster holds at its
largest (orchestrator.plan, from the cluster-launcher YAML: `--cluster`, or the copy `ray up` leaves
on the head node), else what the running (embedded) cluster holds next to the scorer replicas."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.search import CellLoad

TRIAL_DRIVER_CPU = 0.01
# Trial drivers run on the head node (Ray's own head-node resource), where Ray Train also starts each
# trial's controller: losing a GPU node then costs its workers' progress since the last checkpoint
# (Ray Train restarts them), never the trial itself.
TRIAL_DRIVER_RESOURCES = {"CPU": TRIAL_DRIVER_CPU, "node:__internal_head__": 0.001}


_cluster_yaml: str | None = None   # the cluster-launcher YAML of the cluster connect() joined, if known
_plans: dict[tuple[str, str], dict] = {}


def scorer_cpus(spec) -> float:
    return sum(e.replicas * e.cpus_per_replica for e in map(spec.evaluation_for, (m.label for m in spec.models)))


def scorer_gpus(spec) -> float:
    return sum(e.replicas * e.replica_gpus for e in map(spec.evaluation_for, (m.label for m in spec.models)))


def trial_cpus(spec) -> float:
    return spec.training.workers_per_trial * spec.training.cpus_per_worker + TRIAL_DRIVER_CPU


def local_num_cpus(spec) -> int:
    """The logical CPUs of the embedded local Ray: the scorers, the trials that run at once, and one
    for Serve's proxy and controller."""
    concurrent = spec.max_concurrent_trials or 1
    return max(4, math.ceil(scorer_cpus(spec) + concurrent * trial_cpus(spec) + 1))


def connect(spec, address: str | None = None, cluster_yaml: str | None = None) -> str:
    """Start or join Ray; return a line saying where the dashboard is. `cluster_yaml` describes the
    cluster joined (default when joining: the head node's copy, if this is a `ray up` head)."""
    import ray

    from orchestrator.plan import cluster_yaml_in_use

    global _cluster_yaml
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # ~10x faster Train reports
    address = address or spec.ray_address or os.environ.get("RAY_ADDRESS")
    _cluster_yaml = cluster_yaml_in_use(cluster_yaml, joining=bool(address))
    if ray.is_initialized():  # e.g. several sweeps from one Python process (benchmarks)
        return "Ray: reusing this process's connection"
    if address:
        ctx = ray.init(address=address)
    else:
        from trainers.ray_local import init_local_ray

        ctx = init_local_ray(num_cpus=local_num_cpus(spec))
    url = getattr(ctx, "dashboard_url", None)
    return f"Ray dashboard: http://{url}" if url else "Ray dashboard: (not running)"


def max_concurrent_trials(spec, cluster_yaml: str | None = None) -> int:
    """How many trials run at once (see the module docstring); at least 1."""
    if spec.max_concurrent_trials:
        return spec.max_concurrent_trials
    cluster_yaml = cluster_yaml or _cluster_yaml
    if cluster_yaml:
        try:
            plan = planned(spec, cluster_yaml)
        except Exception as err:   # an estimate: a YAML it cannot read must not stop the sweep
            print(f"warning: cannot plan against {cluster_yaml} ({type(err).__name__}: {err}); "
                  "sizing concurrency by the cluster as it is now", flush=True)
        else:
            for cell in plan["unplaceable"]:
                print(f"warning: cell {cell['cell']} fits nowhere on {cluster_yaml}: {cell['reason']}", flush=True)
            return max(1, plan["max_concurrent_trials"])
    import ray

    total = ray.cluster_resources()
    return concurrency_from_totals(spec, total.get("CPU", 0), total.get("GPU", 0))


def planned(spec, cluster_yaml: str) -> dict:
    """orchestrator.plan's plan of the spec on the cluster, made once (the sweep asks it for its
    concurrency and for its cells' loads; on a busy head node a plan takes seconds)."""
    from orchestrator.plan import plan_for

    key = (str(cluster_yaml), spec.model_dump_json())
    if key not in _plans:
        _plans[key] = plan_for(spec, cluster_yaml)
    return _plans[key]


def trial_loads(spec, cluster_yaml: str | None = None) \
        -> tuple[dict[str, CellLoad], dict[str, float], dict[str, tuple[float, list[str]]]]:
    """What the searcher needs of the plan (orchestrator.search CellSearcher's loads, pool_gpus and
    scorer_reserves, keyed by cell name): per cell, where its trials train and are scored, on how many
    GPUs, for how many expected hours; per node type, the GPUs its trials may hold at once, and the GPUs
    that go to them once the cells whose scorers need a reserve there are done (orchestrator.plan
    trial_pools). From the cluster-launcher YAML; without one (the embedded cluster, one pool) nothing:
    the searcher goes round robin."""
    from orchestrator.search import CellLoad

    cluster_yaml = cluster_yaml or _cluster_yaml
    if not cluster_yaml:
        return {}, {}, {}
    try:
        plan = planned(spec, cluster_yaml)
    except Exception:   # max_concurrent_trials warned already; an estimate must not stop the sweep
        return {}, {}, {}
    loads = {c["cell"]: CellLoad(pool=c["training"]["node_type"], gpus=c["training_gpus"],
                                 hours=c["hours_per_trial"] or 0.0, scorer_pool=c["scoring"]["node_type"],
                                 scorer_gpus=c["scoring"]["replica_gpus"])
             for c in plan["cells"] if c["fits"]}
    pools = plan["pools"]
    reserves = {name: (p["trial_gpus_once_scored"] - p["trial_gpus"], p["reserved_for"])
                for name, p in pools.items() if p["trial_gpus_once_scored"] > p["trial_gpus"]}
    return loads, {name: p["trial_gpus"] for name, p in pools.items()}, reserves


def concurrency_from_totals(spec, cpus: float, gpus: float) -> int:
    """Trials a fixed-size cluster of `cpus` and `gpus` holds next to the scorer replicas (the embedded
    local cluster, or a cluster whose launcher YAML is unknown)."""
    limits = [(cpus - scorer_cpus(spec)) // trial_cpus(spec)]
    t = spec.training
    if t.gpus_per_worker:
        limits.append((gpus - scorer_gpus(spec)) // (t.workers_per_trial * t.gpus_per_worker))
    return max(1, int(min(limits)))
