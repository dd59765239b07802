"""The calibration error the sweep optimises (docs/method.md section 5): from samples
(`calibration_error`), from a model's exact distribution over an integer support or a full lattice
(`exact_calibration_error`), and its expectation at n samples (`expected_calibration_error`, the
oracle the cross-check tests use).

## The sampled calibration error: definition and why

Definition:  min(W1 / scale, W1_CAP) + INVALID_COST * (1 - v),  v = valid rate,
= W1_CAP + INVALID_COST = WORST where no sample is valid.

- W1 is the paper's estimator (sorted valid values against the true quantiles at (i - 0.5)/k),
  with the quantiles rounded to `num_decimals` for continuous families: the reference is the true
  distribution as a perfect sampler writing that many decimals would draw it.
- scale = the target's mean absolute deviation from its median, E|X - median|. It is the W1 of the
  best constant answer (always the median), so 1.0 reads "no better than a constant" on every
  family. Standard deviation was the alternative: it is infinite where W1 is still finite
  (Student's t with nu <= 2, Pareto/Lomax alpha <= 2), tail-dominated where it exists (lognormal
  sigma=2 has sd 659 and mean absolute deviation ~80, so sd would call a constant answer good),
  and the interquartile range is 0 for skewed discrete targets (Bernoulli p=0.1).
- Samples, target and scale are clamped to the target's [ppf(0.001), ppf(0.999)] window (docs/method.md's
  output window): a model's occasional runaway number ("01241" for a Poisson(2), which the paper's
  regex accepts as 1241) then costs at most the window's width / n instead of saturating the
  prompt at W1_CAP, while a perfect sampler's score barely moves (0.2% of its mass is clamped).
- Where the target's variance is infinite (Cauchy, t with nu <= 2, Pareto/Lomax alpha <= 2,
  F with d2 <= 4), the extreme order statistics of even a perfect sampler do not settle (a Cauchy's
  have no mean), so samples, target and scale are all clamped to the target's central 95%,
  [ppf(TAIL_BAND), ppf(1 - TAIL_BAND)]. Clamping (rather than dropping the outer ranks) keeps
  the tails' mass in play, a model that never reaches them still pays, and keeps the statistic
  bounded so that its bootstrap is honest (dropping ranks made it overstate the SE twofold).
- Validity is a separate additive term (the paper reports W1 on valid samples and the valid rate
  as two numbers; this sums them in one unit, the W1 of a constant answer): an invalid sample
  (unparsable, outside the support, non-integer for integer families) costs INVALID_COST / n.
  So a sampler whose valid samples follow the target ranks better than any constant answerer
  (which scores >= 1) whenever its valid share v exceeds its W1 floor, i.e. at any v >= 0.5
  (at most ~0.2 + 0.5 on the paper's test points at n = 1,000). Weighting W1 by v and invalid
  samples at 2 instead (the earlier definition) scored such a sampler at v = 0.5 worse than a
  constant (1.04 vs 1.00). A sampler with no valid sample scores WORST, strictly above any sampler
  with one (at most W1_CAP + INVALID_COST * (1 - 1/n)), never NaN, never dropped; W1_CAP bounds
  how far one wild prompt moves a family average.
- Bias: with k valid samples W1 is biased upward by the sampling noise where the model's CDF is
  close to the target's (a perfect sampler scores ~0.05 at k = 1,000, ~0.11 at 200, ~0.15 at 100).
  No unbiased estimator of an absolute difference exists, and subtracting the floor would reward
  noise; trials are compared at the same n, so the floor is common to all of them and shrinks as a
  model moves away from the target. `expected_calibration_error` gives the exact expectation of
  this estimator at n samples for integer families (the oracle the cross-check tests use).

Standard error: the valid rate is binomial and, given the number of valid samples, the W1 part
is bootstrapped over the valid values (n_boot resamples, seeded: the same samples give the same
SE); the two terms add, SE^2 = INVALID_COST^2 v (1 - v) / n + SE_c^2, c = min(W1 / scale, W1_CAP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate, stats

from cft.families import get_family
from cft.output_space import Q_HIGH, Q_LOW, OutputSpace
from cft.splits import TaskPrompt

W1_CAP = 2.0         # the W1 part's cap: twice a constant answer's W1 / scale
INVALID_COST = 1.0   # what the invalid rate costs: a share 1 - v of invalid samples adds (1 - v) * this
WORST = W1_CAP + INVALID_COST   # a prompt with no valid sample, above every prompt with one
TAIL_BAND = 0.025    # quantile levels left out at each end where the target's variance is infinite
OUTLIER_BAND = 0.001  # elsewhere: docs/method.md's window, so one runaway number cannot saturate a prompt
BOOTSTRAP = 200      # bootstrap resamples for the standard error of the W1 part
_EDGE = 1e-12        # CDF levels treated as the ends of an unbounded integer support


@dataclass(frozen=True)
class Reference:
    """What a prompt's calibration error compares samples with: the true distribution, clamped to
    [low, high] (the whole line unless its variance is infinite), and the scale W1 is divided by."""
    dist: object
    integer: bool
    low: float
    high: float
    scale: float
    grid: np.ndarray | None   # integer families: the integers from the CDF's _EDGE to 1 - _EDGE
    cdf: np.ndarray | None    # and the true CDF on them (fast, exact quantiles by search)

    def clamp(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.low, self.high)

    def quantiles(self, k: int, num_decimals: int | None = None, clamped: bool = True) -> np.ndarray:
        """The k quantiles at levels (i - 0.5) / k, clamped, and rounded as a sampler writing
        num_decimals would write them (continuous families)."""
        levels = (np.arange(1, k + 1) - 0.5) / k
        if self.integer:
            q = self.grid[np.minimum(np.searchsorted(self.cdf, levels), len(self.grid) - 1)].astype(float)
        else:
            q = self.dist.ppf(levels)
            q = np.round(q, num_decimals) if num_decimals is not None else q
        return self.clamp(q) if clamped else q


@lru_cache(maxsize=4096)
def reference(prompt: TaskPrompt) -> Reference:
    fam = get_family(prompt.family)
    dist = fam.frozen(prompt.param_dict)
    band = OUTLIER_BAND if np.isfinite(dist.var()) else TAIL_BAND
    low, high = float(dist.ppf(band)), float(dist.ppf(1 - band))
    if fam.integer:
        grid = np.arange(math.floor(dist.ppf(_EDGE)), math.ceil(dist.ppf(1 - _EDGE)) + 1)
        cdf = dist.cdf(grid)
        pmf = np.diff(np.concatenate(([0.0], cdf)))
        scale = float(np.sum(np.abs(np.clip(grid, low, high) - dist.median()) * pmf))
        return Reference(dist, True, low, high, scale, grid, cdf)
    return Reference(dist, False, low, high, _continuous_mad(dist, low, high), None, None)


def _continuous_mad(dist, low: float, high: float) -> float:
    """E|clamp(X) - median|. Unclamped it is mean - 2 * integral of Q over [0, 1/2], which leaves the
    (possibly heavy) right tail to the closed-form mean instead of to quadrature."""
    median = float(dist.median())
    if not np.isfinite(low) and not np.isfinite(high):
        return float(dist.mean()) - 2.0 * integrate.quad(dist.ppf, 0.0, 0.5, limit=200)[0]
    a, b = float(dist.cdf(low)), float(dist.cdf(high))
    below = integrate.quad(lambda u: median - dist.ppf(u), a, 0.5, limit=200)[0] + a * (median - low)
    above = integrate.quad(lambda u: dist.ppf(u) - median, 0.5, b, limit=200)[0] + (1 - b) * (high - median)
    return below + above


def quantile_w1(sorted_values: np.ndarray, q: np.ndarray) -> float:
    """The paper's W1: sorted samples against the quantiles q at levels (i - 0.5) / k."""
    return float(np.mean(np.abs(sorted_values - q)))


