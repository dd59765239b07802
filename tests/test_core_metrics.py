import math

import numpy as np
import pytest

from cft.families import get_family
from cft.metrics import discrete_w1, exact_metrics, family_balanced, parse_number, sample_metrics
from cft.output_space import build_output_space
from cft.splits import build_split, make_prompt

EVAL_POINTS = build_split("test_unseen_params", "selected") + build_split("test_ood_family", "selected")


@pytest.mark.parametrize("text,value", [
    ("3.14", 3.14), (" -2 ", -2.0), ("+.5", 0.5), ("1e3", 1000.0), ("7.", 7.0),
    ("<think>maybe 4</think>12", 12.0), ("12 apples", None), ("", None), ("1,000", None),
    ("nan", None), ("inf", None), ("1e999", None), ("3.1.4", None), ("<think>unfinished 4", None),
])
def test_parse_number_is_strict(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("prompt", EVAL_POINTS, ids=lambda p: p.key)
def test_exact_metrics_of_the_target_are_zero(prompt):
    space = build_output_space(prompt)
    m = exact_metrics(prompt, space, space.probs)
    for key in ("tv", "kl", "w1", "w1_rel", "off_support_mass"):
        assert m[key] == pytest.approx(0.0, abs=1e-9), key


def test_exact_metrics_by_hand():
    prompt = make_prompt("bernoulli", {"p": 0.5})
    space = build_output_space(prompt)
    m = exact_metrics(prompt, space, np.array([0.6, 0.2]))  # 0.2 of mass off the support
    assert m["off_support_mass"] == pytest.approx(0.2)
    assert m["tv"] == pytest.approx(0.5 * (0.1 + 0.3 + 0.2))
    assert m["kl"] == pytest.approx(0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.2))
    assert m["w1"] == pytest.approx(abs(0.75 - 0.5))  # renormalised model: P(0)=0.75


def test_discrete_w1_is_the_mass_moved_times_distance():
    assert discrete_w1(np.array([0.0, 2.0, 5.0]), np.array([1.0, 0, 0]), np.array([0, 0, 1.0])) == 5.0


@pytest.mark.parametrize("prompt", EVAL_POINTS, ids=lambda p: p.key)
def test_sample_metrics_of_target_draws_are_within_sampling_error(prompt):
    """10,000 draws from the (fine-grid) target: errors shrink like 1/sqrt(n) around the truth."""
    n = 10_000
    space = build_output_space(prompt, num_decimals=3, max_bins=16384)
    rng = np.random.default_rng(0)
    draws = rng.choice(len(space), size=n, p=space.probs)
    m = sample_metrics(prompt, [space.values[i] for i in draws])
    dist = get_family(prompt.family).frozen(prompt.param_dict)
    assert m["valid_rate"] == 1.0 and m["support_violation_rate"] == 0.0
    sd = dist.std()
    if np.isfinite(sd):
        # the target clips 0.2% of tail mass to the window edges: allow that bias on top of 5 SE
        assert m["mean_error"] < 5 * sd / math.sqrt(n) + 0.02 * sd
        assert m["w1"] < 0.05 * sd
    else:
        assert m["mean_error"] is None   # the target has no mean: not applicable
    # the goodness-of-fit test must pass wherever the grid itself is finer than the sampling noise
    # (heavy tails on a 16,384-point grid can be coarser than that near the mode)
    fam = get_family(prompt.family)
    cdf = np.cumsum(space.probs)
    grid_gap = 0.0 if fam.integer else max(np.abs(cdf - dist.cdf(space.numbers)).max(),
                                           np.abs(cdf - space.probs - dist.cdf(space.numbers)).max())
    if grid_gap < 0.5 / math.sqrt(n):
        assert m["gof_pvalue"] > 1e-4


def test_sample_metrics_of_wrong_draws_are_far():
    prompt = make_prompt("gaussian", {"mu": 3.5, "sigma": 3.0})
    rng = np.random.default_rng(1)
    m = sample_metrics(prompt, [f"{x:.2f}" for x in rng.normal(0.0, 1.0, 2000)])
    assert m["mean_error"] > 3 and m["gof_pvalue"] < 1e-6 and m["w1"] > 2


def test_garbage_and_out_of_support_samples():
    prompt = make_prompt("binomial", {"n": 10, "p": 0.5})
    m = sample_metrics(prompt, ["5", "4", "banana", "11", "2.5", "-1"])
    assert m["valid_rate"] == pytest.approx(2 / 6)
    assert m["support_violation_rate"] == pytest.approx(3 / 6)
    nothing = sample_metrics(prompt, ["no", "numbers"])
    assert nothing["valid_rate"] == 0 and math.isnan(nothing["w1"])


def test_family_balanced_weights_families_equally_and_never_skips_nan():
    """None is "not applicable" and left out; NaN ("could not be computed") propagates, so a family
    that fails cannot silently leave the average (tests/test_core_calibration.py has more)."""
    rows = [{"family": "a", "x": 1.0}, {"family": "a", "x": 3.0}, {"family": "b", "x": 10.0},
            {"family": "c", "x": None}]
    assert family_balanced(rows, ["x"])["x"] == pytest.approx((2.0 + 10.0) / 2)
    assert math.isnan(family_balanced(rows + [{"family": "c", "x": float("nan")}], ["x"])["x"])


def test_wild_integer_samples_do_not_blow_up_the_chi_square():
    """A garbage model saying 17121561715 for a Poisson: still a valid integer in the support."""
    prompt = make_prompt("poisson", {"lambda": 4.0})
    m = sample_metrics(prompt, ["3", "4", "17121561715", "5"] * 50)
    assert m["valid_rate"] == 1.0 and m["gof_pvalue"] < 1e-6 and m["mean_error"] > 1e9
