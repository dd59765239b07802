"""Issue 28: results beside the paper's tables. Every trial's per-prompt rows are stored
(orchestrator.store) and load as a DataFrame; `paper_table`, `python -m orchestrator.results RUN --paper`
and the report put the base model and each front trial side by side in the paper's metrics with their
standard errors, per cell and evaluated split. Run directories as test_results_cli writes them (no Ray)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_results_cli import make_run_dir

import orchestrator.results as results
from orchestrator.store import RunStore, write_json

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("test_unseen_params", "test_ood_family")
METRICS = results.PAPER_METRICS


# ---------------------------------------------------------------- per-prompt rows of every trial

def _sampled_rows(n: int, offset: float) -> list[dict]:
    return [{"split": SPLITS[i % 2], "family": "poisson", "key": f"p{i}", "w1": offset + i, "valid_rate": 1.0}
            for i in range(n)]


def test_trial_rows_round_trip_and_are_not_trial_records(tmp_path):
    run = make_run_dir(tmp_path)
    store = RunStore(run)
    before = len(store.trial_records())
    store.save_trial_rows("tiny-soft-000", {"sampled": _sampled_rows(4, 0.0), "gsm8k": [{"item": 1, "correct": 1}]})
    store.save_trial_rows("tiny-hard-000", {"sampled": _sampled_rows(2, 10.0)})
    assert store.trial_rows("tiny-soft-000")["sampled"][3]["w1"] == 3.0
    assert store.trial_rows("no-such-trial") == {}
    assert len(store.trial_records()) == before and store.unreadable_trials() == {}   # no record is hidden
    frame = results.trial_rows(run, "sampled")
    assert len(frame) == 6 and set(frame["evaluation"]) == {"sampled"}
    soft = frame[frame["key"] == "tiny-soft-000"]
    assert list(soft["w1"]) == [0.0, 1.0, 2.0, 3.0] and list(soft["prompt"]) == ["p0", "p1", "p2", "p3"]
    assert set(soft["cell"]) == {"tiny:soft"} and set(soft["method"]) == {"soft"}
    assert len(results.trial_rows(run)) == 7   # every evaluation's rows without a filter


def test_a_trial_saves_its_rows_after_its_evaluation(tmp_path, monkeypatch):
    """orchestrator.trial.train_and_score, through a stand-in backend (no Ray)."""
    import types

    import orchestrator.trial as trial_module
    from orchestrator.backend import Trained
    from orchestrator.messages import Evaluation, TrialConfig
    from orchestrator.parts import trial_settings
    from orchestrator.records import TrialRecord

    run = make_run_dir(tmp_path)
    store = RunStore(run)
    spec = store.saved_spec()
    rows = {"sampled": _sampled_rows(3, 0.5)}

    class Backend:
        def train(self, cfg, output_dir, storage_path, name):
            return Trained(output_dir, {"loss": 1.0})

        def evaluate(self, handle, settings, adapter_dir, progress=None):
            return Evaluation(summary={"sampled/calibration_error": 1.0, "gsm8k/gold_logprob": -1.0}, rows=rows)

    fake_ray = types.SimpleNamespace(serve=types.SimpleNamespace(get_app_handle=lambda name: None),
                                     tune=types.SimpleNamespace(report=lambda metrics: None))
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    monkeypatch.setattr(trial_module, "let_handle_report_idle", lambda scorer: None)
    store.save_baseline("tiny", {"model_ref": "tiny", "metrics": {"gsm8k/gold_logprob": -0.5}})
    settings = trial_settings(spec)
    context = trial_module.TrialContext(settings=settings, run_dir=str(run), model_paths={"tiny": "tiny"},
                                        app_names={"tiny": "app"}, backend=Backend())
    trial = TrialConfig(key="tiny-soft-042", model="tiny", method="soft", optuna_number=42, lr=1e-3, mix=0.0, seed=1)
    record = TrialRecord(key=trial.key, cell=trial.cell, model="tiny", model_ref="tiny", method="soft", lr=1e-3,
                         mix=0.0, optuna_number=42, seed=1)
    done = trial_module.train_and_score(context, store, trial, record)
    assert done.status == "done"
    assert store.trial_rows("tiny-soft-042") == rows


# ---------------------------------------------------------------- the paper's table

def _paper_metrics(offset: float) -> dict:
    out = {}
    for s, split in enumerate(SPLITS):
        for m, metric in enumerate(METRICS):
            out[f"sampled/{split}/{metric}"] = offset + s + m / 10
            out[f"sampled/{split}/{metric}_se"] = 0.01 * (m + 1)
    return out


@pytest.fixture
def paper_run(tmp_path):
    run = make_run_dir(tmp_path)
    store = RunStore(run)
    for record in store.trial_records():
        if record.status == "done":
            store.write_trial(record.model_copy(update={"metrics": record.metrics | _paper_metrics(
                100 + record.optuna_number)}))
    store.save_baseline("tiny", {"model_ref": "tiny", "metrics": _paper_metrics(0.0)})
    return run


def test_paper_table_has_the_base_model_and_each_front_trial_per_cell_and_split(paper_run):
    table = results.paper_table(paper_run)
    assert list(table.columns) == results.PAPER_COLUMNS
    front = results.pareto(paper_run)
    for cell in ["tiny:soft", "tiny:hard"]:
        keys = list(front[front["cell"] == cell]["key"])
        for s, split in enumerate(SPLITS):
            part = table[(table["cell"] == cell) & (table["split"] == split)]
            assert list(part["trial"]) == ["base model", *keys]
            base = part.iloc[0]
            assert np.isnan(base["lr"]) and base["w1"] == pytest.approx(s)
            assert base["gof_pass"] == pytest.approx(s + 0.5) and base["gof_pass_se"] == pytest.approx(0.06)
            for key in keys:
                row = part[part["trial"] == key].iloc[0]
                number = int(key.rsplit("-", 1)[1])
                assert row["variance_error"] == pytest.approx(100 + number + s + 0.4)
                assert row["lr"] == front[front["key"] == key]["lr"].iloc[0]
    assert set(table["split"]) == set(SPLITS)   # the splits the run evaluated, no other


def test_paper_table_is_nan_where_a_metric_is_missing_and_empty_without_sampling(tmp_path):
    run = make_run_dir(tmp_path)   # no paper metrics anywhere, no base model scored
    table = results.paper_table(run)
    assert len(table) > 0 and table[[*METRICS]].isna().all().all()
    spec = RunStore(run).saved_spec()
    data = spec.model_dump(mode="json")
    data["evaluation"]["evals"] = ["fidelity"]
    data["objectives"] = [{"name": "exact_tv"}]
    write_json(Path(run) / "spec.json", data)
    assert results.paper_table(run).empty


def test_paper_cli_prints_json_csv_and_a_table(paper_run):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator.results", str(paper_run), "--paper", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    table = results.paper_table(paper_run)
    proc = cli("--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data) == len(table) and data[0]["trial"] == "base model" and data[0]["lr"] is None
    assert data[0]["w1_se"] == pytest.approx(0.01)
    proc = cli("--csv")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == ",".join(results.PAPER_COLUMNS)
    proc = cli()
    assert proc.returncode == 0, proc.stderr
    assert "tiny:soft, test_unseen_params:" in proc.stdout and "tiny:hard, test_ood_family:" in proc.stdout
    assert "GoF pass" in proc.stdout and "0.5 ± 0.06" in proc.stdout   # the base model's gof_pass on test_unseen


def test_report_shows_the_paper_table(paper_run):
    from orchestrator.report import write_report

    write_report(paper_run)
    page = (Path(paper_run) / "pareto" / "index.html").read_text()
    section = page[page.index("<h2>Beside the paper</h2>"):]
    section = section[:section.index("</section>")]
    table = results.paper_table(paper_run)
    assert section.count("<tr") == len(table) + 1   # the header and one row per table row
    assert section.count('class="base group"') == 4   # 2 cells x 2 splits, each led by its base model
    assert "0.5 ± 0.06" in section and "support violation" in section