def _scaled(w1: float, scale: float) -> float:
    if scale > 0:
        return w1 / scale
    return 0.0 if w1 == 0 else math.inf   # a degenerate target (e.g. Bernoulli p=0)


def calibration_error(prompt: TaskPrompt, valid: np.ndarray, n: int, num_decimals: int | None = None,
                      n_boot: int = BOOTSTRAP, seed: int = 0) -> dict[str, float]:
    """A prompt's calibration error from its valid sample values out of n completions, with its Monte
    Carlo standard error: {"calibration_error", "calibration_error_se", "w1_scaled"}. Its definition
    and the reason for each choice are in this module's docstring."""
    if n <= 0 or len(valid) == 0:
        return {"calibration_error": WORST, "calibration_error_se": 0.0, "w1_scaled": float("nan")}
    ref = reference(prompt)
    x = np.sort(ref.clamp(np.asarray(valid, dtype=float)))
    k = len(x)
    q = ref.quantiles(k, num_decimals)
    r = _scaled(quantile_w1(x, q), ref.scale)
    rng = np.random.default_rng(seed)
    boot = [min(_scaled(quantile_w1(np.sort(rng.choice(x, k)), q), ref.scale), W1_CAP)
            for _ in range(n_boot if k > 1 else 0)]
    se_capped = float(np.std(boot, ddof=1)) if len(boot) > 1 else 0.0
    v = k / n
    value = _combined(v, r)
    se = math.sqrt(INVALID_COST ** 2 * v * (1 - v) / n + se_capped ** 2)
    return {"calibration_error": float(value), "calibration_error_se": se, "w1_scaled": float(r)}


