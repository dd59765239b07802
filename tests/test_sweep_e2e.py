"""The smoke sweep end to end on a local Ray: killed mid-sweep, resumed, finished with every planned
trial run exactly once. Real Ray Tune, Ray Train + DeepSpeed, Serve and Optuna; tiny offline model."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import psutil
import pytest

import orchestrator.results as results
from models.resolve import model_revision, resolve_model
from orchestrator.records import TrialRecord
from orchestrator.spec import TRIAL_FIELDS, load_spec
from orchestrator.store import RunStore
from trainers.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "sweeps" / "smoke.yaml"
pytestmark = pytest.mark.integration


def _records(run_dir: Path) -> list[TrialRecord]:
    return RunStore(run_dir).trial_records()


def _kill_session(sid: int) -> None:
    """SIGKILL the driver and everything it started (raylet, workers, Serve replicas)."""
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                proc.send_signal(signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass


def test_smoke_sweep_killed_and_resumed(tmp_path):
    spec = load_spec(SMOKE)
    run_dir = tmp_path / spec.name
    cmd = [sys.executable, "-m", "orchestrator.sweep", str(SMOKE), "--storage", str(tmp_path)]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ADDRESS": ""}
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:  # kill once a trial has finished and the next one is running
            statuses = [r.status for r in _records(run_dir)]
            if "done" in statuses and "running" in statuses:
                break
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("no trial finished within 10 minutes")
    finally:
        _kill_session(first.pid)
        first.wait()
    before = {r.key: r for r in _records(run_dir)}
    interrupted = [r for r in before.values() if r.status == "running"]
    finished_first = [r for r in before.values() if r.status == "done"]
    assert len(interrupted) == 1 and finished_first

    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Pareto front per cell" in second.stdout

    after = {r.key: r for r in _records(run_dir)}
    # every record names the model it trained (the tiny model is a local directory: its content hash)
    # and the project's commit
    assert {r.model_revision for r in after.values()} == {model_revision(resolve_model("tiny"))}
    assert all(r.code_commit and len(r.code_commit.removesuffix("-dirty")) == 40 for r in after.values())
    # finished trials were not rerun: their records are untouched
    for r in finished_first:
        assert after[r.key] == r
    # the interrupted trial ran again exactly once, under its own key and with the same parameters
    stopped = interrupted[0]
    assert after[stopped.key].status == "done" and (after[stopped.key].lr, after[stopped.key].mix) == \
        (stopped.lr, stopped.mix)
    reruns = [r for r in after.values() if r.cell == stopped.cell and (r.lr, r.mix) == (stopped.lr, stopped.mix)]
    assert len(reruns) == 1
    # every cell ends with exactly its planned number of finished trials, each with its own adapter
    for model, method in spec.cells:
        cell = f"{model.label}:{method}"
        done = [r for r in after.values() if r.cell == cell and r.status == "done"]
        assert len(done) == spec.trials_per_cell, cell
        assert len({(r.lr, r.mix) for r in done}) == spec.trials_per_cell  # no repeated trial
        for r in done:
            assert (Path(r.adapter_dir) / "adapter_config.json").exists()
            assert set(r.objectives) == {"calibration_error", "capability_loss"}
            # the config the worker trained with: the spec's section, merged, plus the trial's fields
            used = TrainConfig.model_validate_json((Path(r.adapter_dir) / "train_config.json").read_text())
            assert (used.method, used.lr, used.mix) == (method, r.lr, r.mix)
            assert used.model_dump(exclude=set(TRIAL_FIELDS)) == \
                spec.training_for(model.label, method).model_dump(exclude=set(TRIAL_FIELDS))
        study = optuna.load_study(study_name=f"smoke/{cell}", storage=f"sqlite:///{run_dir}/optuna.db")
        assert sum(t.state.name == "COMPLETE" for t in study.trials) == spec.trials_per_cell

    trials = results.trials(run_dir)
    front = results.pareto(run_dir)
    assert len(trials) == len(after) and not front.empty
    for column in ["model", "method", "lr", "mix", "calibration_error", "calibration_error_se", "capability_loss",
                   "capability_loss_se", "sampled/calibration_error", "gsm8k/gold_logprob", "fidelity/tv",
                   "train/loss", "train/replay_fraction"]:
        assert column in trials.columns and column in front.columns
    assert set(front["cell"]) == {f"{m.label}:{meth}" for m, meth in spec.cells}
    done = trials[trials["status"] == "done"]
    for _, p in front.iterrows():  # nothing in its cell dominates a Pareto point
        others = done[done["cell"] == p["cell"]][["calibration_error", "capability_loss"]].to_numpy()
        me = p[["calibration_error", "capability_loss"]].to_numpy(dtype=float)
        assert not np.any(np.all(others <= me, axis=1) & np.any(others < me, axis=1))
    assert not results.baselines(run_dir).empty
    assert (run_dir / "pareto" / "pareto.csv").exists() and (run_dir / "pareto" / "index.html").exists()
    assert list((run_dir / "pareto").glob("*.png"))
