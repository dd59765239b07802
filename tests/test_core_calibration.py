"""The calibration objective (cft.metrics.calibration_error): the issue's acceptance on every family,
its worst value, its standard error, and its agreement with the exact value on integer families."""

import math

import numpy as np
import pytest

from cft.families import FAMILIES, HELDOUT_FAMILIES, get_family
from cft.metrics import (INVALID_COST, TAIL_BAND, W1_CAP, WORST, exact_calibration_error, exact_metrics,
                         expected_calibration_error, family_balanced, full_lattice, reference, sample_metrics, valid_values)
from cft.output_space import build_output_space, format_value
from cft.splits import build_split, make_prompt

EVAL_POINTS = build_split("test_unseen_params", "selected") + build_split("test_ood_family", "selected")
# heavier tails than the paper's test points, inside or at the edge of the training grids
HEAVY = [make_prompt("cauchy", {"x0": 0.0, "gamma": 0.5}), make_prompt("student_t", {"nu": 1.5}),
         make_prompt("student_t", {"nu": 2.5}), make_prompt("pareto", {"alpha": 2.0, "xm": 0.5}),
         make_prompt("lomax", {"alpha": 1.5, "lambda": 0.5}), make_prompt("f_distribution", {"d1": 3.0, "d2": 3.0}),
         make_prompt("lognormal", {"mu": 3.0, "sigma": 2.25})]
PROMPTS = EVAL_POINTS + HEAVY
DECIMALS = 2
N = 1000


def draw(prompt, n, rng, shift=0.0, decimals=DECIMALS):
    """n completions of a sampler drawing from the true distribution (plus shift), at the prompt's
    decimals (integers for integer families)."""
    fam = get_family(prompt.family)
    x = fam.frozen(prompt.param_dict).rvs(n, random_state=rng) + shift
    return [format_value(v, fam.integer, decimals) for v in x]


def half_scale_shift(prompt) -> float:
    """Half a standard deviation; half the calibration scale where the variance is infinite (no sd);
    at least 1 for integer families."""
    ref = reference(prompt)
    sd = ref.dist.std()
    shift = 0.5 * (sd if np.isfinite(sd) else ref.scale)
    return max(1.0, math.ceil(shift)) if ref.integer else shift


def score(prompt, completions):
    return sample_metrics(prompt, completions, num_decimals=DECIMALS)


def test_every_family_is_covered():
    assert {p.family for p in PROMPTS} == set(FAMILIES)
    assert set(HELDOUT_FAMILIES) <= {p.family for p in PROMPTS}
    # the infinite-variance rule (the central 95%) is exercised
    assert any(reference(p).low == pytest.approx(reference(p).dist.ppf(TAIL_BAND)) for p in PROMPTS)


@pytest.mark.parametrize("prompt,mad", [
    (make_prompt("gaussian", {"mu": 1.0, "sigma": 2.0}), 2.0 * math.sqrt(2 / math.pi)),
    (make_prompt("exponential", {"lambda": 4.0}), math.log(2) / 4.0),
    (make_prompt("bernoulli", {"p": 0.1}), 0.1),
    (make_prompt("uniform", {"a": 0.0, "b": 3.0}), 0.75),
    # clamped to the central 95%: 2 * (integral over [1/2, 0.975] of gamma * tan(pi (u - 1/2)) + 0.025 * edge)
    (make_prompt("cauchy", {"x0": 5.0, "gamma": 2.0}),
     2 * (2.0 / math.pi * -math.log(math.sin(math.pi * TAIL_BAND)) + TAIL_BAND * 2.0 / math.tan(math.pi * TAIL_BAND))),
])
def test_scale_is_the_mean_absolute_deviation_from_the_median(prompt, mad):
    # of the target clamped to its [ppf(.001), ppf(.999)] window, which moves these MADs by < 0.2%
    assert reference(prompt).scale == pytest.approx(mad, rel=2e-3)


