"""A run directory nothing can corrupt: the driver lock, unreadable files, a lost or broken optuna.db,
trial keys that never collide, paths spelled another way. No Ray is started."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import orchestrator.results as results
from orchestrator.lock import LOCK_NAME, STALE_AFTER_S, RunLock, RunLocked
from orchestrator.records import TrialRecord
from orchestrator.cells import Cell, trial_key
from orchestrator.search import CellSearcher
from orchestrator.spec import SpecError, parse_spec
from orchestrator.store import RunStore, write_json
from orchestrator.sweep import prepare_run_dir

ROOT = Path(__file__).resolve().parents[1]
CELL = Cell("tiny", "soft")


# the driver lock

def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another driver: a process that holds the run directory's lock until killed."""
    code = ("import sys, time; from orchestrator.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_sweep_on_a_storage_in_use_exits_2_at_once_naming_the_holder(tmp_path):
    spec = ROOT / "sweeps" / "smoke.yaml"
    holder = _hold_lock(tmp_path / "smoke")
    try:
        with pytest.raises(RunLocked, match=f"PID {holder.pid} on host {socket.gethostname()}"):
            RunLock(tmp_path / "smoke").acquire()
        started = time.time()
        out = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(spec), "--storage", str(tmp_path)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env=os.environ | {"RAY_ADDRESS": "", "PYTHONPATH": str(ROOT)})
        assert out.returncode == 2 and time.time() - started < 30, out.stderr
        assert "in use by another sweep" in out.stderr and f"PID {holder.pid}" in out.stderr
        assert sorted(p.name for p in (tmp_path / "smoke").iterdir()) == [LOCK_NAME]   # nothing written
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path / "smoke") as lock:   # the OS dropped the dead holder's lock
        assert lock.taken_over["pid"] == holder.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_reported(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    stale = {"host": socket.gethostname(), "pid": dead.pid, "process_start": 1.0, "started_at": 1.0}
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(stale))
    lock = RunLock(tmp_path / "run").acquire()
    try:
        assert lock.taken_over == stale
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_holder_named_in_the_file_counts_where_flock_is_not_enforced(tmp_path):
    """A live process on this host (a reused PID does not count), or another host's fresh heartbeat."""
    (tmp_path / "run").mkdir()
    lock_file = tmp_path / "run" / LOCK_NAME
    import psutil

    parent = psutil.Process(os.getppid())
    live = {"host": socket.gethostname(), "pid": parent.pid, "process_start": parent.create_time()}
    lock_file.write_text(json.dumps(live))
    with pytest.raises(RunLocked, match=f"PID {parent.pid}"):
        RunLock(tmp_path / "run").acquire()
    lock_file.write_text(json.dumps(live | {"process_start": parent.create_time() - 1000}))   # PID reused
    RunLock(tmp_path / "run").acquire().release()
    other = {"host": "another-node", "pid": 1, "started_at": time.time(), "heartbeat_at": time.time()}
    lock_file.write_text(json.dumps(other))
    with pytest.raises(RunLocked, match="another-node"):
        RunLock(tmp_path / "run").acquire()
    lock_file.write_text(json.dumps(other | {"heartbeat_at": time.time() - STALE_AFTER_S - 1}))
    with RunLock(tmp_path / "run") as lock:
        assert lock.taken_over["host"] == "another-node"


def test_a_lock_that_wrote_nothing_leaves_no_directory(tmp_path):
    with RunLock(tmp_path / "new" / "run"):
        assert (tmp_path / "new" / "run" / LOCK_NAME).exists()
    assert not (tmp_path / "new" / "run").exists()


# unreadable files

def _spec(tmp_path, **extra):
    return parse_spec({"name": "r", "models": [{"ref": "tiny"}], "methods": ["soft"], "trials_per_cell": 3,
                       "objectives": [{"name": "calibration_error"}], "storage": str(tmp_path), **extra})


def _record(key: str, number: int, status="done", lr=1e-3, mix=0.1, value=0.5) -> TrialRecord:
    return TrialRecord(key=key, cell=CELL.name, model="tiny", model_ref="tiny", method="soft", lr=lr, mix=mix,
                       optuna_number=number, status=status,
                       objectives={"calibration_error": value} if status == "done" else {})


def _run(tmp_path, records=()):
    spec = _spec(tmp_path)
    store = prepare_run_dir(spec, resume=False)
    for r in records:
        store.write_trial(r)
    return spec, store


