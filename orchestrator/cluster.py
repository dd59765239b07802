"""Connecting to Ray: a given cluster, or an embedded local one sized so Tune trial drivers, Train
workers and Serve scorer replicas all fit (orchestrator.scheduling.capacity; docs/stack.md).

How many trials run at once: the spec's max_concurrent_trials, else what the cluster holds at its
largest (the Plan, from the cluster-launcher YAML: `--cluster`, or the copy `ray up` leaves on the
head node), else what the running (embedded) cluster holds next to the scorer replicas."""

from __future__ import annotations

import os

from orchestrator.scheduling.build import plan_for
from orchestrator.scheduling.capacity import TRIAL_DRIVER_CPU, concurrency_from_totals, local_num_cpus
from orchestrator.scheduling.demand import SweepDemand
from orchestrator.scheduling.nodes import cluster_yaml_in_use
from orchestrator.scheduling.plan import Plan

# Trial drivers run on the head node (Ray's own head-node resource), where Ray Train also starts each
# trial's controller: losing a GPU node then costs its workers' progress since the last checkpoint
# (Ray Train restarts them), never the trial itself.
TRIAL_DRIVER_RESOURCES = {"CPU": TRIAL_DRIVER_CPU, "node:__internal_head__": 0.001}

_cluster_yaml: str | None = None   # the cluster-launcher YAML of the cluster connect() joined, if known
_plans: dict[tuple[str, str], Plan] = {}


def connect(demand: SweepDemand, address: str | None = None, cluster_yaml: str | None = None) -> str:
    """Start or join Ray at `address` (the caller resolves the spec's and $RAY_ADDRESS); return a line
    saying where the dashboard is. `cluster_yaml` describes the cluster joined (default when joining:
    the head node's copy, if this is a `ray up` head)."""
    import ray

    global _cluster_yaml
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # ~10x faster Train reports
    _cluster_yaml = cluster_yaml_in_use(cluster_yaml, joining=bool(address))
    if ray.is_initialized():  # e.g. several sweeps from one Python process (benchmarks)
        return "Ray: reusing this process's connection"
    if address:
        ctx = ray.init(address=address)
    else:
        from trainers.ray_local import init_local_ray

        ctx = init_local_ray(num_cpus=local_num_cpus(demand))
    url = getattr(ctx, "dashboard_url", None)
    return f"Ray dashboard: http://{url}" if url else "Ray dashboard: (not running)"


def max_concurrent_trials(demand: SweepDemand, cluster_yaml: str | None = None) -> int:
    """How many trials run at once (see the module docstring); at least 1."""
    if demand.max_concurrent_trials:
        return demand.max_concurrent_trials
    cluster_yaml = cluster_yaml or _cluster_yaml
    if cluster_yaml:
        try:
            plan = planned(demand, cluster_yaml)
        except Exception as err:   # an estimate: a YAML it cannot read must not stop the sweep
            print(f"warning: cannot plan against {cluster_yaml} ({type(err).__name__}: {err}); "
                  "sizing concurrency by the cluster as it is now", flush=True)
        else:
            for cell in plan.unplaceable:
                print(f"warning: cell {cell.cell} fits nowhere on {cluster_yaml}: {cell.reason}", flush=True)
            return max(1, plan.max_concurrent_trials)
    import ray

    total = ray.cluster_resources()
    return concurrency_from_totals(demand, total.get("CPU", 0), total.get("GPU", 0))


def planned(demand: SweepDemand, cluster_yaml: str) -> Plan:
    """The sweep's Plan on the cluster, made once (the sweep asks it for its concurrency and for its
    cells' loads; on a busy head node a plan takes seconds)."""
    key = (str(cluster_yaml), demand.model_dump_json())
    if key not in _plans:
        _plans[key] = plan_for(demand, cluster_yaml)
    return _plans[key]


def plan_in_use(demand: SweepDemand, cluster_yaml: str | None = None) -> Plan | None:
    """The Plan the searcher's admission reads (its cells' loads and node types' budgets), from the
    cluster-launcher YAML; without one (the embedded cluster, one node type) None: round robin."""
    cluster_yaml = cluster_yaml or _cluster_yaml
    if not cluster_yaml:
        return None
    try:
        return planned(demand, cluster_yaml)
    except Exception:   # max_concurrent_trials warned already; an estimate must not stop the sweep
        return None