def _combined(valid_rate: float, scaled_w1: float) -> float:
    """The calibration error's definition (valid_rate > 0): the valid samples' W1 / scale, capped, plus
    the invalid rate at INVALID_COST."""
    return min(scaled_w1, W1_CAP) + INVALID_COST * (1 - valid_rate)


def full_lattice(prompt: TaskPrompt, space: OutputSpace) -> bool:
    """True where the output space lists every value of its window: for integer families every integer
    from the support's start (or floor(ppf(Q_LOW))) to its end (or ceil(ppf(Q_HIGH))), as
    cft.output_space builds it when max_bins does not cut a central window out of it; for continuous
    families every multiple of 10^-num_decimals of the window (not thinned by max_bins)."""
    if space.integer:
        dist, (lo, hi) = reference(prompt).dist, get_family(prompt.family).support(prompt.param_dict)
        first = math.floor(lo) if lo is not None else math.floor(dist.ppf(Q_LOW))
        last = math.ceil(hi) if hi is not None else math.ceil(dist.ppf(Q_HIGH))
        return len(space) == last - first + 1
    return len(space) < 2 or bool(np.allclose(np.diff(space.numbers), 10.0 ** -space.num_decimals, rtol=1e-6, atol=0))


def _integer_cdfs(prompt: TaskPrompt, space: OutputSpace, model_probs: np.ndarray):
    """(reference, the model's CDF renormalised over the support strings, the true CDF, the model's mass
    on the support), both CDFs on the integers of the reference grid widened to the strings."""
    ref = reference(prompt)
    if not ref.integer:
        raise ValueError(f"needs an integer family (got {prompt.family})")
    m = np.clip(np.asarray(model_probs, dtype=float), 0.0, None)
    on_support = float(m.sum())
    values = space.numbers.astype(int)
    lo, hi = min(ref.grid[0], values.min()), max(ref.grid[-1], values.max())
    pmf = np.zeros(hi - lo + 1)
    np.add.at(pmf, values - lo, m / on_support if on_support > 0 else m)
    return ref, np.cumsum(pmf), ref.dist.cdf(np.arange(lo, hi + 1)), on_support