def test_a_truncated_record_is_named_in_a_warning_and_skipped_by_results(tmp_path):
    spec, store = _run(tmp_path, [_record("tiny-soft-000", 0), _record("tiny-soft-001", 1, value=0.4)])
    text = store.trial_path("tiny-soft-001").read_text()
    store.trial_path("tiny-soft-001").write_text(text[: len(text) // 2])
    with pytest.warns(UserWarning, match="tiny-soft-001.json"):
        frame = results.trials(store.root)
    assert frame["key"].tolist() == ["tiny-soft-000"]
    with pytest.warns(UserWarning, match="tiny-soft-001.json"):
        assert results.pareto(store.root)["key"].tolist() == ["tiny-soft-000"]


def test_an_unreadable_spec_json_is_named_and_unreadable_baselines_are_scored_again(tmp_path):
    spec, store = _run(tmp_path)
    (store.root / "baselines.json").write_text("{\"tiny\": {")
    with pytest.warns(UserWarning, match="baselines.json"):
        assert store.baselines() == {}
    (store.root / "spec.json").write_bytes(b"\x00\xff garbage")
    with pytest.raises(SpecError, match="spec.json is unreadable"):
        prepare_run_dir(spec, resume=True)


# the records are the source of truth for the Optuna studies

def _plan(spec, store):
    from orchestrator.parts import study_settings
    from orchestrator.tuning import settle_trials

    return settle_trials(study_settings(spec), store)


def _study(store) -> optuna.Study:
    return optuna.load_study(study_name=f"r/{CELL.name}", storage=store.optuna_url())


def _first_run(tmp_path):
    """A run that finished trial 0 and was killed during trial 1 (its study left trial 1 open)."""
    spec, store = _run(tmp_path)
    studies, remaining, reruns = _plan(spec, store)
    searcher = CellSearcher(studies, remaining, ["calibration_error"], reruns, set(), spec.seed)
    first, second = searcher.suggest("t0"), searcher.suggest("t1")
    store.write_trial(_record(first["key"], first["optuna_number"], lr=first["lr"], mix=first["mix"]))
    searcher.on_trial_complete("t0", {"calibration_error": 0.5})
    store.write_trial(_record(second["key"], second["optuna_number"], "running", second["lr"], second["mix"]))
    return spec, store, first, second


@pytest.mark.parametrize("damage", ["deleted", "garbage", "another_sweeps"])
def test_a_lost_or_broken_optuna_db_is_rebuilt_from_the_records(tmp_path, damage, capsys):
    spec, store, first, second = _first_run(tmp_path)
    db = store.root / "optuna.db"
    if damage == "deleted":
        db.unlink()
    elif damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:   # a fresh study with other trials in the numbers the records use
        optuna.delete_study(study_name=f"r/{CELL.name}", storage=store.optuna_url())
        fresh = optuna.create_study(study_name=f"r/{CELL.name}", storage=store.optuna_url())
        fresh.enqueue_trial({"lr": 0.5, "mix": 0.5})
        fresh.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
                   "mix": optuna.distributions.FloatDistribution(0, 0.9)})
    studies, remaining, reruns = _plan(spec, store)
    assert "rebuil" in capsys.readouterr().out
    if damage == "garbage":
        assert list(store.root.glob("optuna.db.unreadable-*"))
    study = _study(store)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    assert study.trials[0].values == [0.5] and study.trials[1].params == {"lr": second["lr"], "mix": second["mix"]}
    # the interrupted trial runs again under its key; the new one gets a key no record has
    assert remaining[CELL] == 2 and [r.key for r in reruns[CELL]] == [second["key"]]
    from orchestrator.tuning import taken_keys

    searcher = CellSearcher(studies, remaining, ["calibration_error"], reruns, taken_keys(store), spec.seed)
    again, new = searcher.suggest("a"), searcher.suggest("b")
    assert (again["key"], again["lr"], again["seed"]) == (second["key"], second["lr"], second["seed"])
    assert new["key"] not in {first["key"], second["key"]}


def test_a_new_trial_never_takes_the_key_of_an_existing_record_or_adapter(tmp_path):
    spec, store = _run(tmp_path)
    store.adapter_dir(trial_key(CELL, 0)).mkdir(parents=True)   # files of a trial whose record was lost
    from orchestrator.tuning import taken_keys

    studies, remaining, reruns = _plan(spec, store)
    searcher = CellSearcher(studies, remaining, ["calibration_error"], reruns, taken_keys(store), spec.seed)
    assert searcher.suggest("t")["key"] == trial_key(CELL, 1)
    assert _study(store).trials[0].state.name == "FAIL"


def test_an_unreadable_record_is_set_aside_and_its_trial_runs_again(tmp_path):
    spec, store, first, second = _first_run(tmp_path)
    store.trial_path(second["key"]).write_text('{"key": "tiny-soft-0')
    with pytest.warns(UserWarning, match=f"{second['key']}.json is unreadable"):
        studies, remaining, reruns = _plan(spec, store)
    assert (store.trials_dir / f"{second['key']}.json.unreadable").exists()
    rebuilt = store.read_trial(second["key"])
    assert rebuilt.status == "interrupted" and (rebuilt.lr, rebuilt.mix) == (second["lr"], second["mix"])
    assert [r.key for r in reruns[CELL]] == [second["key"]] and reruns[CELL][0].reopen
    assert remaining[CELL] == 2


def test_the_same_storage_spelled_another_way_resumes(tmp_path, monkeypatch):
    spec, store = _run(tmp_path, [_record("tiny-soft-000", 0)])
    monkeypatch.chdir(tmp_path.parent)
    for spelled in (str(tmp_path) + "/", os.path.relpath(tmp_path), str(tmp_path) + "/./",
                    str(tmp_path / ".." / tmp_path.name)):
        again = prepare_run_dir(spec.model_copy(update={"storage": spelled}), resume=True)
        assert again.root == store.root


def test_a_run_directory_that_never_scored_takes_a_corrected_spec(tmp_path):
    spec, store = _run(tmp_path)
    corrected = spec.model_copy(update={"trials_per_cell": 5})
    assert prepare_run_dir(corrected, resume=False).saved_spec().trials_per_cell == 5
    store.write_trial(_record("tiny-soft-000", 0))
    with pytest.raises(SpecError, match="different spec"):
        prepare_run_dir(spec, resume=False)
