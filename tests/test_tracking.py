"""A small sweep tracked in MLflow (SQLite store) and W&B (offline), with a budget, as a user runs it:
  1. a CPU-hour budget smaller than the sweep's cost stops it after its first trial (of two): exit 0, the
     message names the budget and what is left undone, the report is written;
  2. resumed with a larger budget and interrupted (SIGINT) while its second trial trains: exit 130;
  3. resumed again: it finishes (exit 0).
Then, read back with MlflowClient: one parent run and one run per trial key under it (the interrupted
trial kept its run), each with a per-step loss history, both objectives and their standard errors and
the adapter directory; W&B's offline files: one run id per trial key; every record and
`orchestrator.results --json` carry the held GPU-/CPU-hours beside the planner's estimate.
Real Ray Tune, Train + DeepSpeed, Serve (HF engine), Optuna, MLflow and W&B."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration

SPEC = {
    "name": "tracked", "models": [{"ref": "tiny"}], "methods": ["soft"],
    "search": {"lr": {"low": 1e-4, "high": 5e-2, "log": True}, "mix": {"low": 0.0, "high": 0.5},
               "sampler": "random"},
    "objectives": [{"name": "calibration_error"}, {"name": "capability_loss"}],   # both with standard errors
    "trials_per_cell": 2, "max_concurrent_trials": 1,
    "training": {"epochs": 2, "max_steps": 5, "batch_size": 2, "lora_r": 4, "lora_alpha": 8, "workers_per_trial": 1,
                 "cpus_per_worker": 1, "families": ["binomial"], "prompts_per_family": 2, "num_decimals": 0,
                 "max_bins": 8, "replay_pool": 8, "checkpoint_every": 4},
    "evaluation": {"engine": "hf", "replicas": 1, "cpus_per_replica": 1, "evals": ["sampled", "gsm8k"], "samples_per_prompt": 20, "gsm8k_items": 4,
                   "splits": ["test_unseen_params", "test_ood_family"],
                   "families": ["binomial", "poisson", "geometric", "bernoulli", "negative_binomial"],
                   "num_decimals": 0, "max_bins": 8, "max_model_len": 128},
    "seed": 0,
}


def _sweep(tmp_path: Path, budget: float, *extra: str, wait: bool = True):
    spec = tmp_path / "tracked.yaml"
    spec.write_text(yaml.safe_dump(SPEC | {
        "tracking": {"mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "cft"},
                     "wandb": {"mode": "offline", "project": "cft-test"}},
        "budget": {"cpu_hours": budget}}))
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ADDRESS": "", "PYTHONPATH": str(ROOT),
                        "WANDB_DIR": str(tmp_path / "wandb"), "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    (tmp_path / "wandb").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "orchestrator.sweep", str(spec), "--storage", str(tmp_path / "runs"), *extra]
    log = tmp_path / f"sweep-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    if wait:
        proc.wait(timeout=900)
    return proc, log


def test_a_tracked_budgeted_sweep_interrupted_and_resumed_keeps_one_run_per_trial(tmp_path):
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "runs" / "tracked"
    # 1. a budget the first trial's cost already exhausts
    proc, log = _sweep(tmp_path, 1e-6)
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    assert "Stopped by the budget: budget of 1e-06 CPU-hours reached" in out, out[-4000:]
    assert "Not run: 1 trial(s) (tiny:soft: 1)" in out
    records = RunStore(run_dir).trial_records()
    assert [r.status for r in records] == ["done"]
    assert (run_dir / "pareto" / "index.html").is_file() and "Cost" in (run_dir / "pareto" / "index.html").read_text()

    # 2. a larger budget, interrupted while the second trial trains
    proc, log = _sweep(tmp_path, 100.0, "--resume", wait=False)
    deadline = time.time() + 600
    while not any(r.status == "running" and r.key.endswith("001") for r in RunStore(run_dir).trial_records()):
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-4000:]
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130, log.read_text()[-4000:]

    # 3. resumed: the sweep finishes
    proc, log = _sweep(tmp_path, 100.0, "--resume")
    assert proc.returncode == 0, log.read_text()[-4000:]
    records = RunStore(run_dir).trial_records()
    keys = sorted(r.key for r in records)
    assert len(keys) == 2 and all(r.status == "done" for r in records)
    for r in records:   # the cost of every trial, held beside planned (none planned on the embedded cluster)
        assert r.cpu_hours > 0 and r.gpu_hours == 0 and r.train_cpu_s > 0 and r.eval_cpu_s > 0
        assert r.planned_gpu_hours is None and r.dollars is None

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cft").experiment_id])
    parents = [r for r in runs if r.data.tags.get("cft.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("cft.kind") == "trial"]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    assert sorted(r.info.run_name for r in trials) == keys   # one run per key, the interrupted one included
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["cft.cell"] == "tiny:soft" and run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "loss")) > 1
        assert {"lr", "tokens_per_s"} <= set(run.data.metrics)
        for o in ("calibration_error", "capability_loss"):
            assert o in run.data.metrics and f"{o}_se" in run.data.metrics
        assert run.data.metrics["cpu_hours"] > 0
        assert {"lr", "mix", "model", "method", "training.max_steps", "evaluation.evals"} <= set(run.data.params)
        assert run.data.tags["adapter_dir"].endswith(run.info.run_name)
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert (run_dir / "mlartifacts").is_dir() and not (ROOT / "mlruns").exists()   # kept in the run directory
    assert {"baselines.json", "pareto.csv", "index.html"} <= artifacts
    assert any(k.startswith("base/tiny/") for k in parents[0].data.metrics)

    offline = [p.name for p in (tmp_path / "wandb" / "wandb").glob("offline-run-*")]
    ids = {re.sub(r"^offline-run-\d{8}_\d{6}-", "", name) for name in offline}
    assert ids == {f"tracked-{k}" for k in keys} | {"tracked-sweep"}, offline
    for p in (tmp_path / "wandb" / "wandb").glob(f"offline-run-*-tracked-{keys[0]}"):   # its step history
        assert b"train/loss" in next(p.glob("*.wandb")).read_bytes()

    out = subprocess.run([sys.executable, "-m", "orchestrator.results", str(run_dir), "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    total = next(c for c in data["cost"] if c["cell"] == "total")
    assert total["trials"] == 2 and total["cpu_hours"] == pytest.approx(sum(r.cpu_hours for r in records))
    assert "planned_gpu_hours" in total and all("gpu_hours" in t and "planned_gpu_hours" in t for t in data["trials"])