def test_true_samples_score_low_and_shifted_samples_score_3x_higher_on_every_family():
    """The issue's acceptance: 1,000 true samples at the prompt's decimals score <= 0.08 family-balanced;
    a sampler shifted by half a standard deviation scores at least 3x that on every family."""
    rng = np.random.default_rng(0)
    ideal = [{"family": p.family, **score(p, draw(p, N, rng))} for p in PROMPTS]
    shifted = [{"family": p.family, **score(p, draw(p, N, rng, half_scale_shift(p)))} for p in PROMPTS]
    balanced = family_balanced(ideal, ["calibration_error"])["calibration_error"]
    assert balanced <= 0.08
    for family in FAMILIES:
        ideal_f = family_balanced([r for r in ideal if r["family"] == family], ["calibration_error"])
        shifted_f = family_balanced([r for r in shifted if r["family"] == family], ["calibration_error"])
        assert shifted_f["calibration_error"] >= 3 * max(balanced, ideal_f["calibration_error"]), family


@pytest.mark.parametrize("prompt", PROMPTS[::4], ids=lambda p: p.key)
def test_garbage_scores_the_worst_value(prompt):
    fam = get_family(prompt.family)
    lo, _ = fam.support(prompt.param_dict)
    outside = [str(lo - 1)] if lo is not None else []
    for completions in (["banana", "", "1,5", "nan", "inf"] + outside, []):
        m = score(prompt, completions)
        assert m["calibration_error"] == WORST and m["calibration_error_se"] == 0.0
        assert m["valid_rate"] == 0.0 and math.isnan(m["w1"])


def test_invalid_samples_count_against_the_score():
    prompt = make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0})
    rng = np.random.default_rng(1)
    good = draw(prompt, 600, rng)
    clean = score(prompt, good)["calibration_error"]
    mixed = score(prompt, good + ["no idea"] * 400)
    # 40% invalid: the same valid values' W1/scale plus 0.4 * INVALID_COST
    assert mixed["calibration_error"] == pytest.approx(clean + 0.4 * INVALID_COST, rel=1e-9)
    assert mixed["valid_rate"] == pytest.approx(0.6)



def constants(prompt) -> list[str]:
    """Constant answers a sampler could give: the median, the mean and other quantiles of the target,
    written as the sampler would write them."""
    ref, fam = reference(prompt), get_family(prompt.family)
    points = [ref.dist.ppf(q) for q in (0.05, 0.25, 0.4, 0.5, 0.6, 0.75, 0.95)] + [ref.dist.mean()]
    return sorted({format_value(x, fam.integer, DECIMALS) for x in points if np.isfinite(x)})


def half_invalid(prompt, n, rng) -> list[str]:
    """A true sampler whose every other answer is invalid (unparsable, or outside the support)."""
    lo, _ = get_family(prompt.family).support(prompt.param_dict)
    bad = [str(lo - 1), "no idea"] if lo is not None else ["no idea"]
    return [c if i % 2 else bad[i // 2 % len(bad)] for i, c in enumerate(draw(prompt, n, rng))]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_half_valid_true_sampler_ranks_above_every_constant_and_garbage_below_all(family):
    """The ranking the objective must give on every family, at the paper's 1,000 samples: a sampler
    that follows the target on half its answers and writes garbage on the other half scores better
    than any constant answer; a sampler with no valid answer scores worse than all of them; a true
    sampler scores far below both."""
    rng = np.random.default_rng(11)
    prompts = [p for p in EVAL_POINTS if p.family == family]
    ideal = [{"family": family, **score(p, draw(p, N, rng))} for p in prompts]
    half = [{"family": family, **score(p, half_invalid(p, N, rng))} for p in prompts]
    assert all(r["valid_rate"] == 0.5 for r in half)
    best_constant = min(score(p, [c] * N)["calibration_error"] for p in prompts for c in constants(p))
    half_f = family_balanced(half, ["calibration_error"])["calibration_error"]
    ideal_f = family_balanced(ideal, ["calibration_error"])["calibration_error"]
    assert max(r["calibration_error"] for r in half) < best_constant
    assert ideal_f < half_f < best_constant < WORST
    assert best_constant >= 0.99   # the scale is a constant answer's W1: none does better than ~1
    assert all(score(p, ["no idea"] * N)["calibration_error"] == WORST for p in prompts)


def test_wild_valid_samples_count_as_the_window_edge():
    """A runaway number costs what the target's 99.9% quantile would: all-wild samples still score the
    cap (W1_CAP, all valid), and one among 400 true samples barely moves the prompt."""
    prompt = make_prompt("poisson", {"lambda": 4.0})
    assert score(prompt, ["17121561715"] * 50)["calibration_error"] == W1_CAP < WORST
    true = [str(int(v)) for v in np.random.default_rng(5).poisson(4.0, 400)]
    one_wild = score(prompt, true[:-1] + ["17121561715"])["calibration_error"]
    assert abs(one_wild - score(prompt, true)["calibration_error"]) < 0.05


def test_a_family_that_stops_answering_stays_in_the_average():
    prompt_a, prompt_b = make_prompt("poisson", {"lambda": 4.0}), make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0})
    rng = np.random.default_rng(2)
    rows = [{"family": "poisson", **score(prompt_a, draw(prompt_a, 500, rng))},
            {"family": "gaussian", **score(prompt_b, ["?"] * 500)}]
    out = family_balanced(rows, ["calibration_error", "w1", "mean_error"])
    assert out["calibration_error"] == pytest.approx((rows[0]["calibration_error"] + WORST) / 2)
    assert math.isnan(out["w1"]) and math.isnan(out["mean_error"])   # not computable: NaN, not skipped


