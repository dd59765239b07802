"""The planner's concurrency with scorers that scale to zero (evaluation.release_idle_after_s): their
GPUs go to trials, so more trials run and wait at once, and the autoscaler sees that demand. No Ray."""

from pathlib import Path

import yaml

from benchmarks.sim.spec import load_sim_spec
from orchestrator.cells import Cell
from orchestrator.parts import demand_of
from orchestrator.scheduling.admission import GpuAdmission
from orchestrator.scheduling import build
from orchestrator.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
SIM_SPEC = ROOT / "benchmarks" / "data" / "cluster_sim.yaml"   # scale-to-zero scorers
CLUSTER = str(ROOT / "cluster.yaml")


def plan_for(spec, cluster_yaml=None) -> dict:
    """The Plan of the spec, as `--plan --json` prints it."""
    return build.plan_for(demand_of(spec), cluster_yaml).to_dict()


def _sim_spec(**update):
    return load_sim_spec(SIM_SPEC).sweep.model_copy(update=update)


def _scored_on_a10gs(**update):
    """The simulation's sweep with every scorer on A10Gs, the A100-trained 8B and 14B over 2 of them:
    their trials train on one node type and are scored on another."""
    data = yaml.safe_load(SIM_SPEC.read_text())
    for m in data["models"]:
        if "evaluation" in m:
            m["evaluation"] = {"tensor_parallel_size": 2}
    data.pop("standins")
    return parse_spec(data).model_copy(update=update)


def _small_cluster(tmp_path, a10g: str = "g5.2xlarge", a10g_nodes: int = 8) -> str:
    """cluster.yaml at the simulation's size (8 A10Gs, one A100 node); `a10g` another A10G instance type."""
    small = yaml.safe_load(Path(CLUSTER).read_text())
    small["available_node_types"]["gpu_a10g"]["node_config"]["InstanceType"] = a10g
    small["available_node_types"]["gpu_a10g"]["max_workers"] = a10g_nodes
    small["available_node_types"]["gpu_a100"]["max_workers"] = 1
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(small))
    return str(tmp_path / "cluster.yaml")


def _four_gpu_a10g_nodes(tmp_path) -> str:
    """Two 4-GPU A10G nodes (g5.12xlarge), where a scorer over 2 A10Gs fits."""
    return _small_cluster(tmp_path, "g5.12xlarge", 2)


def test_scorers_that_scale_to_zero_leave_their_gpus_to_trials(tmp_path):
    cluster = _small_cluster(tmp_path)
    spec = _sim_spec()
    assert spec.evaluation.release_idle_after_s is not None
    held = spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"release_idle_after_s": None})})
    to_zero, always_on = plan_for(spec, cluster), plan_for(held, cluster)
    assert to_zero["unplaceable"] == []
    # always-on, the 8B's and 14B's scorers (over 2 and 4 A100s, their trials' shapes) would hold 6 of
    # the one A100 node's 8 GPUs for the whole sweep: no 4-GPU 14B trial could ever start
    assert {(u["cell"], "once the scorers hold their GPUs" in u["reason"]) for u in always_on["unplaceable"]} == \
        {("qwen3-14b:soft", True), ("qwen3-14b:hard", True)}
    assert to_zero["max_concurrent_trials"] > always_on["max_concurrent_trials"]
    trains_on = {c["cell"].split(":")[0]: c["training"]["node_type"] for c in to_zero["cells"]}
    assert {s["model"]: s["node_type"] for s in to_zero["scorers"]} == trains_on   # still placed, for the fit check


def test_the_node_types_budgets_keep_room_for_scorers_trials_elsewhere_need(tmp_path):
    """The paper's 12 trials a cell, the 8B and 14B trained on A100s and scored over 2 A10Gs: the
    A10Gs' trials leave 2 free until those cells are done."""
    spec = _scored_on_a10gs(trials_per_cell=12)
    plan = plan_for(spec, _four_gpu_a10g_nodes(tmp_path))
    assert plan["pools"]["gpu_a100"] == {"trial_gpus": 8.0, "trial_gpus_once_scored": 8.0, "reserved_for_scorers": 0.0,
                                         "reserved_for": [], "useful_gpus": 8.0}
    a10g = plan["pools"]["gpu_a10g"]
    assert (a10g["trial_gpus"], a10g["trial_gpus_once_scored"], a10g["reserved_for_scorers"]) == (6.0, 8.0, 2.0)
    assert sorted(a10g["reserved_for"]) == ["qwen3-14b:hard", "qwen3-14b:soft", "qwen3-8b:hard", "qwen3-8b:soft"]
    # 6 one-GPU A10G trials and 4 two-GPU A100 trials (the 8B's) at most
    assert plan["max_concurrent_trials"] == 10


