"""Target output spaces: the support strings a prompt's answer can take, with their probabilities.

docs/method.md section 2. Continuous families are discretised on a grid of multiples of 10^-num_decimals
inside the [ppf(q_low), ppf(q_high)] window (clipped to the support), thinned to at most max_bins
points; each grid point gets the CDF mass between the midpoints around it, the tails beyond the window
are folded into the edge bins, and values whose strings coincide are merged. Integer families list
their support (or its central window) with the pmf, tails folded into the edge values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cft.families import get_family
from cft.splits import TaskPrompt

Q_LOW, Q_HIGH = 0.001, 0.999


@dataclass(frozen=True, eq=False)
class OutputSpace:
    values: tuple[str, ...]
    probs: np.ndarray = field(repr=False)
    integer: bool
    num_decimals: int

    def __len__(self) -> int:
        return len(self.values)

    @cached_property
    def numbers(self) -> np.ndarray:
        return np.array([float(v) for v in self.values])

    @cached_property
    def index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.values)}

    def as_dict(self) -> dict:
        return {"values": list(self.values), "probabilities": self.probs.tolist()}


def format_value(x: float, integer: bool, num_decimals: int) -> str:
    if integer:
        return str(int(round(x)))
    text = f"{x:.{num_decimals}f}"
    # -0.00 is not a value a sampler should be asked to produce
    return text[1:] if text.startswith("-") and float(text) == 0 else text


# float64 holds 15-17 significant digits, so more decimals add no distinct values (the paper asks for
# at most 5); a space is scored string by string, so a million values is beyond any evaluation
MAX_DECIMALS = 15
MAX_BINS = 1_000_000


def build_output_space(prompt: TaskPrompt, num_decimals: int = 5, max_bins: int = 1001) -> OutputSpace:
    if not 0 <= num_decimals <= MAX_DECIMALS or not 1 <= max_bins <= MAX_BINS:
        raise ValueError(f"num_decimals must lie in [0, {MAX_DECIMALS}] and max_bins in [1, {MAX_BINS}] "
                         f"(got {str(num_decimals)[:40]}, {str(max_bins)[:40]})")
    fam = get_family(prompt.family)
    params = prompt.param_dict
    dist, (lo, hi) = fam.frozen(params), fam.support(params)
    if fam.integer:
        return _integer_space(dist, lo, hi, max_bins)
    return _continuous_space(dist, lo, hi, num_decimals, max_bins)


def _integer_space(dist, lo, hi, max_bins) -> OutputSpace:
    first = int(math.floor(lo)) if lo is not None else int(math.floor(dist.ppf(Q_LOW)))
    last = int(math.ceil(hi)) if hi is not None else int(math.ceil(dist.ppf(Q_HIGH)))
    if not math.isfinite(float(last - first)):
        raise ValueError("the target has no finite quantiles to list")
    if last - first + 1 > max_bins:  # keep the central window
        centre = int(round(dist.median()))
        first = max(first, centre - max_bins // 2)
        last = first + max_bins - 1
    support = np.arange(first, last + 1)
    probs = dist.pmf(support).astype(float)
    probs[0] += dist.cdf(first - 1)    # lower tail (0 where the support starts here)
    probs[-1] += dist.sf(last)         # upper tail
    return OutputSpace(tuple(str(int(v)) for v in support), _normalised(probs), True, 0)


def _continuous_space(dist, lo, hi, num_decimals, max_bins) -> OutputSpace:
    lower, upper = float(dist.ppf(Q_LOW)), float(dist.ppf(Q_HIGH))
    if lo is not None:
        lower = max(lower, lo)
    if hi is not None:
        upper = min(upper, hi)
    step = 10.0 ** -num_decimals
    first, last = math.ceil(lower / step - 1e-9), math.floor(upper / step + 1e-9)
    count = last - first + 1
    if count <= 0:
        ks = np.array([round((lower + upper) / 2 / step)])
    elif count > max_bins:  # thin without materialising a grid that can have billions of points
        ks = first + np.linspace(0, count - 1, max_bins, dtype=np.int64)
    else:
        ks = np.arange(first, last + 1)
    centres = ks * step
    edges = np.concatenate(([lower], (centres[:-1] + centres[1:]) / 2, [upper]))
    cdf = dist.cdf(edges)
    probs = np.diff(cdf)
    probs[0] += cdf[0]          # mass below the window
    probs[-1] += 1.0 - cdf[-1]  # mass above it
    strings = [format_value(c, False, num_decimals) for c in centres]
    values, merged = _merge_equal_strings(strings, np.clip(probs, 0.0, None))
    return OutputSpace(values, _normalised(merged), False, num_decimals)


def _merge_equal_strings(strings: list[str], probs: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Adjacent equal strings become one value holding their summed mass."""
    runs = [(s, sum(p for _, p in run)) for s, run in itertools.groupby(zip(strings, probs), key=lambda sp: sp[0])]
    return tuple(s for s, _ in runs), np.array([p for _, p in runs])


def _normalised(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, None)
    total = probs.sum()
    if not total > 0:
        raise ValueError("target distribution has no mass on its output space")
    return probs / total
