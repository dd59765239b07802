"""Chaos: one sweep killed or interrupted at every stage, resumed each time, and still ending with each
planned trial finished exactly once and the Optuna study agreeing with the records.

A minimal spec (tiny model, one method, 3 trials of 7 steps, a small evaluation) runs five times
on one run directory, each resuming the last:
  1. SIGKILL to the whole driver session while the base model is scored;
  2. a second sweep on the same storage is refused (exit 2, naming the first); the session is
     SIGKILLed during trial A's training, after its first Ray Train checkpoint;
  3. A runs again under its key from that checkpoint; SIGINT while it is scored: exit 130;
  4. SIGTERM between trials (A done, the next not started): exit 143;
  5. with a NaN loss injected at step 2, trial B diverges (error "diverged at step 2", Optuna FAIL);
     trial C's driver process is SIGKILLed: an error record naming the cause; the sweep exits 1.
Real Ray Tune, Train + DeepSpeed, Serve (HF engine) and Optuna, as a user runs them.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

import orchestrator.results as results
from orchestrator.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration

SPEC = {
    "name": "chaos", "models": [{"ref": "tiny"}], "methods": ["soft"],
    "search": {"lr": {"low": 1e-4, "high": 5e-2, "log": True}, "mix": {"low": 0.0, "high": 0.5},
               "sampler": "random"},
    "objectives": [{"name": "exact_tv"}],
    "trials_per_cell": 3, "max_concurrent_trials": 1,
    "training": {"epochs": 4, "batch_size": 2, "lora_r": 4, "lora_alpha": 8, "workers_per_trial": 1,
                 "cpus_per_worker": 1, "families": ["binomial"], "prompts_per_family": 2, "num_decimals": 0,
                 "max_bins": 8, "replay_pool": 8, "checkpoint_every": 2},
    "evaluation": {"engine": "hf", "replicas": 1, "cpus_per_replica": 1, "evals": ["fidelity"],
                   "splits": ["test_unseen_params", "test_ood_family"],
                   "families": ["binomial", "poisson", "geometric", "bernoulli", "negative_binomial"],
                   "num_decimals": 0, "max_bins": 8, "max_model_len": 128},
    "seed": 0,
}
TRIAL_DRIVER = "ray::ImplicitFunc"   # the process title of a Tune function trial


class Driver:
    """One `python -m orchestrator.sweep` in its own session, its output in a log file."""

    def __init__(self, spec_path: Path, storage: Path, log: Path, *extra: str, env: dict | None = None):
        self.log = log
        cmd = [sys.executable, "-m", "orchestrator.sweep", str(spec_path), "--storage", str(storage), *extra]
        env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ADDRESS": "", "PYTHONPATH": str(ROOT)} | (env or {})
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition, what: str, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the sweep exited ({self.proc.returncode}) before {what}:\n" \
                                             + self.output()[-4000:]
            assert time.time() < deadline, f"no {what} within {timeout} s:\n" + self.output()[-4000:]
            time.sleep(0.1)

    def session(self) -> list[psutil.Process]:
        procs = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if os.getsid(p.pid) == self.proc.pid:
                    procs.append(p)
            except (ProcessLookupError, PermissionError):
                pass
        return procs

    def kill_session(self) -> int:
        """SIGKILL the driver and everything it started (raylet, workers, replicas): a lost machine."""
        for p in self.session():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        return self.proc.wait(timeout=60)

    def finish(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.kill_session()


def _records(run_dir: Path) -> dict:
    return {r.key: r for r in RunStore(run_dir).trial_records()}


def _status(run_dir: Path, key: str) -> str | None:
    r = _records(run_dir).get(key)
    return r.status if r else None


def test_a_sweep_killed_and_interrupted_at_every_stage_finishes_each_trial_once(tmp_path):
    spec_path = tmp_path / "chaos.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    storage, run_dir = tmp_path / "results", tmp_path / "results" / "chaos"
    t0 = time.time()

    # 1. SIGKILL while the base model is scored
    first = Driver(spec_path, storage, tmp_path / "1.log")
    first.wait_for(lambda: "Scoring base model" in first.output(), "baseline scoring")
    assert first.kill_session() == -signal.SIGKILL
    print(f"1: {time.time() - t0:.0f} s")
    assert not (run_dir / "baselines.json").exists() and not _records(run_dir)

    # 2. a second sweep is refused while the first runs; then SIGKILL mid-training
    second = Driver(spec_path, storage, tmp_path / "2.log", "--resume")
    second.wait_for(lambda: "Trials to run" in second.output(), "the trials to start")
    started = time.time()
    rival = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(spec_path), "--storage", str(storage)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env=os.environ | {"RAY_ADDRESS": "", "PYTHONPATH": str(ROOT)})
    assert rival.returncode == 2 and time.time() - started < 30, rival.stderr[-2000:]
    assert "in use by another sweep" in rival.stderr and f"PID {second.proc.pid}" in rival.stderr
    assert "interrupted" not in {r.status for r in _records(run_dir).values()}   # the rival touched nothing
    second.wait_for(lambda: list(run_dir.glob("train/*/checkpoint_manager_snapshot.json")), "a training checkpoint")
    assert second.kill_session() == -signal.SIGKILL
    a = next(run_dir.glob("train/*/checkpoint_manager_snapshot.json")).parent.name
    assert _status(run_dir, a) == "running"   # killed mid-training
    a_params = (_records(run_dir)[a].lr, _records(run_dir)[a].mix)
    print(f"2: {time.time() - t0:.0f} s")

    # 3. A runs again under its key from its checkpoint; SIGINT while it is scored
    third = Driver(spec_path, storage, tmp_path / "3.log", "--resume")
    third.wait_for(lambda: (run_dir / "adapters" / a / "adapter_config.json").exists()
                   and _status(run_dir, a) == "running", "trial A being scored")
    third.proc.send_signal(signal.SIGINT)
    assert third.finish() == 130, third.output()[-4000:]
    out = third.output()
    assert f"running again first: {a}" in out and "--resume" in out.split("Resume with:")[-1]
    assert not (run_dir / "pareto").exists()
    print(f"3: {time.time() - t0:.0f} s")
    assert _status(run_dir, a) in ("interrupted", "done")   # done if scoring ended within the grace period

    # 4. SIGTERM between trials
    fourth = Driver(spec_path, storage, tmp_path / "4.log", "--resume")
    fourth.wait_for(lambda: "Trials to run" in fourth.output() and _status(run_dir, a) == "done"
                    and len(_records(run_dir)) == 1, "trial A done, the next not started")
    fourth.proc.send_signal(signal.SIGTERM)
    assert fourth.finish() == 143, fourth.output()[-4000:]
    print(f"4: {time.time() - t0:.0f} s")
    assert not (run_dir / "pareto").exists()
    finished_a = _records(run_dir)[a]

    # 5. B diverges at step 2 (injected NaN loss); C's trial driver is SIGKILLed
    fifth = Driver(spec_path, storage, tmp_path / "5.log", "--resume", env={"CFT_TRAIN_FAULT": "2:0:nan"})
    fifth.wait_for(lambda: sum(r.status == "error" for r in _records(run_dir).values()) == 1
                   and any(r.status == "running" for r in _records(run_dir).values()), "trial C running")
    drivers = [p for p in fifth.session() if (p.info["cmdline"] or [""])[0].startswith(TRIAL_DRIVER)]
    assert len(drivers) == 1, [p.info["cmdline"] for p in fifth.session()]
    drivers[0].kill()
    assert fifth.finish() == 1, fifth.output()[-4000:]
    print(f"chaos sequence: {time.time() - t0:.0f} s")

    records = sorted(_records(run_dir).values(), key=lambda r: r.started_at)
    assert [r.key for r in records][0] == a and len({r.key for r in records}) == len(records) == 3
    done, diverged, killed = records
    assert done.status == "done" and done.train_metrics["resumed_from_step"] >= 2   # resumed, same key
    assert done == finished_a   # a finished trial is not run again by a later resume
    assert (done.lr, done.mix) == a_params   # A ran again with its own parameters
    assert diverged.status == "error" and "diverged at step 2" in diverged.error
    assert diverged.train_metrics["diverged_at_step"] == 2 and diverged.train_metrics["last_finite_loss"] > 0
    assert killed.status == "error" and "trial driver died: ActorDiedError" in killed.error
    assert "failed" in fifth.output() and killed.key in fifth.output()

    study = optuna.load_study(study_name="chaos/tiny:soft", storage=f"sqlite:///{run_dir}/optuna.db")
    states = {t.number: t for t in study.trials}
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    assert [t.number for t in study.trials if t.state.name == "COMPLETE"] == [done.optuna_number]
    assert states[done.optuna_number].values == [done.objectives["exact_tv"]]
    assert states[done.optuna_number].params == {"lr": done.lr, "mix": done.mix}
    for r in (diverged, killed):
        assert states[r.optuna_number].state.name == "FAIL" and states[r.optuna_number].params["lr"] == r.lr
    assert len(results.trials(run_dir)) == 3 and (run_dir / "pareto" / "pareto.csv").exists()
