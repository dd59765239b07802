"""`python -m orchestrator.results RUN_DIR`: progress, ETA and Pareto fronts of a sweep, mid-sweep.

The run directory is written the way a sweep writes it (spec.json, typed trial records, the cells'
Optuna studies rebuilt from the records by orchestrator.search), with one cell mid-flight and one
with a failure, so every count and the ETA have a known right answer. No Ray.
"""

import json
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

import orchestrator.results as results
from orchestrator.records import TrialRecord
from orchestrator.cells import Cell
from orchestrator.search import CellStudies
from orchestrator.spec import load_spec
from orchestrator.store import RunStore, write_json

ROOT = Path(__file__).resolve().parents[1]
PACE_S = 60.0          # every finished trial below took this long
RUNNING_FOR_S = 20.0   # the running trial started this long ago


def make_run_dir(root: Path, soft_done: int = 5) -> Path:
    """A smoke-spec run (6 trials per cell): tiny:soft has `soft_done` trials done and one running,
    tiny:hard one done and one failed. Objectives carry standard errors, as a sweep's do."""
    spec = load_spec(ROOT / "sweeps" / "smoke.yaml").model_copy(update={"storage": str(root), "trials_per_cell": 6})
    store = RunStore(spec.run_dir)
    write_json(store.root / "spec.json", spec.model_dump(mode="json"))
    now = time.time()
    records = []
    for n in range(soft_done):
        lr = 10 ** (-4 + 0.6 * n)
        mix = [0.1, 0.7, 0.3, 0.5, 0.2, 0.6][n % 6]
        # calibration error falls with lr, capability loss rises with it: a real trade-off
        records.append(_done("soft", n, lr, mix, 1.5 - 0.2 * n + 0.05 * mix, 0.1 + 0.15 * n - 0.1 * mix, now))
    records.append(TrialRecord(key=f"tiny-soft-{soft_done:03d}", cell="tiny:soft", model="tiny", model_ref="tiny",
                               method="soft", lr=3e-3, mix=0.4, optuna_number=soft_done,
                               started_at=now - RUNNING_FOR_S))
    records.append(_done("hard", 0, 1e-3, 0.2, 1.8, 0.05, now))
    records.append(TrialRecord(key="tiny-hard-001", cell="tiny:hard", model="tiny", model_ref="tiny", method="hard",
                               lr=4e-2, mix=0.5, optuna_number=1, status="error", started_at=now - 500,
                               finished_at=now - 480, error="TrainingDiverged: diverged at step 3"))
    for r in records:
        store.write_trial(r)
    cells = [Cell("tiny", "soft"), Cell("tiny", "hard")]
    studies = CellStudies(spec.name, cells, [o.direction for o in spec.objectives], store.optuna_url(), "tpe", 0, 6,
                          spec.search.lr, spec.search.mix)
    studies.name_metrics([o.name for o in spec.objectives])
    for cell in cells:
        studies.rebuild_if_behind(cell, [r for r in records if r.cell == cell.name], [o.name for o in spec.objectives])
    return store.root


def _done(method: str, n: int, lr: float, mix: float, cal: float, cap: float, now: float) -> TrialRecord:
    start = now - 1000 + 100 * n
    return TrialRecord(key=f"tiny-{method}-{n:03d}", cell=f"tiny:{method}", model="tiny", model_ref="tiny",
                       method=method, lr=lr, mix=mix, optuna_number=n, status="done", started_at=start,
                       finished_at=start + PACE_S, adapter_dir=f"/nowhere/{method}-{n}",
                       objectives={"calibration_error": cal, "capability_loss": cap},
                       objective_se={"calibration_error": 0.02, "capability_loss": 0.01},
                       metrics={"sampled/calibration_error": cal, "sampled/calibration_error_se": 0.02},
                       train_metrics={"loss": 2.0 - 0.1 * n}, train_wall_s=40.0, eval_wall_s=20.0)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.results", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_progress_counts_pace_and_eta(tmp_path):
    run = make_run_dir(tmp_path)
    frame = results.progress(run).set_index("cell")
    soft, hard = frame.loc["tiny:soft"], frame.loc["tiny:hard"]
    assert (soft["planned"], soft["done"], soft["running"], soft["failed"], soft["pending"]) == (6, 5, 1, 0, 0)
    assert (hard["done"], hard["running"], hard["failed"], hard["pending"]) == (1, 0, 1, 4)
    assert soft["s_per_trial"] == hard["s_per_trial"] == PACE_S
    # the running trial has about PACE_S - RUNNING_FOR_S left; the hard cell's four pending ones 4 x PACE_S
    assert abs(soft["eta_s"] - (PACE_S - RUNNING_FOR_S)) < 10
    assert hard["eta_s"] == 4 * PACE_S


