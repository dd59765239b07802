"""The README's cluster workflow on one machine: `ray start --head` on loopback ports with Ray's token
authentication on, `ray job submit --working-dir . -- python -m orchestrator.sweep sweeps/smoke.yaml`
with `RAY_AUTH_MODE=token` and the cluster's token, then the results read with pandas.

The finished sweep (fresh storage) is also what the other checks of a finished and a watched sweep
read: every planned trial finished once, trained with its spec's section and scored on every
evaluation, the records name the model and the code, results and the front read with pandas; each
trial's Tune results hold its training progress before the final report, the Optuna studies carry
the objectives' names and each trial's key, the Ray dashboard's Train view lists the runs, the
report has its hypervolume plots, `orchestrator.results` names every cell, and optuna-dashboard
serves the studies. One sweep for all of them: CPU is scarce. (A sweep killed and resumed:
tests/test_faults_chaos.py.)

Only the processes this test started are stopped: `ray start` runs in a session of its own, and every
process in that session (GCS, raylet, dashboard, the job's driver, trial actors, a lingering
`ray::TrainController`) is terminated at the end; `ray stop` would stop every Ray on the host.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import psutil
import pytest

import orchestrator.results as results
from models.resolve import model_revision, resolve_model, source_digest
from orchestrator.spec import TRIAL_FIELDS, load_spec
from orchestrator.store import RunStore
from trainers.config import TrainConfig
from trainers.ray_local import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration
PORT_FLAGS = ["--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
              "--object-manager-port", "--dashboard-agent-grpc-port", "--dashboard-agent-listen-port",
              "--metrics-export-port", "--runtime-env-agent-port"]


def _stop_session(sid: int, grace_s: float = 15.0) -> None:
    """SIGTERM every process of the session `ray start` led, then SIGKILL what is left."""
    def members():
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == sid:
                    found.append(proc)
            except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
                pass
        return found

    for proc in members():
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(members(), timeout=grace_s)
    for proc in alive:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A local head (loopback, token auth) and the README's job submission of the smoke sweep."""
    from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

    base = Path(tempfile.mkdtemp(prefix="cftjob-", dir="/tmp"))   # short: Ray's socket paths are limited
    token = generate_new_authentication_token()
    ports = {flag: free_port() for flag in PORT_FLAGS}
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env |= {"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DS_ACCELERATOR": "cpu",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    start = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
                              "--dashboard-host=127.0.0.1", "--num-cpus=4", f"--temp-dir={base / 'ray'}",
                              "--disable-usage-stats", *[f"{f}={p}" for f, p in ports.items()]],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        started = start.communicate(timeout=180)[0]
        assert start.returncode == 0, started
        dashboard = f"http://127.0.0.1:{ports['--dashboard-port']}"
        storage = base / "results"
        t0 = time.time()
        submit = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir", ".", "--",
             "python", "-m", "orchestrator.sweep", "sweeps/smoke.yaml", "--storage", str(storage)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
        wrong = subprocess.run([str(BIN / "ray"), "job", "list", "--address", dashboard], cwd=ROOT,
                               env=env | {"RAY_AUTH_TOKEN": "not-the-token"}, capture_output=True, text=True,
                               timeout=120)
        train_runs = _get(f"{dashboard}/api/train/v2/runs/v1", token)   # Train V2 runs
        yield {"submit": submit, "wrong_token": wrong, "run_dir": storage / "smoke", "wall_s": time.time() - t0,
               "train_runs": train_runs, "dashboard": dashboard}
    finally:
        _stop_session(start.pid)
        shutil.rmtree(base, ignore_errors=True)


