"""The 30 distribution families of the task (24 trained, 6 held out) and their scipy mapping.

Each family has *grid* parameters (how the paper's YAML grids are written, e.g. uniform's `width`)
and *prompt* parameters (what the model is told, e.g. uniform's `b`); `from_grid` converts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Callable

from pydantic import AfterValidator, Field
from scipy import stats

Params = dict[str, float]


class InvalidParameters(ValueError):
    """A family was given missing, extra or out-of-domain parameters."""


@dataclass(frozen=True)
class Family:
    name: str
    display: str
    params: tuple[str, ...]
    integer: bool
    scipy: Callable[[Params], "stats.rv_frozen"]
    # (lower, upper) bound of the support; None means unbounded on that side.
    support: Callable[[Params], tuple[float | None, float | None]]
    # Returns the reason a parameter set is invalid, or None.
    check: Callable[[Params], str | None]
    grid_params: tuple[str, ...] = ()
    from_grid: Callable[[Params], Params] | None = None
    heldout: bool = False

    @property
    def grid_names(self) -> tuple[str, ...]:
        return self.grid_params or self.params

    def frozen(self, params: Params) -> "stats.rv_frozen":
        return self.scipy(params)

    def validate(self, params: Params) -> Params:
        """Return the parameters as floats, or raise InvalidParameters naming what is wrong."""
        missing = [p for p in self.params if p not in params]
        extra = [p for p in params if p not in self.params]
        if missing:
            raise InvalidParameters(f"{self.name}: missing parameter(s) {', '.join(missing)} "
                                    f"(expects {', '.join(self.params)})")
        if extra:
            raise InvalidParameters(f"{self.name}: unknown parameter(s) {', '.join(extra)} "
                                    f"(expects {', '.join(self.params)})")
        values = {p: float(params[p]) for p in self.params}
        bad = [p for p, v in values.items() if not math.isfinite(v)]
        if bad:
            raise InvalidParameters(f"{self.name}: parameter {bad[0]} must be finite")
        reason = self.check(values)
        if reason:
            raise InvalidParameters(f"{self.name}: {reason}")
        return values

    def params_from_grid(self, grid_values: Params) -> Params:
        return self.from_grid(grid_values) if self.from_grid else dict(grid_values)


# --- parameter checks ----------------------------------------------------------------------------

def _positive(*names: str) -> Callable[[Params], str | None]:
    def check(p: Params) -> str | None:
        for n in names:
            if p[n] <= 0:
                return f"{n} must be > 0 (got {p[n]})"
        return None
    return check


def _all(*checks: Callable[[Params], str | None]) -> Callable[[Params], str | None]:
    def check(p: Params) -> str | None:
        for c in checks:
            reason = c(p)
            if reason:
                return reason
        return None
    return check


def _probability(name: str, open_low: bool = False, open_high: bool = False):
    def check(p: Params) -> str | None:
        v = p[name]
        if v < 0 or v > 1 or (open_low and v == 0) or (open_high and v == 1):
            lo = "(" if open_low else "["
            hi = ")" if open_high else "]"
            return f"{name} must be in {lo}0, 1{hi} (got {v})"
        return None
    return check


def _whole(*names: str, minimum: int = 0):
    def check(p: Params) -> str | None:
        for n in names:
            if p[n] != round(p[n]) or p[n] < minimum:
                return f"{n} must be an integer >= {minimum} (got {p[n]})"
        return None
    return check


def _less(a: str, b: str, strict: bool = True):
    def check(p: Params) -> str | None:
        if p[a] > p[b] or (strict and p[a] == p[b]):
            return f"{a} must be {'<' if strict else '<='} {b} (got {a}={p[a]}, {b}={p[b]})"
        return None
    return check


# --- supports ------------------------------------------------------------------------------------

def _real(_p):
    return (None, None)


def _nonneg(_p):
    return (0.0, None)


def _between(lo: str, hi: str):
    return lambda p: (p[lo], p[hi])


def _zero_to(n: str):
    return lambda p: (0.0, float(round(p[n])))


def _hypergeom_support(p):
    M, K, N = (round(p[k]) for k in ("M", "K", "N"))
    return (float(max(0, N - (M - K))), float(min(N, K)))


# --- grid -> prompt parameter conversions ----------------------------------------------------------

def _uniform_from_grid(g):
    return {"a": g["a"], "b": g["a"] + g["width"]}


def _triangular_from_grid(g):
    return {"a": g["a"], "c": g["a"] + g["width"] * g["mode_fraction"], "b": g["a"] + g["width"]}


def _hypergeom_from_grid(g):
    M = int(round(g["M"]))
    K = min(M, max(0, int(round(M * g["success_fraction"]))))
    return {"M": float(M), "K": float(K), "N": float(min(int(round(g["N"])), M))}


def _rounded(*names: str):
    def convert(g):
        return {k: (float(round(v)) if k in names else float(v)) for k, v in g.items()}
    return convert


_TRAIN = [
    Family("uniform", "Uniform", ("a", "b"), False,
           lambda p: stats.uniform(loc=p["a"], scale=p["b"] - p["a"]), _between("a", "b"), _less("a", "b"),
           grid_params=("a", "width"), from_grid=_uniform_from_grid),
    Family("gaussian", "Gaussian", ("mu", "sigma"), False,
           lambda p: stats.norm(loc=p["mu"], scale=p["sigma"]), _real, _positive("sigma")),
    Family("beta", "Beta", ("alpha", "beta"), False,
           lambda p: stats.beta(p["alpha"], p["beta"]), lambda p: (0.0, 1.0), _positive("alpha", "beta")),
    Family("binomial", "Binomial", ("n", "p"), True,
           lambda p: stats.binom(int(round(p["n"])), p["p"]), _zero_to("n"),
           _all(_whole("n", minimum=1), _probability("p")), from_grid=_rounded("n")),
    Family("exponential", "Exponential", ("lambda",), False,
           lambda p: stats.expon(scale=1.0 / p["lambda"]), _nonneg, _positive("lambda")),
    Family("geometric", "Geometric", ("p",), True,
           lambda p: stats.geom(p["p"]), lambda p: (1.0, None), _probability("p", open_low=True)),
    Family("negative_binomial", "Negative Binomial", ("r", "p"), True,
           lambda p: stats.nbinom(int(round(p["r"])), p["p"]), _nonneg,
           _all(_whole("r", minimum=1), _probability("p", open_low=True)), from_grid=_rounded("r")),
    Family("lognormal", "LogNormal", ("mu", "sigma"), False,
           lambda p: stats.lognorm(s=p["sigma"], scale=math.exp(p["mu"])), _nonneg, _positive("sigma")),
    Family("triangular", "Triangular", ("a", "c", "b"), False,
           lambda p: stats.triang((p["c"] - p["a"]) / (p["b"] - p["a"]), loc=p["a"], scale=p["b"] - p["a"]),
           _between("a", "b"), _all(_less("a", "b"), _less("a", "c", strict=False), _less("c", "b", strict=False)),
           grid_params=("a", "width", "mode_fraction"), from_grid=_triangular_from_grid),
    Family("rayleigh", "Rayleigh", ("sigma",), False,
           lambda p: stats.rayleigh(scale=p["sigma"]), _nonneg, _positive("sigma")),
    Family("cauchy", "Cauchy", ("x0", "gamma"), False,
           lambda p: stats.cauchy(loc=p["x0"], scale=p["gamma"]), _real, _positive("gamma")),
    Family("student_t", "Student's t", ("nu",), False,
           lambda p: stats.t(p["nu"]), _real, _positive("nu")),
    Family("chi_square", "Chi-Square", ("nu",), False,
           lambda p: stats.chi2(p["nu"]), _nonneg, _positive("nu")),
    Family("f_distribution", "F-Distribution", ("d1", "d2"), False,
           lambda p: stats.f(p["d1"], p["d2"]), _nonneg, _positive("d1", "d2")),
    Family("gamma", "Gamma", ("alpha", "beta"), False,
           lambda p: stats.gamma(p["alpha"], scale=p["beta"]), _nonneg, _positive("alpha", "beta")),
    Family("laplace", "Laplace", ("mu", "b"), False,
           lambda p: stats.laplace(loc=p["mu"], scale=p["b"]), _real, _positive("b")),
    Family("logistic", "Logistic", ("mu", "s"), False,
           lambda p: stats.logistic(loc=p["mu"], scale=p["s"]), _real, _positive("s")),
    Family("pareto", "Pareto", ("alpha", "xm"), False,
           lambda p: stats.pareto(p["alpha"], scale=p["xm"]), lambda p: (p["xm"], None), _positive("alpha", "xm")),
    Family("hypergeometric", "Hypergeometric", ("M", "K", "N"), True,
           lambda p: stats.hypergeom(int(round(p["M"])), int(round(p["K"])), int(round(p["N"]))),
           _hypergeom_support, _all(_whole("M", minimum=1), _whole("K", "N"), _less("K", "M", strict=False),
                                    _less("N", "M", strict=False)),
           grid_params=("M", "N", "success_fraction"), from_grid=_hypergeom_from_grid),
    Family("gumbel", "Gumbel", ("mu", "beta"), False,
           lambda p: stats.gumbel_r(loc=p["mu"], scale=p["beta"]), _real, _positive("beta")),
    Family("skellam", "Skellam", ("mu1", "mu2"), True,
           lambda p: stats.skellam(p["mu1"], p["mu2"]), _real, _positive("mu1", "mu2")),
    Family("beta_binomial", "Beta-Binomial", ("n", "alpha", "beta"), True,
           lambda p: stats.betabinom(int(round(p["n"])), p["alpha"], p["beta"]), _zero_to("n"),
           _all(_whole("n", minimum=1), _positive("alpha", "beta")), from_grid=_rounded("n")),
    Family("lomax", "Lomax", ("alpha", "lambda"), False,
           lambda p: stats.lomax(p["alpha"], scale=p["lambda"]), _nonneg, _positive("alpha", "lambda")),
    Family("inverse_gaussian", "Inverse Gaussian", ("mu", "lambda"), False,
           lambda p: stats.invgauss(p["mu"] / p["lambda"], scale=p["lambda"]), _nonneg,
           _positive("mu", "lambda")),
]

_HELDOUT = [
    Family("bernoulli", "Bernoulli", ("p",), True,
           lambda p: stats.bernoulli(p["p"]), lambda p: (0.0, 1.0), _probability("p"), heldout=True),
    Family("poisson", "Poisson", ("lambda",), True,
           lambda p: stats.poisson(p["lambda"]), _nonneg, _positive("lambda"), heldout=True),
    Family("weibull", "Weibull", ("k", "lambda"), False,
           lambda p: stats.weibull_min(p["k"], scale=p["lambda"]), _nonneg, _positive("k", "lambda"),
           heldout=True),
    Family("maxwell", "Maxwell", ("scale",), False,
           lambda p: stats.maxwell(scale=p["scale"]), _nonneg, _positive("scale"), heldout=True),
    Family("chi", "Chi", ("df",), False,
           lambda p: stats.chi(p["df"]), _nonneg, _positive("df"), heldout=True),
    Family("truncnorm", "TruncNorm", ("mu", "sigma", "lower", "upper"), False,
           lambda p: stats.truncnorm((p["lower"] - p["mu"]) / p["sigma"], (p["upper"] - p["mu"]) / p["sigma"],
                                     loc=p["mu"], scale=p["sigma"]),
           _between("lower", "upper"), _all(_positive("sigma"), _less("lower", "upper")), heldout=True),
]

FAMILIES: dict[str, Family] = {f.name: f for f in _TRAIN + _HELDOUT}
TRAIN_FAMILIES: tuple[str, ...] = tuple(f.name for f in _TRAIN)
HELDOUT_FAMILIES: tuple[str, ...] = tuple(f.name for f in _HELDOUT)


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise InvalidParameters(
            f"unknown family {name!r}; known: {', '.join(sorted(FAMILIES))}") from None


def check_family_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family(ies) {unknown}; known: {', '.join(sorted(FAMILIES))}")
    return names


# A config field holding family names: non-empty (omit it for all families), each name known.
FamilyNames = Annotated[list[str], Field(min_length=1), AfterValidator(check_family_names)]