def test_terminal_view_names_cells_and_front_with_errors(tmp_path):
    run = make_run_dir(tmp_path)
    out = _cli(run)
    assert out.returncode == 0, out.stderr
    assert "tiny:soft: 5/6 done, 1 running, 0 failed" in out.stdout
    assert "tiny:hard: 1/6 done, 0 running, 1 failed" in out.stdout
    assert "not running" in out.stdout   # no driver holds the directory
    front = results.pareto(run)
    for key in front["key"]:
        assert key in out.stdout
    assert "± 0.02" in out.stdout and "± 0.01" in out.stdout
    assert "tiny-hard-001" not in out.stdout   # the failed trial is on no front


def test_json_and_csv_carry_the_same_data(tmp_path):
    run = make_run_dir(tmp_path)
    as_json = _cli(run, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["objectives"] == ["calibration_error", "capability_loss"]
    cells = {c["cell"]: c for c in data["cells"]}
    assert set(cells) == {"tiny:soft", "tiny:hard"}
    front = results.pareto(run)
    for name, cell in cells.items():
        expected = front[front["cell"] == name]
        assert [p["key"] for p in cell["front"]] == list(expected["key"])
        for p in cell["front"]:
            assert p["calibration_error_se"] == 0.02 and p["capability_loss_se"] == 0.01
    as_csv = _cli(run, "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    table = pd.read_csv(StringIO(as_csv.stdout))
    assert sorted(table["key"]) == sorted(front["key"])
    soft = table[table["cell"] == "tiny:soft"]
    assert set(soft["done"]) == {5} and set(soft["running"]) == {1}
    assert np.allclose(soft.sort_values("key")["calibration_error"],
                       front[front["cell"] == "tiny:soft"].sort_values("key")["calibration_error"])


def test_report_flag_writes_the_page_and_a_missing_run_is_refused(tmp_path):
    run = make_run_dir(tmp_path)
    out = _cli(run, "--report")
    assert out.returncode == 0, out.stderr
    page = run / "pareto" / "index.html"
    assert out.stdout.strip() == str(page) and page.stat().st_size > 10_000
    missing = _cli(tmp_path / "nothing-here")
    assert missing.returncode == 2 and "no sweep" in missing.stderr


def test_searcher_names_the_objectives_and_tags_each_trial_with_its_record(tmp_path):
    """What optuna-dashboard shows: metric names, and key / status / adapter_dir on every trial."""
    from orchestrator.search import CellSearcher
    from orchestrator.spec import Range

    cell = Cell("m", "soft")
    studies = CellStudies("s", [cell], ["min", "min"], f"sqlite:///{tmp_path}/o.db", "random", 0, 3,
                          Range(low=1e-4, high=1e-2, log=True), Range(low=0.0, high=0.9))
    searcher = CellSearcher(studies, {cell: 3}, ["calibration_error", "capability_loss"])
    configs = {t: searcher.suggest(t) for t in ("a", "b", "c")}
    study = studies.studies[cell]
    assert study.metric_names == ["calibration_error", "capability_loss"]
    assert [t.user_attrs for t in study.trials] == [{"key": c["key"], "status": "running"} for c in configs.values()]
    searcher.on_trial_complete("a", {"calibration_error": 0.5, "capability_loss": 0.1, "adapter_dir": "/x/a"})
    searcher.on_trial_complete("b", error=True)
    attrs = [t.user_attrs for t in studies.studies[cell].trials]
    assert attrs[0] == {"key": configs["a"]["key"], "status": "done", "adapter_dir": "/x/a"}
    assert attrs[1] == {"key": configs["b"]["key"], "status": "error"}
    assert attrs[2]["status"] == "running"
