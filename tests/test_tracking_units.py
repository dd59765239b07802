"""The `tracking:` and `budget:` sections, trial costs and the budget's arithmetic, and each tracker
against its real library (MLflow on a SQLite store, W&B offline), without Ray."""

import importlib.util
from pathlib import Path

import pytest

from orchestrator.records import TrialRecord
from orchestrator.scheduling.capacity import TRIAL_DRIVER_CPU
from orchestrator.spec import SpecError, parse_spec
from orchestrator.store import RunStore
from orchestrator.tracking.base import TrialInfo, flatten
from orchestrator.tracking.budget import Budget
from orchestrator.tracking.cost import CellPrices, SweepCosts, trial_cost
from orchestrator.tracking.mlflow_tracker import MlflowTracker

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "models": [{"ref": "tiny"}], "methods": ["soft"], "trials_per_cell": 3}


def _record(key="tiny-soft-000", status="done", train_s=3600.0, eval_s=1800.0, **kw) -> TrialRecord:
    return TrialRecord(key=key, cell="tiny:soft", model="tiny", method="soft", lr=1e-3, mix=0.1,
                       optuna_number=0, status=status, train_wall_s=train_s, eval_wall_s=eval_s, **kw)


def test_tracking_and_budget_are_typed_sections_off_by_default():
    spec = parse_spec(BASE)
    assert spec.tracking.mlflow is None and spec.tracking.wandb is None and spec.budget is None
    spec = parse_spec(BASE | {"tracking": {"mlflow": {"experiment": "e"}, "wandb": {"mode": "offline"}},
                              "budget": {"gpu_hours": 2}})
    assert spec.tracking.mlflow.experiment == "e" and spec.tracking.wandb.mode == "offline"
    assert spec.budget.describe() == "2 GPU-hours"
    for bad, where in [({"tracking": {"mlflow": {"uri": "x"}}}, "tracking.mlflow.uri"),
                       ({"tracking": {"wandb": {"mode": "sometimes"}}}, "tracking.wandb.mode"),
                       ({"budget": {}}, "budget"), ({"budget": {"gpu_hours": -1}}, "budget.gpu_hours")]:
        with pytest.raises(SpecError, match=where.replace(".", r"\.")):
            parse_spec(BASE | bad)