def test_family_balanced_weights_families_equally_skips_not_applicable_and_propagates_se():
    rows = [{"family": "a", "x": 1.0, "x_se": 0.3}, {"family": "a", "x": 3.0, "x_se": 0.4},
            {"family": "b", "x": 10.0, "x_se": 1.2}, {"family": "c", "x": None}]
    out = family_balanced(rows, ["x", "missing"])
    assert out["x"] == pytest.approx((2.0 + 10.0) / 2)
    # SE of (mean_a + mean_b) / 2 with independent prompts
    assert out["x_se"] == pytest.approx(math.sqrt((0.3 ** 2 + 0.4 ** 2) / 4 + 1.2 ** 2) / 2)
    assert "missing" not in out
    assert math.isnan(family_balanced(rows + [{"family": "c", "x": float("nan")}], ["x"])["x"])


def test_moments_the_target_lacks_are_not_applicable():
    prompt = make_prompt("cauchy", {"x0": 0.0, "gamma": 1.0})
    m = score(prompt, draw(prompt, 200, np.random.default_rng(3)))
    assert m["mean_error"] is None and m["variance_error"] is None and np.isfinite(m["calibration_error"])


@pytest.mark.parametrize("prompt,valid_fraction", [
    (make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0}), 1.0),
    (make_prompt("poisson", {"lambda": 4.0}), 0.8),
    (make_prompt("cauchy", {"x0": 0.0, "gamma": 1.0}), 0.9),
])
def test_standard_error_matches_the_spread_over_repeated_runs(prompt, valid_fraction):
    """The reported SE (bootstrap + binomial, delta method) agrees with the actual standard deviation
    of the estimator over 150 independent runs of n=200 samples, within 25%."""
    rng = np.random.default_rng(4)
    runs = []
    for _ in range(150):
        completions = draw(prompt, 200, rng, shift=0.3)
        completions = [c if rng.random() < valid_fraction else "x" for c in completions]
        runs.append(score(prompt, completions))
    spread = np.std([r["calibration_error"] for r in runs], ddof=1)
    reported = np.sqrt(np.mean([r["calibration_error_se"] ** 2 for r in runs]))
    assert reported == pytest.approx(spread, rel=0.25)


def test_the_same_samples_give_the_same_value_and_se():
    prompt = make_prompt("gamma", {"alpha": 2.0, "beta": 1.0})
    completions = draw(prompt, 300, np.random.default_rng(5))
    assert score(prompt, completions) == score(prompt, completions)


# --- exact vs sampled on integer families ------------------------------------------------------

INTEGER_POINTS = [p for p in EVAL_POINTS if get_family(p.family).integer]


def model_distribution(prompt, space, kind: str) -> np.ndarray:
    """A model's probabilities over the support strings (the rest is off-support): the target itself,
    or the target moved by one value with 10% of the mass off the support."""
    if kind == "target":
        return space.probs.copy()
    moved = np.roll(space.probs, 1)
    moved[0] = 0.0
    return 0.9 * moved / moved.sum()


def sample_from(space, probs, n, rng):
    """n completions from a model with these support probabilities; the off-support rest is garbage."""
    options = list(space.values) + ["garbage"]
    p = np.append(probs, max(0.0, 1.0 - probs.sum()))
    return [options[i] for i in rng.choice(len(options), size=n, p=p / p.sum())]


