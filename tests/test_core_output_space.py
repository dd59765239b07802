import numpy as np
import pytest
from scipy import stats

from cft.families import get_family
from cft.output_space import _merge_equal_strings, build_output_space
from cft.splits import build_split, make_prompt


def _points():
    """A spread of prompts: every family at a training, an unseen and a held-out point."""
    train = build_split("train")
    seen = {}
    for p in train[::7]:
        seen.setdefault(p.family, p)
    return (list(seen.values()) + build_split("test_unseen_params", "selected")
            + build_split("test_ood_family", "selected"))


POINTS = _points()


def test_bernoulli_by_hand():
    space = build_output_space(make_prompt("bernoulli", {"p": 0.3}))
    assert space.values == ("0", "1")
    np.testing.assert_allclose(space.probs, [0.7, 0.3], atol=1e-15)


def test_poisson_upper_tail_folds_into_last_value():
    space = build_output_space(make_prompt("poisson", {"lambda": 2.0}), max_bins=5)
    assert space.values == ("0", "1", "2", "3", "4")
    expected = stats.poisson(2).pmf(np.arange(5))
    expected[-1] += stats.poisson(2).sf(4)
    np.testing.assert_allclose(space.probs, expected, rtol=1e-12)


def test_skellam_lower_tail_folds_into_first_value():
    dist = stats.skellam(3.0, 3.0)
    space = build_output_space(make_prompt("skellam", {"mu1": 3.0, "mu2": 3.0}))
    first, last = int(space.values[0]), int(space.values[-1])
    assert (first, last) == (int(np.floor(dist.ppf(0.001))), int(np.ceil(dist.ppf(0.999))))
    assert space.probs[0] == pytest.approx(dist.cdf(first), rel=1e-9)
    assert space.probs[-1] == pytest.approx(dist.sf(last - 1), rel=1e-9)


def test_gaussian_by_hand_integer_grid():
    space = build_output_space(make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0}), num_decimals=0)
    assert space.values == ("-3", "-2", "-1", "0", "1", "2", "3")
    edges = np.array([-np.inf, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, np.inf])
    np.testing.assert_allclose(space.probs, np.diff(stats.norm.cdf(edges)), rtol=1e-12)


def test_uniform_window_is_the_quantile_window():
    # window [ppf(.001), ppf(.999)] = [0.001, 0.999]: grid 0.1 .. 0.9; edge bins take the tails
    space = build_output_space(make_prompt("uniform", {"a": 0.0, "b": 1.0}), num_decimals=1)
    assert space.values == tuple(f"0.{i}" for i in range(1, 10))
    np.testing.assert_allclose(space.probs[1:-1], 0.1, rtol=1e-9)
    np.testing.assert_allclose(space.probs[[0, -1]], 0.15, rtol=1e-9)


def test_thinning_keeps_at_most_max_bins():
    space = build_output_space(make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0}), num_decimals=5, max_bins=101)
    assert len(space) == 101
    assert all(len(v.split(".")[1]) == 5 for v in space.values)


def test_huge_grids_are_thinned_without_materialising_them():
    # lognormal(3, 2.25): the window spans ~2e9 grid points at 5 decimals
    space = build_output_space(make_prompt("lognormal", {"mu": 3.0, "sigma": 2.25}), 5, 1001)
    assert len(space) == 1001


def test_no_negative_zero():
    space = build_output_space(make_prompt("gaussian", {"mu": 0.0, "sigma": 0.01}), num_decimals=2)
    assert "-0.00" not in space.values and "0.00" in space.values


def test_merge_equal_strings():
    values, probs = _merge_equal_strings(["1.0", "1.0", "1.1"], np.array([0.2, 0.3, 0.5]))
    assert values == ("1.0", "1.1") and probs.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("prompt", POINTS, ids=lambda p: p.key)
def test_output_space_against_scipy(prompt):
    fam = get_family(prompt.family)
    dist = fam.frozen(prompt.param_dict)
    space = build_output_space(prompt, num_decimals=3, max_bins=1001)
    x = space.numbers
    assert space.probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert (space.probs >= 0).all() and len(space) <= 1001
    assert len(set(space.values)) == len(space) and np.all(np.diff(x) > 0)
    lo, hi = fam.support(prompt.param_dict)
    assert lo is None or x[0] >= lo - 1e-9
    assert hi is None or x[-1] <= hi + 1e-9
    # interior masses are scipy's: pmf for integers, CDF over the midpoint bin for continuous
    if fam.integer:
        np.testing.assert_allclose(space.probs[1:-1], dist.pmf(x[1:-1]), rtol=1e-8, atol=1e-15)
    else:
        mid = (x[:-1] + x[1:]) / 2
        np.testing.assert_allclose(space.probs[1:-1], np.diff(dist.cdf(mid)), rtol=1e-6, atol=1e-12)
    # the discretised distribution keeps the true median and (where finite) roughly the mean
    cdf = np.cumsum(space.probs)
    median = x[np.searchsorted(cdf, 0.5)]
    assert abs(median - dist.median()) <= max(np.diff(x).max(), 1e-9) + 1e-9
    if np.isfinite(dist.std()) and not fam.integer:
        assert abs(np.dot(space.probs, x) - dist.mean()) < 0.1 * dist.std() + np.diff(x).max()
