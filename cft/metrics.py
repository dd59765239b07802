"""Fidelity metrics: from samples (the paper's protocol), exact (from a model's full distribution over
the support strings), and their family-balanced aggregation.

Sample metrics compare against the TRUE scipy distribution; exact metrics compare the model's
distribution over the output space with the discretised target on the same strings, so a model that
matches the target exactly scores 0 on every exact metric.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Sequence

import numpy as np
from scipy import stats

from cft.families import get_family
from cft.output_space import OutputSpace
from cft.splits import TaskPrompt

NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


def parse_number(text: str) -> float | None:
    """The number a completion states, or None: strict full match after stripping thinking."""
    stripped = _THINK.sub("", text).strip()
    if not NUMBER.match(stripped):
        return None
    value = float(stripped)
    return value if math.isfinite(value) else None


def _in_support(prompt: TaskPrompt, x: np.ndarray) -> np.ndarray:
    fam = get_family(prompt.family)
    lo, hi = fam.support(prompt.param_dict)
    ok = np.ones_like(x, dtype=bool)
    if lo is not None:
        ok &= x >= lo
    if hi is not None:
        ok &= x <= hi
    if fam.integer:
        ok &= x == np.round(x)
    return ok


def _finite_or_nan(x: float) -> float:
    return float(x) if np.isfinite(x) else float("nan")


def sample_metrics(prompt: TaskPrompt, completions: Sequence[str]) -> dict[str, float]:
    """The paper's per-prompt sampling metrics over N completions."""
    n = len(completions)
    parsed = [parse_number(c) for c in completions]
    numbers = np.array([v for v in parsed if v is not None], dtype=float)
    inside = _in_support(prompt, numbers)
    valid = numbers[inside]
    out = {
        "n_samples": float(n),
        "valid_rate": len(valid) / n if n else 0.0,
        "support_violation_rate": float((~inside).sum()) / n if n else 0.0,
    }
    nan = float("nan")
    if len(valid) == 0:
        return out | {"mean_error": nan, "variance_error": nan, "w1": nan, "gof_stat": nan, "gof_pvalue": nan}
    dist = get_family(prompt.family).frozen(prompt.param_dict)
    out["mean_error"] = abs(valid.mean() - _finite_or_nan(dist.mean()))
    out["variance_error"] = abs(valid.var() - _finite_or_nan(dist.var())) if len(valid) > 1 else nan
    out["w1"] = quantile_w1(valid, dist)
    out["gof_stat"], out["gof_pvalue"] = (
        _chi_square(valid, dist) if get_family(prompt.family).integer else stats.kstest(valid, dist.cdf)[:2])
    return {k: float(v) for k, v in out.items()}


def quantile_w1(samples: np.ndarray, dist) -> float:
    """W1 between the samples and the distribution: sorted samples against quantiles (i - 0.5) / n."""
    x = np.sort(samples)
    q = dist.ppf((np.arange(1, len(x) + 1) - 0.5) / len(x))
    return float(np.mean(np.abs(x - q)))


def _chi_square(samples: np.ndarray, dist) -> tuple[float, float]:
    """Pearson chi-square over the integers of the [ppf(.001), ppf(.999)] window, each edge bin taking
    its tail (samples beyond the window count there, so a wild sample cannot blow up the bin array);
    adjacent values are pooled until each bin expects >= 5."""
    n = len(samples)
    lo, hi = int(np.floor(dist.ppf(0.001))), int(np.ceil(dist.ppf(0.999)))
    support = np.arange(lo, hi + 1)
    expected = dist.pmf(support) * n
    expected[0] += dist.cdf(lo - 1) * n
    expected[-1] += dist.sf(hi) * n
    observed = np.bincount((np.clip(samples, lo, hi) - lo).astype(int), minlength=len(support)).astype(float)
    obs_bins, exp_bins, o_acc, e_acc = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        o_acc, e_acc = o_acc + o, e_acc + e
        if e_acc >= 5:
            obs_bins.append(o_acc)
            exp_bins.append(e_acc)
            o_acc = e_acc = 0.0
    if obs_bins:
        obs_bins[-1] += o_acc
        exp_bins[-1] += e_acc
    if len(obs_bins) < 2:
        return float("nan"), float("nan")
    stat = float(np.sum((np.array(obs_bins) - np.array(exp_bins)) ** 2 / np.array(exp_bins)))
    return stat, float(stats.chi2.sf(stat, len(obs_bins) - 1))


def exact_metrics(prompt: TaskPrompt, space: OutputSpace, model_probs: np.ndarray) -> dict[str, float]:
    """Exact fidelity from the model's probability of every support string (values[i] + EOS).

    Mass the model puts anywhere else is off-support: it counts fully in TV; KL is KL(target || model);
    W1 is between the model's distribution renormalised over the support and the target, on the
    values' numeric axis (w1_rel divides it by the target's standard deviation, so families of
    different scales can be averaged).
    """
    m = np.clip(np.asarray(model_probs, dtype=float), 0.0, None)
    t = space.probs
    on_support = float(m.sum())
    off = max(0.0, 1.0 - on_support)
    tv = 0.5 * (float(np.abs(m - t).sum()) + off)
    pos = t > 0
    kl = float(np.sum(t[pos] * (np.log(t[pos]) - np.log(np.maximum(m[pos], 1e-300)))))
    w1 = discrete_w1(space.numbers, m / on_support, t) if on_support > 0 else float("nan")
    std = math.sqrt(float(np.sum(t * (space.numbers - np.sum(t * space.numbers)) ** 2)))
    return {"tv": tv, "kl": kl, "w1": w1, "w1_rel": w1 / std if std > 0 else float("nan"),
            "off_support_mass": off, "on_support_mass": on_support}


def discrete_w1(points: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """W1 between two distributions on the same points: integral of |F_p - F_q|."""
    order = np.argsort(points)
    x, cdf_gap = points[order], np.cumsum(p[order] - q[order])
    return float(np.sum(np.abs(cdf_gap[:-1]) * np.diff(x)))


def family_balanced(rows: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Mean within each family, then equal weight per family; NaNs (undefined moments) are skipped."""
    per_family: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for name in metrics:
            per_family[row["family"]][name].append(float(row.get(name, float("nan"))))
    out = {}
    for name in metrics:
        family_means = [_nanmean(vals[name]) for vals in per_family.values()]
        out[name] = _nanmean(family_means)
    return out


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