@pytest.mark.parametrize("kind", ["target", "moved"])
@pytest.mark.parametrize("prompt", INTEGER_POINTS, ids=lambda p: p.key)
def test_sampled_value_lies_within_3_se_of_the_exact_expectation(prompt, kind):
    """Integer families: the sampled calibration error lies within 3 SE of its exact expectation at
    the same n (cft.metrics.expected_calibration_error), which differs from the n -> infinity exact
    value only by the upward bias of W1 at n samples (largest for a model equal to the target)."""
    n = 400
    space = build_output_space(prompt, num_decimals=0, max_bins=4096)
    probs = model_distribution(prompt, space, kind)
    m = score(prompt, sample_from(space, probs, n, np.random.default_rng(6)))
    expected = expected_calibration_error(prompt, space, probs, n)
    exact = exact_calibration_error(prompt, space, probs)
    assert abs(m["calibration_error"] - expected) <= 3 * m["calibration_error_se"] + 1e-9
    assert exact <= expected + 0.005   # the bias is upward (up to the k-point quantile grid's O(1/k))
    if kind == "target":
        assert exact < 0.01                             # the target's tails folded into its edge values
    assert exact_metrics(prompt, space, probs)["calibration_error"] == exact


def test_exact_calibration_error_counts_off_support_mass_as_invalid():
    prompt = make_prompt("binomial", {"n": 10.0, "p": 0.5})
    space = build_output_space(prompt, 0, 64)
    wide = make_prompt("negative_binomial", {"r": 15.0, "p": 0.15})
    assert full_lattice(prompt, space) and not full_lattice(wide, build_output_space(wide, 0, 32))
    assert exact_calibration_error(prompt, space, 0.7 * space.probs) == pytest.approx(0.3 * INVALID_COST, abs=1e-6)
    assert exact_calibration_error(prompt, space, np.zeros(len(space))) == WORST
    gaussian = make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0})
    with pytest.raises(ValueError, match="not its whole window"):
        exact_calibration_error(gaussian, build_output_space(gaussian, 3, 64), build_output_space(gaussian, 3, 64).probs)


def test_valid_values_follow_the_papers_rules():
    prompt = make_prompt("binomial", {"n": 10.0, "p": 0.5})
    valid, parsed = valid_values(prompt, ["5", "4.0", "banana", "11", "2.5", "-1", " 3 "])
    assert sorted(valid.tolist()) == [3.0, 4.0, 5.0] and parsed == 6


# --- exact vs sampled on continuous families, on the full num_decimals lattice -------------------

LATTICE_POINTS = [make_prompt("gaussian", {"mu": 3.5, "sigma": 3.0}), make_prompt("uniform", {"a": 3.5, "b": 10.5}),
                  make_prompt("exponential", {"lambda": 0.5}), make_prompt("cauchy", {"x0": 3.5, "gamma": 3.0})]


@pytest.mark.parametrize("prompt", LATTICE_POINTS, ids=lambda p: p.key)
def test_exact_lattice_value_matches_sampling_on_continuous_families(prompt):
    """With every 1-decimal value of the window scored (max_bins large enough not to thin it), the
    exact calibration error of a lattice model is what sampling it converges to: ~0 for the target
    itself, and within 3 SE (plus the small W1 bias at n) of a sampled value for a moved model."""
    space = build_output_space(prompt, num_decimals=1, max_bins=100_000)
    assert full_lattice(prompt, space) and not full_lattice(prompt, build_output_space(prompt, 1, 32))
    assert exact_calibration_error(prompt, space, space.probs) < 0.01
    steps = max(1, round(0.3 * reference(prompt).scale / 0.1))     # 0.3 scale up, and 10% invalid
    moved = np.zeros(len(space))
    moved[steps:] = 0.9 * space.probs[:-steps]
    n = 4000
    m = sample_metrics(prompt, sample_from(space, moved, n, np.random.default_rng(7)), num_decimals=1)
    exact = exact_calibration_error(prompt, space, moved)
    assert abs(m["calibration_error"] - exact) <= 3 * m["calibration_error_se"] + 0.02
    assert exact_metrics(prompt, space, moved)["calibration_error"] == exact
