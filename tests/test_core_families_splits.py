import math

import numpy as np
import pytest
from scipy import stats

from cft.families import FAMILIES, HELDOUT_FAMILIES, TRAIN_FAMILIES, InvalidParameters, get_family
from cft.splits import PARAM_DECIMALS, build_split, make_prompt


def test_thirty_families_24_train_6_heldout():
    assert len(TRAIN_FAMILIES) == 24 and len(HELDOUT_FAMILIES) == 6
    assert set(TRAIN_FAMILIES) | set(HELDOUT_FAMILIES) == set(FAMILIES)
    assert all(FAMILIES[f].heldout for f in HELDOUT_FAMILIES)


@pytest.mark.parametrize("split,selection,count", [
    ("train", "full", 1988), ("test_unseen_params", "full", 591), ("test_unseen_params", "selected", 24),
    ("test_ood_family", "full", 92), ("test_ood_family", "selected", 18),
])
def test_split_sizes_match_the_paper(split, selection, count):
    prompts = build_split(split, selection)
    assert len(prompts) == count
    assert len({p.key for p in prompts}) == count  # no duplicate prompts


def test_train_and_test_parameters_never_overlap():
    train = {p.key for p in build_split("train")}
    for split in ("test_unseen_params", "test_ood_family"):
        for selection in ("full", "selected"):
            assert not train & {p.key for p in build_split(split, selection)}
    assert {p.family for p in build_split("test_ood_family")} == set(HELDOUT_FAMILIES)
    assert not {p.family for p in build_split("train")} & set(HELDOUT_FAMILIES)


def test_unseen_params_lie_outside_each_training_range():
    """Extrapolation: every unseen point differs from all training points of its family in at least
    one parameter that is outside that parameter's training range."""
    train = build_split("train")
    for p in build_split("test_unseen_params"):
        ranges = {}
        for t in (t for t in train if t.family == p.family):
            for k, v in t.params:
                lo, hi = ranges.get(k, (v, v))
                ranges[k] = (min(lo, v), max(hi, v))
        outside = [k for k, v in p.params if not ranges[k][0] <= v <= ranges[k][1]]
        assert outside, p.key


def test_prompt_text_is_the_papers():
    p = build_split("test_unseen_params", "selected")[1]
    assert p.text == ("Generate exactly ONE random number from a Gaussian distribution with parameters "
                      "mu=3.5, sigma=3.0. Output ONLY the number.")
    binom = make_prompt("binomial", {"n": 25, "p": 0.5})
    assert "parameters n=25.0, p=0.5." in binom.text


def test_grid_conversions():
    uniform = next(p for p in build_split("test_unseen_params", "selected") if p.family == "uniform")
    assert uniform.param_dict == {"a": 3.5, "b": 10.5}
    tri = next(p for p in build_split("test_unseen_params", "selected") if p.family == "triangular")
    assert tri.param_dict == {"a": 2.5, "c": 6.0, "b": 9.5}
    hyper = next(p for p in build_split("test_unseen_params", "selected") if p.family == "hypergeometric")
    assert hyper.param_dict == {"M": 100.0, "K": 50.0, "N": 20.0}