def _lattice_w1(ref: Reference, space: OutputSpace, model_cdf: np.ndarray) -> float:
    """W1 between a model on a continuous family's full num_decimals lattice and the true distribution
    rounded to that lattice (whose CDF at a lattice point x is F(x + step/2)), both clamped to
    [ref.low, ref.high]: the lattice's intervals, plus the true tails beyond its ends."""
    step = 10.0 ** -space.num_decimals
    x = ref.clamp(space.numbers)
    rounded_cdf = ref.dist.cdf(space.numbers + step / 2)
    body = float(np.sum(np.abs(model_cdf[:-1] - rounded_cdf[:-1]) * np.diff(x)))
    lo, hi = ref.clamp(np.array([-np.inf, np.inf]))
    below = integrate.quad(lambda t: ref.dist.cdf(t + step / 2), lo, x[0], limit=200)[0] if x[0] > lo else 0.0
    above = integrate.quad(lambda t: ref.dist.sf(t + step / 2), x[-1], hi, limit=200)[0] if hi > x[-1] else 0.0
    return body + below + above


def exact_calibration_error(prompt: TaskPrompt, space: OutputSpace, model_probs: np.ndarray) -> float:
    """The calibration error of a model's exact distribution over the support strings (model_probs[i]
    = P(values[i] + EOS)): the limit of `calibration_error` as n grows. Mass off the strings is invalid
    (valid rate = their total mass), so the space must list every value of its window (`full_lattice`:
    max_bins neither thins it nor cuts a central window out of an integer support); ValueError if not.
    Integer families: W1 is integral |F_model - F_true| over the integers, against the true
    distribution (not the output space's folded tails). Continuous families: against the true
    distribution rounded to the num_decimals lattice, as the sampled estimator rounds its reference
    quantiles. Where sampling would count as valid what the strings miss (a continuous answer at another
    precision, "5.0" for an integer, a value beyond the window), this counts it invalid: the two agree
    for a model that writes what the output space lists (a tuned one), not for a base model."""
    if not full_lattice(prompt, space):
        raise ValueError(f"{prompt.key}: the output space lists {len(space)} values, not its whole window; "
                         "the exact calibration error needs all of them (raise max_bins)")
    if reference(prompt).integer:
        ref, model_cdf, true_cdf, v = _integer_cdfs(prompt, space, model_probs)
        w1 = float(np.sum(np.abs(model_cdf - true_cdf)))
    else:
        ref = reference(prompt)
        m = np.clip(np.asarray(model_probs, dtype=float), 0.0, None)
        v = float(m.sum())
        w1 = _lattice_w1(ref, space, np.cumsum(m / v)) if v > 0 else 0.0
    return WORST if v <= 0 else _combined(v, _scaled(w1, ref.scale))


def expected_calibration_error(prompt: TaskPrompt, space: OutputSpace, model_probs: np.ndarray, n: int) -> float:
    """E[calibration_error] of n samples drawn from the model's exact distribution, for an integer
    family: exact while W1 / scale stays below W1_CAP (the cap is applied to the expectation).

    With k valid samples the paper's W1 is sum_j |F_k(j) - G_k(j)| over the integers, where k F_k(j) ~
    Binomial(k, F_model(j)) and G_k(j) = min(k, floor(k F_true(j) + 1/2)) / k counts the reference
    quantiles at or below j; the number of valid samples is Binomial(n, on-support mass).
    """
    ref, model_cdf, true_cdf, v = _integer_cdfs(prompt, space, model_probs)
    counts = np.arange(n + 1)
    p_k = stats.binom.pmf(counts, n, min(v, 1.0))
    likely = counts[p_k > 1e-10]
    expected = 0.0
    for k in likely:
        if k == 0:
            expected += p_k[k] * WORST
            continue
        b = np.arange(k + 1)
        pmf = stats.binom.pmf(b[None, :], k, np.clip(model_cdf, 0.0, 1.0)[:, None])
        reference_counts = np.minimum(k, np.floor(k * true_cdf + 0.5))
        w1 = float(np.sum(pmf * np.abs(b[None, :] - reference_counts[:, None]))) / k
        expected += p_k[k] * _combined(k / n, _scaled(w1, ref.scale))
    return float(expected / p_k[likely].sum())