def _get(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()
    except Exception as err:   # reported by the test that reads it
        return f"{type(err).__name__}: {err}"


def test_readme_job_workflow_runs_the_smoke_sweep(job):
    submit = job["submit"]
    out = submit.stdout + submit.stderr
    assert submit.returncode == 0 and "succeeded" in out, out[-4000:]
    assert "Ray dashboard: http://127.0.0.1:" in out   # printed at sweep start
    assert "base model tiny: " in out                   # the baseline's progress bar
    wrong = job["wrong_token"]   # token authentication is on: another token is refused
    assert wrong.returncode != 0 and "auth" in (wrong.stdout + wrong.stderr).lower()
    run_dir = job["run_dir"]
    front = pd.read_csv(run_dir / "pareto" / "pareto.csv")
    spec = load_spec(ROOT / "sweeps" / "smoke.yaml")
    cells = {f"{m.label}:{method}" for m, method in spec.cells}
    assert set(front["cell"]) == cells == set(results.pareto(run_dir)["cell"])
    assert front[[o.name for o in spec.objectives]].notna().all().all()
    print(f"README job workflow: smoke sweep in {job['wall_s']:.0f} s")


def test_every_planned_trial_finished_once_trained_as_its_spec_says(job):
    run_dir = job["run_dir"]
    spec = load_spec(ROOT / "sweeps" / "smoke.yaml")
    records = RunStore(run_dir).trial_records()
    # every record names the model it trained (the tiny model is a local directory: its content hash)
    # and the code: the job's driver runs in the copy Ray uploaded, which has no .git, so the hash of
    # the project's sources stands for the commit
    assert {r.model_revision for r in records} == {model_revision(resolve_model("tiny"))}
    assert {r.code_commit for r in records} == {source_digest(ROOT)}
    for model, method in spec.cells:
        cell = f"{model.label}:{method}"
        done = [r for r in records if r.cell == cell and r.status == "done"]
        assert len(done) == spec.trials_per_cell, cell
        assert len({(r.lr, r.mix) for r in done}) == spec.trials_per_cell   # no repeated trial
        for r in done:
            assert (Path(r.adapter_dir) / "adapter_config.json").exists()
            assert set(r.objectives) == {o.name for o in spec.objectives}
            # the config the worker trained with: the spec's section, merged, plus the trial's fields
            used = TrainConfig.model_validate_json((Path(r.adapter_dir) / "train_config.json").read_text())
            assert (used.method, used.lr, used.mix) == (method, r.lr, r.mix)
            assert used.model_dump(exclude=set(TRIAL_FIELDS)) == \
                spec.training_for(model.label, method).model_dump(exclude=set(TRIAL_FIELDS))


def test_results_and_the_front_read_with_pandas(job):
    run_dir = job["run_dir"]
    trials, front = results.trials(run_dir), results.pareto(run_dir)
    assert len(trials) == len(RunStore(run_dir).trial_records()) and not front.empty
    for column in ["model", "method", "lr", "mix", "calibration_error", "calibration_error_se", "capability_loss",
                   "capability_loss_se", "sampled/calibration_error", "gsm8k/gold_logprob", "fidelity/tv",
                   "train/loss", "train/replay_fraction"]:
        assert column in trials.columns and column in front.columns
    done = trials[trials["status"] == "done"]
    for _, p in front.iterrows():  # nothing in its cell dominates a Pareto point
        others = done[done["cell"] == p["cell"]][["calibration_error", "capability_loss"]].to_numpy()
        me = p[["calibration_error", "capability_loss"]].to_numpy(dtype=float)
        assert not np.any(np.all(others <= me, axis=1) & np.any(others < me, axis=1))
    assert not results.baselines(run_dir).empty
    assert list((run_dir / "pareto").glob("*.png"))


def test_tune_results_show_training_before_the_objectives(job):
    run_dir = job["run_dir"]
    records = RunStore(run_dir).trial_records()
    rows_by_key = {}
    for path in (run_dir / "tune").glob("*/*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows_by_key[rows[-1]["config"]["key"]] = rows
    assert set(rows_by_key) == {r.key for r in records}
    for key, rows in rows_by_key.items():
        assert len(rows) > 1, key
        final = rows[-1]
        trained = [r for r in rows[:-1] if r.get("phase") == "trained"]   # training over, its GPUs free
        progress = [r for r in rows[:-1] if r.get("phase") != "trained"]
        assert len(trained) == 1 and trained[0]["trial_key"] == key, key
        assert rows.index(trained[0]) > max(rows.index(r) for r in progress), key
        assert all({"step", "loss", "tokens_per_s"} <= set(r) for r in progress), key
        assert [r["step"] for r in progress] == sorted(r["step"] for r in progress)
        assert all("calibration_error" not in r for r in progress)   # no partial score reaches the search
        assert final["trial_key"] == key and "calibration_error" in final


def test_studies_carry_objective_names_and_trial_keys(job):
    run_dir = job["run_dir"]
    spec = RunStore(run_dir).saved_spec()
    records = {r.key: r for r in RunStore(run_dir).trial_records()}
    for model, method in spec.cells:
        study = optuna.load_study(study_name=f"{spec.name}/{model.label}:{method}",
                                  storage=RunStore(run_dir).optuna_url())
        assert study.metric_names == [o.name for o in spec.objectives]
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(complete) == spec.trials_per_cell
        for t in complete:
            record = records[t.user_attrs["key"]]
            assert (t.params["lr"], t.params["mix"]) == (record.lr, record.mix)
            assert t.user_attrs["status"] == record.status == "done"
            assert t.user_attrs["adapter_dir"] == record.adapter_dir


def test_dashboard_train_view_lists_each_trial_run(job):
    listing = job["train_runs"]
    for key in (r.key for r in RunStore(job["run_dir"]).trial_records()):
        assert key in listing, listing[:2000]


def test_report_and_terminal_summary_of_the_finished_sweep(job):
    run_dir = job["run_dir"]
    page = (run_dir / "pareto" / "index.html").read_text()
    spec = RunStore(run_dir).saved_spec()
    assert page.count('<img class="hypervolume"') == len(spec.cells)
    out = subprocess.run([sys.executable, "-m", "orchestrator.results", str(run_dir)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    for model, method in spec.cells:
        assert f"{model.label}:{method}: {spec.trials_per_cell}/{spec.trials_per_cell} done" in out.stdout


def test_optuna_dashboard_serves_the_studies(job):
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (the `dashboard` extra)")
    run_dir = job["run_dir"]
    spec = RunStore(run_dir).saved_spec()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", "from optuna_dashboard._cli import main; main()",
                               RunStore(run_dir).optuna_url(), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, listing = time.time() + 60, ""
        while time.time() < deadline and not listing.startswith("{"):
            assert server.poll() is None, server.stdout.read()
            listing = _get(f"http://127.0.0.1:{port}/api/studies")
            time.sleep(0.5)
        studies = {s["study_name"]: s for s in json.loads(listing)["study_summaries"]}
        names = {f"{spec.name}/{m.label}:{method}" for m, method in spec.cells}
        assert names <= set(studies)
        for name in names:
            detail = json.loads(_get(f"http://127.0.0.1:{port}/api/studies/{studies[name]['study_id']}"))
            assert detail["objective_names"] == [o.name for o in spec.objectives]
            keys = [a["value"] for t in detail["trials"] for a in t["user_attrs"] if a["key"] == "key"]
            assert len(keys) == spec.trials_per_cell and all(k.startswith(name.split("/")[1].replace(":", "-"))
                                                             for k in keys)
    finally:
        server.terminate()
        server.wait(timeout=30)