# scipy's own parametrisation, written independently of cft/families.py, for a point of each family
SCIPY_REFERENCE = {
    "uniform": ({"a": 1.0, "b": 4.0}, stats.uniform(1, 3)),
    "gaussian": ({"mu": 3.5, "sigma": 3.0}, stats.norm(3.5, 3.0)),
    "beta": ({"alpha": 2.0, "beta": 5.0}, stats.beta(2, 5)),
    "binomial": ({"n": 25, "p": 0.5}, stats.binom(25, 0.5)),
    "exponential": ({"lambda": 2.0}, stats.expon(scale=0.5)),
    "geometric": ({"p": 0.3}, stats.geom(0.3)),
    "negative_binomial": ({"r": 5, "p": 0.4}, stats.nbinom(5, 0.4)),
    "lognormal": ({"mu": 0.5, "sigma": 0.5}, stats.lognorm(s=0.5, scale=math.exp(0.5))),
    "triangular": ({"a": 0.0, "c": 1.0, "b": 4.0}, stats.triang(0.25, loc=0, scale=4)),
    "rayleigh": ({"sigma": 2.0}, stats.rayleigh(scale=2)),
    "cauchy": ({"x0": 1.0, "gamma": 2.0}, stats.cauchy(1, 2)),
    "student_t": ({"nu": 5.0}, stats.t(5)),
    "chi_square": ({"nu": 4.0}, stats.chi2(4)),
    "f_distribution": ({"d1": 5, "d2": 10}, stats.f(5, 10)),
    "gamma": ({"alpha": 2.0, "beta": 3.0}, stats.gamma(2, scale=3)),
    "laplace": ({"mu": 1.0, "b": 2.0}, stats.laplace(1, 2)),
    "logistic": ({"mu": 1.0, "s": 2.0}, stats.logistic(1, 2)),
    "pareto": ({"alpha": 3.0, "xm": 2.0}, stats.pareto(3, scale=2)),
    "hypergeometric": ({"M": 50, "K": 20, "N": 10}, stats.hypergeom(50, 20, 10)),
    "gumbel": ({"mu": 1.0, "beta": 2.0}, stats.gumbel_r(1, 2)),
    "skellam": ({"mu1": 3.0, "mu2": 2.0}, stats.skellam(3, 2)),
    "beta_binomial": ({"n": 10, "alpha": 2.0, "beta": 3.0}, stats.betabinom(10, 2, 3)),
    "lomax": ({"alpha": 3.0, "lambda": 2.0}, stats.lomax(3, scale=2)),
    "inverse_gaussian": ({"mu": 2.0, "lambda": 4.0}, stats.invgauss(0.5, scale=4)),
    "bernoulli": ({"p": 0.3}, stats.bernoulli(0.3)),
    "poisson": ({"lambda": 4.0}, stats.poisson(4)),
    "weibull": ({"k": 1.5, "lambda": 2.0}, stats.weibull_min(1.5, scale=2)),
    "maxwell": ({"scale": 1.5}, stats.maxwell(scale=1.5)),
    "chi": ({"df": 3.0}, stats.chi(3)),
    "truncnorm": ({"mu": 0.0, "sigma": 1.0, "lower": -1.0, "upper": 2.0}, stats.truncnorm(-1, 2)),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_scipy_mapping_matches_the_method(name):
    params, reference = SCIPY_REFERENCE[name]
    dist = get_family(name).frozen(get_family(name).validate(params))
    xs = reference.ppf([0.1, 0.5, 0.9])
    np.testing.assert_allclose(dist.cdf(xs), reference.cdf(xs), rtol=1e-12)
    np.testing.assert_allclose([dist.mean(), dist.var()], [reference.mean(), reference.var()], rtol=1e-12)


def test_inverse_gaussian_has_the_requested_moments():
    dist = get_family("inverse_gaussian").frozen({"mu": 2.0, "lambda": 4.0})
    assert dist.mean() == pytest.approx(2.0) and dist.var() == pytest.approx(2.0 ** 3 / 4.0)


@pytest.mark.parametrize("family,params,fragment", [
    ("gaussian", {"mu": 0, "sigma": 0}, "sigma must be > 0"),
    ("binomial", {"n": 10, "p": 1.2}, "p must be in [0, 1]"),
    ("binomial", {"n": 2.5, "p": 0.5}, "n must be an integer"),
    ("uniform", {"a": 2, "b": 1}, "a must be < b"),
    ("gaussian", {"mu": 0}, "missing parameter(s) sigma"),
    ("gaussian", {"mu": 0, "sigma": 1, "x": 1}, "unknown parameter(s) x"),
    ("truncnorm", {"mu": 0, "sigma": 1, "lower": 1, "upper": 0}, "lower must be < upper"),
    ("hypergeometric", {"M": 10, "K": 12, "N": 3}, "K must be <= M"),
    ("gaussian", {"mu": float("nan"), "sigma": 1}, "mu must be finite"),
])
def test_invalid_parameters_are_named(family, params, fragment):
    with pytest.raises(InvalidParameters, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make_prompt(family, params)


def test_unknown_family():
    with pytest.raises(InvalidParameters, match="unknown family 'zipf'"):
        get_family("zipf")


@pytest.mark.parametrize("selection", ["selected", "full"])
def test_interp_params_lie_inside_the_training_ranges_and_off_its_grid(selection):
    """The project's interpolation split: every training family, never a training prompt, and each
    prompt parameter inside the range the family was trained on."""
    train = build_split("train")
    trained = {p.key for p in train}
    interp = build_split("test_interp_params", selection)
    assert {p.family for p in interp} == set(TRAIN_FAMILIES)
    assert not trained & {p.key for p in interp}
    assert len({p.key for p in interp}) == len(interp)
    for p in interp:
        seen = [q.param_dict for q in train if q.family == p.family]
        for name, value in p.params:
            lo, hi = min(s[name] for s in seen), max(s[name] for s in seen)
            assert lo <= value <= hi, (p.key, name, lo, hi)


@pytest.mark.parametrize("split", ["train", "test_unseen_params", "test_interp_params"])
def test_grid_parameters_are_written_without_float_noise(split):
    """A grid point's parameters are written to PARAM_DECIMALS: uniform's b = a + width is -1.6, not the
    -1.5999999999999996 the reference code writes, and the prompt says what the target is built from."""
    for p in build_split(split, "full", ["uniform", "gaussian", "triangular"]):
        for name, value in p.params:
            assert value == round(value, PARAM_DECIMALS), (p.key, name)
            assert len(repr(value).split(".")[-1]) <= PARAM_DECIMALS, p.text
    assert "a=-5.0, b=-1.6." in " ".join(p.text for p in build_split("train", "full", ["uniform"]))


def test_interp_selected_varies_each_parameter():
    prompts = build_split("test_interp_params", "selected", ["gaussian", "binomial"])
    assert [p.key for p in prompts] == ["gaussian(mu=-0.6,sigma=0.8123)", "gaussian(mu=0.6,sigma=1.2311)",
                                        "binomial(n=12.0,p=0.375)", "binomial(n=12.0,p=0.625)"]