def test_models_scored_where_they_train_keep_no_gpus_back(tmp_path):
    """The simulation's sweep as shipped scores the 8B and 14B on A100s: no node type waits for
    another's scorers, so every GPU that shortens the sweep goes to trials (7 one-GPU A10G trials: an
    eighth A10G node would end it no sooner; 4 of the 8B's on the A100 node)."""
    plan = plan_for(_sim_spec(trials_per_cell=12), _small_cluster(tmp_path))
    for pool in plan["pools"].values():
        assert pool["reserved_for_scorers"] == 0 and pool["trial_gpus"] == pool["useful_gpus"], pool
    assert plan["pools"]["gpu_a100"]["trial_gpus"] == 8 and plan["pools"]["gpu_a10g"]["trial_gpus"] == 7
    assert plan["max_concurrent_trials"] == 11


def test_a_node_type_gets_only_the_nodes_that_shorten_the_sweep(tmp_path):
    """With 3 trials a cell the A10Gs' work (about 20 GPU-hours, 16 of them three 5.3-hour 4B trials)
    takes the longest trial's time on 4 one-GPU nodes: a fifth would end the sweep no sooner."""
    spec = _sim_spec(trials_per_cell=3)
    plan = plan_for(spec, _small_cluster(tmp_path))
    a10g = plan["pools"]["gpu_a10g"]
    assert (a10g["useful_gpus"], a10g["trial_gpus"], a10g["trial_gpus_once_scored"]) == (4.0, 4.0, 4.0)
    longest = max(c["hours_per_trial"] for c in plan["cells"] if c["training"]["node_type"] == "gpu_a10g")
    work = sum(c["trials"] * c["gpu_hours_per_trial"] for c in plan["cells"] if c["training"]["node_type"] == "gpu_a10g")
    assert 3.5 < work / longest < 4.5
    assert plan["pools"]["gpu_a100"]["trial_gpus"] == 8.0   # the A100's one node is the fewest it can have


def test_idle_replicas_are_seen_idle_within_the_delay():
    """Serve's 30 s look-back and 10 s reports would hold an idle replica 40 s past a short delay."""
    from ray.serve.config import AutoscalingConfig

    from evaluators.service import idle_autoscaling

    short = AutoscalingConfig(**idle_autoscaling(1, 1.0))
    assert short.min_replicas == 0 and short.downscale_to_zero_delay_s == 1.0
    assert short.metrics_interval_s < short.look_back_period_s <= 1.0
    long = AutoscalingConfig(**idle_autoscaling(2, 600.0))
    assert (long.look_back_period_s, long.metrics_interval_s, long.max_replicas) == (30.0, 10.0, 2)


def test_a_stopping_replica_lets_its_gpus_go_without_serves_2_s_drain_loop():
    """Serve stops only an idle replica, which then slept one wait loop (2 s by default) before it
    looked for requests in flight: 40 simulated seconds of its GPUs a score in the simulation."""
    from evaluators.service import ScorerDeployment, deployment_options
    from evaluators.settings import ScorerSettings

    for release in (1.0, None):   # Serve validates the options as it would deploy them
        options = deployment_options(ScorerSettings(model="m", release_idle_after_s=release))
        assert ScorerDeployment.options(**options)._deployment_config.graceful_shutdown_wait_loop_s <= 0.1


def test_a_trial_waits_until_its_handles_last_report_holds_only_idle_samples():
    """Serve averages a handle's samples over the look-back and keeps a dead handle's last report 10 s:
    waiting less than a look-back and a report interval, a trial kept its replica up those 10 s."""
    from evaluators.service import idle_autoscaling, idle_report_wait_s

    short = idle_autoscaling(1, 1.0)
    assert idle_report_wait_s(1, 1.0) >= short["look_back_period_s"] + short["metrics_interval_s"]
    assert idle_report_wait_s(1, 600.0) == 10.0   # the stale report is dropped by then anyway


def test_the_sweep_plans_once_for_its_concurrency_and_its_loads(tmp_path, monkeypatch):
    from orchestrator import cluster

    spec = _scored_on_a10gs()
    cluster_yaml = _four_gpu_a10g_nodes(tmp_path)
    calls = []
    real = cluster.plan_for
    monkeypatch.setattr(cluster, "plan_for", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(cluster, "_plans", {})
    concurrency = cluster.max_concurrent_trials(demand_of(spec), cluster_yaml)
    plan = cluster.plan_in_use(demand_of(spec), cluster_yaml)
    cells = {Cell(*c.cell.split(':')) for c in plan.cells}
    admission = GpuAdmission.from_plan(plan, cells)
    loads = {c.name: admission.load(c) for c in cells}
    pool_gpus = admission.budgets
    assert len(calls) == 1 and concurrency >= 1
    big, small = loads["qwen3-14b:hard"], loads["qwen3-4b:hard"]
    assert (big.node_type, big.gpus, big.scorer_node_type, big.scorer_gpus) == ("gpu_a100", 4, "gpu_a10g", 2)
    assert small.hours > loads["qwen3-4b:soft"].hours
    assert set(pool_gpus) == {"gpu_a10g", "gpu_a100"}
