"""`python -m orchestrator.sweep SPEC --plan`: node types from a cluster YAML, what fits where, the
concurrency the sweep itself uses, and per-model scorer overrides. No Ray is started."""

import json
from pathlib import Path

import pytest
import yaml

from orchestrator import cluster
from orchestrator.parts import demand_of
from orchestrator.scheduling import build, capacity
from orchestrator.gpu_catalog import model_shape
from orchestrator.scheduling.nodes import load_node_types
from orchestrator.spec import load_spec, parse_spec
from orchestrator.sweep import main

ROOT = Path(__file__).resolve().parents[1]
PAPER = str(ROOT / "sweeps" / "paper.yaml")
CLUSTER = str(ROOT / "cluster.yaml")
T4_CLUSTER = str(ROOT / "tests" / "data" / "cluster_g4dn_t4.yaml")


def plan_for(spec, cluster_yaml=None) -> dict:
    """The Plan of the spec, as `--plan --json` prints it."""
    return build.plan_for(demand_of(spec), cluster_yaml).to_dict()


def _plan_cli(capsys, *argv) -> tuple[int, dict, str]:
    code = main([*argv, "--plan", "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.fixture(scope="module")
def paper_without_accelerator_types() -> dict:
    data = yaml.safe_load(Path(PAPER).read_text())
    data["training"].pop("accelerator_type")
    data["evaluation"].pop("accelerator_type")
    for m in data["models"]:
        m.get("training", {}).pop("accelerator_type", None)
        m.get("evaluation", {}).pop("accelerator_type", None)
    return data


def test_paper_plan_on_cluster_yaml_places_every_cell(capsys):
    code, plan, err = _plan_cli(capsys, PAPER, "--cluster", CLUSTER)
    assert code == 0, err
    assert plan["unplaceable"] == [] and plan["max_concurrent_trials"] >= 8
    cells = {c["cell"]: c for c in plan["cells"]}
    assert len(cells) == 24 and all(c["fits"] for c in cells.values())
    for c in cells.values():   # what a trial needs per GPU is below what its node type's GPU has
        t = c["training"]
        assert t["node_type"] and t["gib_per_gpu"] < t["gpu_gib"], c
        assert c["gpu_hours_per_trial"] > 0
    assert cells["gemma-3-27b:soft"]["training"]["node_type"] == "gpu_a100"
    assert cells["qwen3-0.6b:hard"]["training"]["node_type"] == "gpu_a10g"
    scorers = {s["model"]: s for s in plan["scorers"]}
    # the A100-trained models are scored where they train (the 27B over 2 GPUs), so no A10G waits for them
    assert (scorers["gemma-3-27b"]["gpus"], scorers["gemma-3-27b"]["node_type"]) == (2, "gpu_a100")
    assert {s["node_type"] for s in scorers.values()} == {"gpu_a10g", "gpu_a100"}
    # the 2- and 4-GPU A100 trials are scored over as many GPUs: a trial's freed GPUs fit its scorer whole
    spec = load_spec(PAPER)
    for model, gpus in {"qwen3-8b": 2, "qwen3-14b": 4, "gemma-3-12b": 4}.items():
        assert spec.training_for(model, "soft").workers_per_trial == gpus == scorers[model]["gpus"], model
    assert all(p["reserved_for_scorers"] == 0 for p in plan["pools"].values())
    # the hard method walks 16 samples per prompt: its trials cost more than the soft ones
    assert cells["qwen3-4b:hard"]["gpu_hours_per_trial"] > cells["qwen3-4b:soft"]["gpu_hours_per_trial"]
    assert plan["gpu_hours"]["total"] == pytest.approx(plan["gpu_hours"]["training"] + plan["gpu_hours"]["scoring"],
                                                       abs=0.2)


def test_a_t4_only_cluster_exits_2_naming_gemma_27b(capsys):
    code, plan, err = _plan_cli(capsys, PAPER, "--cluster", T4_CLUSTER)
    assert code == 2
    assert "gemma-3-27b" in {c["model"] for c in plan["unplaceable"]}
    assert "cell gemma-3-27b:soft (model gemma-3-27b) cannot be placed" in err


def test_without_accelerator_types_memory_and_gpu_counts_decide(paper_without_accelerator_types):
    plan = plan_for(parse_spec(paper_without_accelerator_types), T4_CLUSTER)
    why = {c["cell"]: c["reason"] for c in plan["unplaceable"]}
    assert "needs 8 GPUs, the type has 4 at most" in why["gemma-3-27b:soft"]     # 4 x g4dn.xlarge
    assert "needs 16.9 GiB per GPU, has 15.0" in why["qwen3-4b:soft"]           # a T4 is too small
    assert "qwen3-0.6b:soft" not in why or "no room" in why["qwen3-0.6b:soft"]  # small enough, if room


def test_the_sweep_sizes_concurrency_with_the_plans_function():
    spec = load_spec(PAPER)
    assert cluster.max_concurrent_trials(demand_of(spec), CLUSTER) == plan_for(spec, CLUSTER)["max_concurrent_trials"]
    fixed = spec.model_copy(update={"max_concurrent_trials": 3})
    assert cluster.max_concurrent_trials(demand_of(fixed), CLUSTER) == 3 == plan_for(fixed, CLUSTER)["max_concurrent_trials"]


def test_a_bigger_cluster_holds_more_trials(tmp_path):
    spec = load_spec(PAPER)
    config = yaml.safe_load(Path(CLUSTER).read_text())
    # twice the nodes of each GPU type: more A10Gs alone would not shorten the sweep, whose length the
    # A100s' work sets, so the planner would give them no more trials
    for kind in config["available_node_types"].values():
        kind["max_workers"] = 2 * kind.get("max_workers", 0)
    config["max_workers"] *= 2
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(config))
    assert plan_for(spec, str(bigger))["max_concurrent_trials"] > plan_for(spec, CLUSTER)["max_concurrent_trials"]


def test_local_plan_reports_what_the_embedded_cluster_runs():
    smoke = load_spec(ROOT / "sweeps" / "smoke.yaml")
    assert plan_for(smoke)["max_concurrent_trials"] == smoke.max_concurrent_trials == 1   # the spec's
    spec = smoke.model_copy(update={"max_concurrent_trials": None})
    plan = plan_for(spec)
    local = plan["node_types"][0]
    assert local["cpus"] == capacity.local_num_cpus(demand_of(spec))
    assert plan["max_concurrent_trials"] == capacity.concurrency_from_totals(demand_of(spec), local["cpus"], local["gpus"]) >= 1
    assert plan["unplaceable"] == []


def test_node_types_from_explicit_resources_gcp_accelerators_and_unknown_types(tmp_path):
    config = {
        "cluster_name": "x", "max_workers": 6, "head_node_type": "head", "provider": {"type": "gcp"},
        "available_node_types": {
            "head": {"resources": {"CPU": 8}, "node_config": {"machineType": "n2-standard-8"}},
            "l4s": {"max_workers": 3, "resources": {"CPU": 16, "GPU": 2, "accelerator_type:L4": 1},
                    "node_config": {"machineType": "custom-16"}},
            "t4s": {"max_workers": 2, "resources": {},
                    "node_config": {"machineType": "n1-standard-16",
                                    "guestAccelerators": [{"acceleratorType": "nvidia-tesla-t4",
                                                           "acceleratorCount": 4}]}},
            "a100s": {"max_workers": 9, "resources": {}, "node_config": {"machineType": "a2-highgpu-8g"}},
            "mystery": {"max_workers": 1, "resources": {"GPU": 1}, "node_config": {"machineType": "z9-gpu"}},
        }}
    path = tmp_path / "gcp.yaml"
    path.write_text(yaml.safe_dump(config))
    types, warnings = load_node_types(path)
    by = {t.name: t for t in types}
    assert (by["head"].count, by["head"].gpus, by["head"].cpus) == (1, 0, 8)
    assert (by["l4s"].gpus, by["l4s"].gpu, by["l4s"].gpu_gib, by["l4s"].cpus) == (2, "L4", 22.5, 16)
    assert (by["t4s"].gpus, by["t4s"].gpu, by["t4s"].cpus, by["t4s"].count) == (4, "T4", 16, 2)
    assert (by["a100s"].gpus, by["a100s"].gpu, by["a100s"].count) == (8, "A100", 6)   # the cluster's cap
    assert by["mystery"].gpu_gib is None
    assert any("mystery" in w and "gpu_catalog.py" in w for w in warnings)
    assert any("add up to" in w for w in warnings)


def test_model_sizes_from_the_table_a_config_or_the_name(tiny_model_dir):
    assert model_shape("google/gemma-3-27b-it").params_b == 27.4
    assert model_shape("mistralai/Mistral-7B-Instruct-v0.3").params_b == 7.0
    assert model_shape("HuggingFaceTB/SmolLM2-360M-Instruct").params_b == pytest.approx(0.36)
    assert "size from the name" in model_shape("x/Some-14B").source
    local = model_shape(tiny_model_dir)
    assert "config.json" in local.source and local.layers == 2 and 0 < local.params_b < 0.01
    assert model_shape("org/no-size-here") is None


def test_a_model_of_unknown_size_is_not_judged_but_reported(tmp_path):
    spec = parse_spec({"name": "t", "models": [{"ref": "org/no-size-here"}],
                       "training": {"gpus_per_worker": 1}, "evaluation": {"gpus_per_replica": 1}})
    plan = plan_for(spec, CLUSTER)
    assert plan["unplaceable"] == [] and plan["cells"][0]["training"]["gib_per_gpu"] is None
    assert any("size unknown" in w and "gpu_catalog.py" in w for w in plan["warnings"])


def test_per_model_scorer_overrides_reach_the_replica_options():
    from evaluators.service import build_app

    spec = parse_spec({"name": "t", "evaluation": {"replicas": 2, "gpus_per_replica": 1, "cpus_per_replica": 3},
                       "models": [{"ref": "tiny"},
                                  {"ref": "smollm2-135m-instruct",
                                   "evaluation": {"tensor_parallel_size": 4, "accelerator_type": "A100",
                                                  "replicas": 1}}]})
    plain, big = spec.evaluation_for("tiny"), spec.evaluation_for("smollm2-135m-instruct")
    assert (plain.replicas, plain.replica_gpus, plain.accelerator_type) == (2, 1, None)
    assert (big.replicas, big.replica_gpus, big.accelerator_type, big.cpus_per_replica) == (1, 4, "A100", 3)
    options = build_app(big.scorer(model="m", app_name="a"))._bound_deployment.ray_actor_options
    assert (options["num_gpus"], options["accelerator_type"]) == (4, "A100")
    plain_options = build_app(plain.scorer(model="m", app_name="a"))._bound_deployment.ray_actor_options
    assert "accelerator_type" not in plain_options and plain_options["num_gpus"] == 1
    assert capacity.scorer_gpus(demand_of(spec)) == 2 * 1 + 1 * 4


def test_plan_cli_errors(capsys, tmp_path):
    assert main([PAPER, "--plan", "--cluster", str(tmp_path / "none.yaml")]) == 2
    assert "--cluster: no such file" in capsys.readouterr().err
    text = main([PAPER, "--plan", "--cluster", CLUSTER])
    out = capsys.readouterr().out
    assert text == 0 and "max_concurrent_trials:" in out and "gemma-3-27b:hard" in out


def test_on_a_ray_up_head_the_sweep_plans_against_the_heads_copy_of_the_cluster_yaml(tmp_path, monkeypatch):
    from orchestrator.scheduling.nodes import cluster_yaml_in_use

    monkeypatch.setenv("HOME", str(tmp_path))
    assert cluster_yaml_in_use(None, joining=True) is None          # not a `ray up` head
    (tmp_path / "ray_bootstrap_config.yaml").write_text(Path(CLUSTER).read_text())
    assert cluster_yaml_in_use(None, joining=True) == str(tmp_path / "ray_bootstrap_config.yaml")
    assert cluster_yaml_in_use(None, joining=False) is None         # the embedded local Ray: this machine
    assert cluster_yaml_in_use(T4_CLUSTER, joining=True) == T4_CLUSTER
