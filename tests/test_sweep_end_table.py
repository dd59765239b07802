"""What the sweep prints when it ends (orchestrator.report format_front), and the order of the base
models' scoring and the first trial's training on a box without GPUs (orchestrator.baselines)."""

import pandas as pd

from orchestrator.baselines import scores_before_trials
from orchestrator.report import format_front
from orchestrator.spec import Objective


def test_without_gpus_the_base_models_are_scored_before_any_trial_trains():
    """Two torch thread pools on 2 cores made the first trial 6x slower when it trained beside the
    base model's scoring; on GPUs the two run on separate devices, so the scoring goes beside."""
    assert scores_before_trials(0) and scores_before_trials(0.0)
    assert not scores_before_trials(1) and not scores_before_trials(8.0)


def test_the_end_table_shows_standard_errors_and_each_cells_base_model():
    objectives = [Objective(name="calibration_error"), Objective(name="capability_loss")]
    front = pd.DataFrame([
        {"cell": "m:soft", "model": "m", "key": "m-soft-001", "lr": 2.7e-3, "mix": 0.36,
         "calibration_error": 1.408, "calibration_error_se": 0.030, "capability_loss": 0.083,
         "capability_loss_se": 0.014},
        {"cell": "m:hard", "model": "m", "key": "m-hard-000", "lr": 1.9e-3, "mix": 0.0,
         "calibration_error": 1.452, "calibration_error_se": 0.031, "capability_loss": 0.144,
         "capability_loss_se": float("nan")}])
    baselines = pd.DataFrame([{"model": "m", "sampled/calibration_error": 1.999,
                               "sampled/calibration_error_se": 0.001, "gsm8k/gold_logprob": -1.413}])
    lines = format_front(front, objectives, baselines).splitlines()
    assert lines[0].split() == ["cell", "trial", "lr", "mix", "calibration_error", "capability_loss"]
    hard_base, hard, soft_base, soft = lines[1:]
    assert "m:hard" in hard_base and "base model" in hard_base and "1.999 ± 0.001" in hard_base
    assert hard_base.rstrip().endswith(" 0")                 # base - base: 0 by definition
    assert "m-hard-000" in hard and "1.452 ± 0.031" in hard and hard.rstrip().endswith("0.144")   # no s.e.
    assert "base model" in soft_base and "m-soft-001" in soft and "0.083 ± 0.014" in soft
    assert format_front(front.iloc[0:0], objectives) == "(no finished trials yet)"


def test_a_cell_whose_base_model_was_not_scored_says_so():
    objectives = [Objective(name="calibration_error")]
    front = pd.DataFrame([{"cell": "m:soft", "model": "m", "key": "k", "lr": 1e-3, "mix": 0.1,
                           "calibration_error": 1.0, "calibration_error_se": 0.1}])
    assert "(not scored)" in format_front(front, objectives, pd.DataFrame(columns=["model"]))
