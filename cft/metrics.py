"""Fidelity metrics: from samples (the paper's protocol), exact (from a model's full distribution over
the support strings), and family-balanced aggregation.

Sample metrics compare against the TRUE scipy distribution; exact metrics compare the model's
distribution over the output space with the discretised target on the same strings, so a model that
matches the target exactly scores 0 on every exact metric.

The calibration error the sweep optimises lives in cft.calibration and the goodness-of-fit tests in
cft.fit_tests; the names other modules import from here are re-exported.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Sequence

import numpy as np

from cft.calibration import (BOOTSTRAP, INVALID_COST, OUTLIER_BAND, TAIL_BAND, W1_CAP, WORST,  # noqa: F401
                             Reference, calibration_error, exact_calibration_error, expected_calibration_error,
                             full_lattice, quantile_w1, reference)
from cft.families import get_family
from cft.fit_tests import goodness_of_fit
from cft.output_space import OutputSpace
from cft.splits import TaskPrompt

NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
# what a split's summary reports from sample_metrics rows, family-balanced: the paper's numbers (raw W1
# on valid samples, valid and support-violation rates, moment errors, share of prompts whose
# goodness-of-fit test passes) beside the sweep's objective
SAMPLE_SUMMARY = ("calibration_error", "w1_scaled", "w1", "valid_rate", "support_violation_rate",
                  "mean_error", "variance_error", "gof_pass")


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


def valid_values(prompt: TaskPrompt, completions: Sequence[str]) -> tuple[np.ndarray, int]:
    """(the valid numbers, how many numbers parsed): valid = parses, finite, inside the support and,
    for integer families, integer-like (the paper's rules)."""
    parsed = [parse_number(c) for c in completions]
    numbers = np.array([v for v in parsed if v is not None], dtype=float)
    return numbers[_in_support(prompt, numbers)], len(numbers)


def _moment_error(estimate: float, truth: float) -> float | None:
    """|estimate - truth|; None where the target has no such moment (not applicable, e.g. a Cauchy
    mean), NaN where the target has it but the samples cannot estimate it."""
    if not np.isfinite(truth):
        return None
    return abs(estimate - truth) if np.isfinite(estimate) else float("nan")


def sample_metrics(prompt: TaskPrompt, completions: Sequence[str],
                   num_decimals: int | None = None) -> dict[str, float | str | None]:
    """The paper's per-prompt sampling metrics over N completions: valid and support-violation rates,
    raw W1 of the valid samples (`w1`, the paper's unscaled estimator), moment errors and the
    goodness-of-fit test (`gof_test`, `gof_stat`, `gof_pvalue`, `gof_pass`: cft.fit_tests); plus the
    calibration error and its standard error (`calibration_error`, `calibration_error_se`,
    `w1_scaled`) and the valid rate's binomial standard error (`valid_rate_se`).

    No valid sample: w1 and the moment errors are NaN (they cannot be computed: NaN propagates through
    family_balanced), gof_pass is 0, the calibration error is WORST. A moment the target lacks is None
    (skipped).
    """
    n = len(completions)
    valid, parsed = valid_values(prompt, completions)
    nan = float("nan")
    ref = reference(prompt)
    out: dict[str, float | str | None] = {
        "n_samples": float(n),
        "valid_rate": len(valid) / n if n else 0.0,
        "valid_rate_se": math.sqrt(len(valid) * (n - len(valid)) / n ** 3) if n else 0.0,
        "support_violation_rate": (parsed - len(valid)) / n if n else 0.0,
        **calibration_error(prompt, valid, n, num_decimals),
        "mean_error": _moment_error(valid.mean() if len(valid) else nan, ref.dist.mean()),
        "variance_error": _moment_error(valid.var() if len(valid) > 1 else nan, ref.dist.var()),
        "w1": quantile_w1(np.sort(valid), ref.quantiles(len(valid), clamped=False)) if len(valid) else nan,
        **goodness_of_fit(valid, ref.dist, ref.integer),
    }
    return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in out.items()}


# --- exact fidelity ------------------------------------------------------------------------------

def exact_metrics(prompt: TaskPrompt, space: OutputSpace, model_probs: np.ndarray) -> dict[str, float]:
    """Exact fidelity from the model's probability of every support string (values[i] + EOS).

    Mass the model puts anywhere else is off-support: it counts fully in TV; KL is KL(target || model);
    W1 is between the model's distribution renormalised over the support and the target, on the
    values' numeric axis (w1_rel divides it by the target's standard deviation, so families of
    different scales can be averaged). Where the space lists every value of its window (`full_lattice`:
    max_bins large enough) it adds `calibration_error` (exact, so its `calibration_error_se` is 0): the
    sampled objective's noise-free value.
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
    out = {"tv": tv, "kl": kl, "w1": w1, "w1_rel": w1 / std if std > 0 else float("nan"),
           "off_support_mass": off, "on_support_mass": on_support}
    if full_lattice(prompt, space):
        out |= {"calibration_error": exact_calibration_error(prompt, space, m), "calibration_error_se": 0.0}
    return out


def discrete_w1(points: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """W1 between two distributions on the same points: integral of |F_p - F_q|."""
    order = np.argsort(points)
    x, cdf_gap = points[order], np.cumsum(p[order] - q[order])
    return float(np.sum(np.abs(cdf_gap[:-1]) * np.diff(x)))


# --- aggregation ---------------------------------------------------------------------------------

def family_balanced(rows: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Mean within each family, then equal weight per family.

    A row whose value is None (or missing) is not applicable (a moment the target lacks, an exact
    metric of a continuous family) and is left out; a family with no applicable row leaves that
    metric's average, and a metric with none at all is left out of the result. NaN is NOT skipped: it
    means a value could not be computed (e.g. W1 with no valid sample), so it propagates to the
    average instead of letting a failing family drop out of it.

    Where the applicable rows carry `<metric>_se`, the result adds `<metric>_se`: prompts are sampled
    independently, so SE^2 = sum over families f of sum_p se_p^2 / n_f^2, divided by F^2.
    """
    out = {}
    for name in metrics:
        per_family: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row.get(name) is not None:
                per_family[row["family"]].append(row)
        if not per_family:
            continue
        means = [float(np.mean([float(r[name]) for r in fam_rows])) for fam_rows in per_family.values()]
        out[name] = float(np.mean(means))
        se_key = f"{name}_se"
        if all(r.get(se_key) is not None for fam_rows in per_family.values() for r in fam_rows):
            var = sum(sum(float(r[se_key]) ** 2 for r in fam_rows) / len(fam_rows) ** 2
                      for fam_rows in per_family.values())
            out[se_key] = math.sqrt(var) / len(per_family)
    return out
