"""The planner's concurrency with scorers that scale to zero (evaluation.release_idle_after_s): their
GPUs go to trials, so more trials run and wait at once, and the autoscaler sees that demand. No Ray."""

from pathlib import Path

import yaml

from orchestrator.plan import plan_for
from orchestrator.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SIM_SPEC = ROOT / "benchmarks" / "data" / "cluster_sim.yaml"   # scale-to-zero scorers on A10Gs
CLUSTER = str(ROOT / "cluster.yaml")


def test_scorers_that_scale_to_zero_leave_their_gpus_to_trials(tmp_path):
    small = yaml.safe_load(Path(CLUSTER).read_text())   # the simulation's size: 2 A10G nodes, 1 A100 node
    small["available_node_types"]["gpu_a10g"]["max_workers"] = 2
    small["available_node_types"]["gpu_a100"]["max_workers"] = 1
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(small))
    cluster = str(tmp_path / "cluster.yaml")
    spec = load_spec(SIM_SPEC).model_copy(update={"standins": None})
    assert spec.evaluation.release_idle_after_s is not None
    held = spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"release_idle_after_s": None})})
    to_zero, always_on = plan_for(spec, cluster), plan_for(held, cluster)
    assert to_zero["unplaceable"] == [] == always_on["unplaceable"]
    # always-on scorers take 6 of the 8 A10Gs for the whole sweep
    assert to_zero["max_concurrent_trials"] > always_on["max_concurrent_trials"]
    assert all(s["node_type"] == "gpu_a10g" for s in to_zero["scorers"])   # still placed, for the fit check