def test_a_tracker_that_is_not_installed_is_refused_at_validate_naming_the_extra(tmp_path, monkeypatch, capsys):
    from orchestrator import sweep

    spec = tmp_path / "s.yaml"
    spec.write_text("name: t\nmodels: [{ref: tiny}]\ntracking: {wandb: {mode: offline}}\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert sweep.main([str(spec), "--validate"]) == 2
    err = capsys.readouterr().err
    assert "tracking.wandb" in err and "pip install -e '.[tracking]'" in err


def test_a_trial_costs_what_it_held_times_how_long_and_dollars_where_priced():
    spec = parse_spec(BASE | {"training": {"workers_per_trial": 2, "cpus_per_worker": 3},
                              "evaluation": {"replicas": 2, "cpus_per_replica": 1}})
    from orchestrator.parts import slice_spec

    parts = slice_spec(spec)
    cost = SweepCosts(parts).of(_record())
    # training: 2 workers x 3 CPUs + the trial driver's CPU, 1 h; scoring: 2 replicas x 1 CPU + driver, 0.5 h
    driver = TRIAL_DRIVER_CPU
    assert cost["train_cpu_s"] == pytest.approx((6 + driver) * 3600)
    assert cost["eval_cpu_s"] == pytest.approx((2 + driver) * 1800)
    assert cost["cpu_hours"] == pytest.approx(6 + driver + (2 + driver) / 2)
    assert cost["gpu_hours"] == 0 and cost["planned_gpu_hours"] is None and cost["dollars"] is None
    gpu = parts.trials.training["tiny:soft"].model_copy(update={"gpus_per_worker": 1})
    priced = trial_cost(_record(), gpu, parts.trials.scorers["tiny"],
                        CellPrices(0.25, train_price=(1.212, "gpu"), eval_price=(None, "")))
    assert priced["gpu_hours"] == pytest.approx(2.0) and priced["planned_gpu_hours"] == 0.25
    assert priced["dollars"] == pytest.approx(2 * 1.212)


def test_the_budget_refuses_the_trial_that_would_cross_it(tmp_path):
    from orchestrator.parts import slice_spec

    spec = parse_spec(BASE | {"budget": {"cpu_hours": 5}})
    store = RunStore(tmp_path)
    budget = Budget(spec.budget, SweepCosts(slice_spec(spec)), store)
    assert budget.unmeasured(["tiny:soft"]) and budget.allows(["tiny:soft"], [])   # nothing measured: one starts
    store.write_trial(_record(train_s=3600.0, eval_s=0.0))   # (1 worker x 1 CPU + driver) x 1 h
    per_trial = budget.planned("tiny:soft", "cpu_hours")
    assert per_trial == pytest.approx(budget.spent()["cpu_hours"]) and per_trial > 1
    n = int(5 // per_trial)   # trials that fit the budget
    assert budget.allows(["tiny:soft"], ["tiny:soft"] * (n - 2))
    assert not budget.allows(["tiny:soft"], ["tiny:soft"] * (n - 1))
    assert "budget of 5 CPU-hours reached" in budget.stopped


def test_flatten_names_nested_config_fields_with_dots():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": ""}


def test_mlflow_finds_the_sweep_and_each_trial_run_again_by_key(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for attempt in range(2):   # the second: a resumed sweep, the trial run again
        t = MlflowTracker(uri, "exp", (tmp_path / "art").as_uri())
        t.open_sweep("sw", {"sweep": "sw"})
        t.open_trial(TrialInfo("k-000", "tiny:soft", {"lr": 0.1}, {"training": {"steps": 3}}))
        for step in (1, 2):
            t.log_step("k-000", step, {"loss": 1.0 / step + attempt})
        t.close_trial("k-000", {"exact_tv": 0.5, "exact_tv_se": 0.01}, {"adapter_dir": "/a"}, "done")
        t.close_sweep({"total_gpu_hours": 0.0}, [], finished=True)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    parent = [r for r in runs if r.data.tags.get("cft.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("cft.kind") == "trial"]
    assert len(parent) == 1 and len(trials) == 1
    run = trials[0]
    assert run.info.run_name == "k-000" and run.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
    assert run.data.params["lr"] == "0.1" and run.data.params["training.steps"] == "3"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 4
    assert run.data.metrics["exact_tv_se"] == 0.01 and run.data.tags["adapter_dir"] == "/a"
    assert run.info.status == "FINISHED"


def test_results_and_the_report_show_held_and_planned_cost_per_cell_and_in_total(tmp_path, capsys):
    import json

    import orchestrator.results as results
    from orchestrator.report import write_report
    from orchestrator.store import write_json

    spec = parse_spec(BASE | {"methods": ["soft", "hard"], "budget": {"gpu_hours": 3}})
    write_json(tmp_path / "spec.json", spec.model_dump(mode="json"))
    store = RunStore(tmp_path)
    costs = [("tiny-soft-000", "tiny:soft", 1.0, 0.5, 2.0), ("tiny-hard-000", "tiny:hard", 0.5, None, None),
             ("tiny-hard-001", "tiny:hard", 0.25, 0.5, 1.0)]
    for key, cell, held, planned, dollars in costs:
        store.write_trial(_record(key=key).model_copy(update=dict(
            cell=cell, method=cell.split(":")[1], gpu_hours=held, cpu_hours=4 * held, planned_gpu_hours=planned,
            dollars=dollars, objectives={"calibration_error": 0.5, "capability_loss": 0.1})))
    table = results.costs(tmp_path).set_index("cell")
    assert table.loc["total", "trials"] == 3 and table.loc["total", "gpu_hours"] == 1.75
    assert table.loc["tiny:hard", "planned_gpu_hours"] == 0.5 and table.loc["total", "dollars"] == 3.0
    assert results.main([str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {t["key"]: (t["gpu_hours"], t["planned_gpu_hours"]) for t in data["trials"]}["tiny-soft-000"] == (1.0, 0.5)
    assert data["cost"][-1]["cell"] == "total" and data["cost"][-1]["cpu_hours"] == 7.0
    write_report(tmp_path)
    page = (tmp_path / "pareto" / "index.html").read_text()
    assert "<h2>Cost</h2>" in page and "Budget: 3 GPU-hours" in page and "GPU-hours planned" in page
