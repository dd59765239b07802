"""The base model is the reference point on every cell's front plot."""

from orchestrator.report import base_point
from orchestrator.spec import Objective

OBJECTIVES = [Objective(name="calibration_error"), Objective(name="capability_loss")]


def test_base_point_takes_the_baseline_metric_and_zero_for_a_loss_against_the_base():
    baseline = {"sampled/calibration_error": 2.9, "sampled/calibration_error_se": 0.01}
    assert base_point(OBJECTIVES, baseline) == [(2.9, 0.01), (0.0, 0.0)]


def test_base_point_follows_an_objective_on_another_metric():
    interp = Objective(name="calibration_error_interp", metric="sampled/test_interp_params/calibration_error",
                       direction="min")
    baseline = {"sampled/test_interp_params/calibration_error": 2.5, "sampled/calibration_error": 2.9}
    assert base_point([interp, OBJECTIVES[1]], baseline) == [(2.5, 0.0), (0.0, 0.0)]


def test_no_base_point_without_a_score():
    assert base_point(OBJECTIVES, None) is None
    assert base_point(OBJECTIVES, {"sampled/calibration_error": float("nan")}) is None
