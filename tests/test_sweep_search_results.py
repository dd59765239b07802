import itertools

import numpy as np
import optuna
import pytest

import orchestrator.results as results
from orchestrator.cells import Cell, trial_key
from orchestrator.search import CellSearcher, CellStudies, Rerun
from orchestrator.spec import Range, parse_spec
from orchestrator.records import TrialRecord
from orchestrator.store import RunStore, read_json, write_json

LR, MIX = Range(low=1e-4, high=1e-2, log=True), Range(low=0.0, high=0.9)
CELLS = [Cell("m", "soft"), Cell("m", "hard")]


def _studies(tmp_path, sampler="tpe", budget=4):
    return CellStudies("s", CELLS, ["min", "min"], f"sqlite:///{tmp_path}/o.db", sampler, 0, budget, LR, MIX)


def test_searcher_spends_each_cells_budget_then_finishes(tmp_path):
    searcher = CellSearcher(_studies(tmp_path), {CELLS[0]: 3, CELLS[1]: 2}, ["a", "b"])
    configs = [searcher.suggest(f"t{i}") for i in range(5)]
    assert searcher.suggest("t5") == "FINISHED"
    assert sorted(c["method"] for c in configs) == ["hard", "hard", "soft", "soft", "soft"]
    for c in configs:
        assert LR.low <= c["lr"] <= LR.high and MIX.low <= c["mix"] <= MIX.high
    assert configs[0]["key"] == trial_key(CELLS[1], 0) == "m-hard-000"  # fewest started, then by name
    for i, c in enumerate(configs):
        searcher.on_trial_complete(f"t{i}", {"a": c["lr"], "b": c["mix"]})
    study = optuna.load_study(study_name="s/m:soft", storage=f"sqlite:///{tmp_path}/o.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[0].values == [configs[1]["lr"], configs[1]["mix"]]


def test_failed_trials_are_told_as_failures(tmp_path):
    searcher = CellSearcher(_studies(tmp_path), {CELLS[0]: 2, CELLS[1]: 0}, ["a", "b"])
    searcher.suggest("x")
    searcher.suggest("y")
    searcher.on_trial_complete("x", error=True)
    searcher.on_trial_complete("y", {"a": float("nan"), "b": 1.0})
    states = [t.state.name for t in searcher.studies.studies[CELLS[0]].trials]
    assert states == ["FAIL", "FAIL"]


def test_reconcile_tells_finished_trials_and_reruns_interrupted_ones_under_their_key(tmp_path):
    studies = _studies(tmp_path)
    n0, lr0, mix0 = studies.ask(CELLS[0])   # finished, but the driver died before telling
    n1, lr1, mix1 = studies.ask(CELLS[0])   # interrupted mid-trial
    cell = dict(cell=CELLS[0].name, model=CELLS[0].model, method=CELLS[0].method)
    records = [TrialRecord(key="m-soft-000", optuna_number=n0, status="done", objectives={"a": 0.5, "b": 0.1},
                           lr=lr0, mix=mix0, **cell),
               TrialRecord(key="m-soft-001", optuna_number=n1, lr=lr1, mix=mix1, seed=7, **cell)]
    reopened = _studies(tmp_path)           # a new driver, same storage
    reruns = reopened.reconcile(CELLS[0], records, ["a", "b"])
    study = reopened.studies[CELLS[0]]
    assert study.trials[n0].state.name == "COMPLETE" and study.trials[n0].values == [0.5, 0.1]
    assert study.trials[n1].state.name == "RUNNING"    # left open: the rerun reuses it
    assert reruns == [Rerun("m-soft-001", n1, lr1, mix1, 7, reopen=True)]
    searcher = CellSearcher(reopened, {CELLS[0]: 1, CELLS[1]: 0}, ["a", "b"], {CELLS[0]: reruns})
    config = searcher.suggest("t")
    assert (config["key"], config["optuna_number"], config["seed"], config["lr"], config["mix"]) == \
        ("m-soft-001", n1, 7, lr1, mix1)
    searcher.on_trial_complete("t", {"a": 0.2, "b": 0.3})
    assert study.trials[n1].state.name == "COMPLETE" and len(study.trials) == 2


def test_grid_sampler_covers_the_grid(tmp_path):
    studies = _studies(tmp_path, sampler="grid", budget=4)
    asked = [studies.ask(CELLS[0]) for _ in range(4)]
    points = {(lr, mix) for _, lr, mix in asked}
    assert {round(lr, 8) for lr, _ in points} == {1e-4, 1e-2} and {m for _, m in points} == {0.0, 0.9}
    for number, _, _ in asked:   # telling the grid's last point must not stop (raise in) the sweep
        studies.tell(CELLS[0], number, [0.5, 0.1])
    assert all(t.state.name == "COMPLETE" for t in studies.studies[CELLS[0]].trials)


def test_grid_sampler_resumed_from_records_asks_the_points_not_yet_tried(tmp_path):
    """Trials rebuilt from records carry parameters but no grid id: the grid still goes by them."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    fresh = _studies(tmp_path / "a", sampler="grid", budget=4)
    full = {fresh.ask(CELLS[0])[1:] for _ in range(4)}
    studies = _studies(tmp_path / "b", sampler="grid", budget=4)
    study = studies.studies[CELLS[0]]
    tried = sorted(full)[:3]
    for lr, mix in tried:
        study.add_trial(optuna.trial.create_trial(params={"lr": lr, "mix": mix}, values=[0.5, 0.1],
                                                  distributions=studies.distributions))
    assert studies.ask(CELLS[0])[1:] == sorted(full)[3]


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.integers(0, 5, size=(12, 2)).astype(float)
        modes = ["min", "max"]
        mask = results.pareto_mask(values, modes)
        signed = values * [1, -1]
        for i, j in itertools.product(range(12), repeat=2):
            if np.all(signed[j] <= signed[i]) and np.any(signed[j] < signed[i]):
                assert not mask[i]
        for i in np.flatnonzero(~mask):
            assert any(np.all(signed[j] <= signed[i]) and np.any(signed[j] < signed[i]) for j in range(12))


def _fake_run(tmp_path):
    spec = parse_spec({"name": "r", "models": [{"ref": "tiny"}], "storage": str(tmp_path)})
    store = RunStore(spec.run_dir)
    write_json(store.root / "spec.json", spec.model_dump(mode="json"))
    store.save_baseline("tiny", {"model_ref": "tiny", "metrics": {"fidelity/tv": 0.9, "arithmetic/flexible_acc": 0.5}})
    points = {"000": (0.5, 0.1), "001": (0.4, 0.2), "002": (0.6, 0.3), "003": (0.3, 0.05)}
    for n, (cal, cap) in points.items():
        store.write_trial(TrialRecord(
            key=f"tiny-soft-{n}", cell="tiny:soft", model="tiny", model_ref="tiny", method="soft", lr=1e-3,
            mix=0.1, status="done", optuna_number=int(n), objectives={"calibration_error": cal, "capability_loss": cap},
            objective_se={"calibration_error": 0.01, "capability_loss": None},
            metrics={"fidelity/tv": cal, "arithmetic/flexible_acc": 0.5 - cap}, train_metrics={"loss": 1.0}))
    # a record as versions before the typed record wrote it (no objective_se)
    write_json(store.trial_path("tiny-hard-000"), {
        "key": "tiny-hard-000", "cell": "tiny:hard", "model": "tiny", "model_ref": "tiny", "method": "hard",
        "lr": 1e-3, "mix": 0.1, "status": "running", "optuna_number": 0, "started_at": 1.0})
    return store


def test_results_frames_while_a_sweep_is_running(tmp_path):
    store = _fake_run(tmp_path)
    trials = results.trials(store.root)
    assert len(trials) == 5 and set(trials["status"]) == {"done", "running"}
    for column in ["key", "cell", "model", "method", "lr", "mix", "status", "calibration_error",
                   "calibration_error_se", "capability_loss", "capability_loss_se", "fidelity/tv",
                   "arithmetic/flexible_acc", "train/loss", "adapter_dir"]:
        assert column in trials.columns
    soft = trials[trials["cell"] == "tiny:soft"]
    assert (soft["calibration_error_se"] == 0.01).all() and soft["capability_loss_se"].isna().all()
    front = results.pareto(store.root)
    # 000 (0.5, 0.1) and 002 are dominated by 003 (0.3, 0.05); 001 too
    assert front["key"].tolist() == ["tiny-soft-003"]
    base = results.baselines(store.root)
    assert base.loc[0, "model"] == "tiny" and base.loc[0, "arithmetic/flexible_acc"] == 0.5


def test_results_of_a_missing_sweep(tmp_path):
    with pytest.raises(FileNotFoundError, match="no spec.json"):
        results.trials(tmp_path)


def test_atomic_json_has_no_nan(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": np.float64(1.5), "c": [np.int64(2)]})
    assert read_json(tmp_path / "x.json") == {"a": None, "b": 1.5, "c": [2]}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_resumed_study_does_not_replay_its_first_draws(tmp_path):
    first = _studies(tmp_path, sampler="random")
    drawn = {first.ask(CELLS[0])[1:] for _ in range(2)}
    for n in range(2):
        first.tell(CELLS[0], n, [0.1, 0.2])
    resumed = _studies(tmp_path, sampler="random")
    assert resumed.ask(CELLS[0])[1:] not in drawn


def test_capability_loss_pairs_items_with_the_base_model(tmp_path):
    """base - tuned GSM8K gold log-prob: with per-item rows on both sides the SE is the paired one
    (item difficulty cancels), which is far below the two item-level SEs combined; without base rows
    (a run directory from before rows were kept) it falls back to the combined error."""
    from evaluators.gsm8k import mean_and_se
    from orchestrator.messages import Evaluation
    from orchestrator.objectives import objective_values

    spec = parse_spec({"name": "r", "models": [{"ref": "tiny"}], "storage": str(tmp_path),
                       "objectives": [{"name": "calibration_error"}, {"name": "capability_loss"}]})
    rng = np.random.default_rng(0)
    difficulty = rng.normal(-2.0, 1.0, 40)
    base = [{"index": i, "gold_logprob": d} for i, d in enumerate(difficulty)]
    tuned = [{"index": i, "gold_logprob": d - 0.3 + rng.normal(0, 0.05)} for i, d in enumerate(difficulty)]
    summary_of = lambda rows: dict(zip(("gsm8k/gold_logprob", "gsm8k/gold_logprob_se"),
                                       mean_and_se(r["gold_logprob"] for r in rows)))
    scores = Evaluation(summary=summary_of(tuned) | {"sampled/calibration_error": 0.5}, rows={"gsm8k": tuned})
    values, errors = objective_values(spec.objectives, scores, summary_of(base), {"gsm8k": base})
    assert values["capability_loss"] == pytest.approx(0.3, abs=0.03)
    assert errors["capability_loss"] < 0.02
    _, combined = objective_values(spec.objectives, scores, summary_of(base), {})
    assert combined["capability_loss"] > 10 * errors["capability_loss"]
    assert values["calibration_error"] == 0.5


def test_gp_sampler_asks_inside_the_ranges_after_its_random_start(tmp_path):
    studies = _studies(tmp_path, sampler="gp", budget=6)   # 2 random start-up trials, then the GP
    assert isinstance(studies.studies[CELLS[0]].sampler, optuna.samplers.GPSampler)
    for i in range(4):
        number, lr, mix = studies.ask(CELLS[0])
        assert LR.low <= lr <= LR.high and MIX.low <= mix <= MIX.high
        studies.tell(CELLS[0], number, [lr * 100, 1 - mix])
    assert [t.state.name for t in studies.studies[CELLS[0]].trials] == ["COMPLETE"] * 4


def test_a_reused_trial_actor_takes_the_next_trials_name():
    """Tune reuses a finished trial's actor for the next trial (reuse_actors: setup runs once, then
    reset_config for each next trial); the dashboard names the actor after the trial it runs now."""
    from orchestrator.progress import NamedTrialActor

    class Trainable:   # the two calls of Tune's FunctionTrainable the mixin extends
        def setup(self, config):
            self.config = config

        def reset_config(self, new_config):
            self.config = new_config
            return True

    class TrialActor(NamedTrialActor, Trainable):   # as Tune mixes run_trial.__mixins__ in
        pass

    actor = TrialActor()
    actor.setup({"key": "m-soft-000"})
    assert actor._name == "cft trial m-soft-000"
    assert actor.reset_config({"key": "m-hard-001"}) is True
    assert actor._name == "cft trial m-hard-001" and actor.config == {"key": "m-hard-001"}
