"""The paper's per-prompt numbers beside the sweep's objective: raw W1 on valid samples, the
goodness-of-fit test and its pass share, in sample_metrics rows and in the completions summary."""

import json

import numpy as np
import pytest
from scipy import stats

from cft.families import get_family
from cft.fit_tests import GOF_LEVEL, goodness_of_fit
from cft.metrics import SAMPLE_SUMMARY, sample_metrics
from cft.output_space import format_value
from cft.splits import build_split, make_prompt
from evaluators.completions import score_completions_file

EVAL_POINTS = build_split("test_unseen_params", "selected") + build_split("test_ood_family", "selected")


def draw(prompt, n, seed, shift=0.0, decimals=5):
    fam = get_family(prompt.family)
    x = fam.frozen(prompt.param_dict).rvs(n, random_state=np.random.default_rng(seed)) + shift
    return [format_value(v, fam.integer, decimals) for v in x]


def papers_w1(values, dist) -> float:
    """Independently: mean |x_(i) - F^-1((i - 0.5) / n)| over the sorted valid values."""
    x = np.sort(np.asarray(values, dtype=float))
    return float(np.mean(np.abs(x - dist.ppf((np.arange(1, len(x) + 1) - 0.5) / len(x)))))


@pytest.mark.parametrize("family,params", [
    ("gaussian", {"mu": 3.5, "sigma": 3.0}), ("poisson", {"lambda": 4.0}), ("cauchy", {"x0": 3.5, "gamma": 3.0}),
    ("lognormal", {"mu": 2.5, "sigma": 2.0}), ("binomial", {"n": 25.0, "p": 0.5}), ("bernoulli", {"p": 0.1}),
])
def test_raw_w1_is_the_papers_estimator_on_valid_samples_only(family, params):
    """Unclamped and unscaled, over the valid samples only: garbage and support violations change
    the valid rate, not W1 (a wild but valid value counts in full, as in the paper)."""
    prompt = make_prompt(family, params)
    dist = get_family(family).frozen(prompt.param_dict)
    valid = draw(prompt, 400, seed=1, shift=0.0 if get_family(family).integer else 0.3)
    lo, _ = get_family(family).support(prompt.param_dict)
    invalid = ["no idea", "1,5", ""] + ([str(lo - 7)] if lo is not None else [])
    m = sample_metrics(prompt, valid + invalid)
    assert m["w1"] == pytest.approx(papers_w1([float(v) for v in valid], dist), rel=1e-9)
    assert m["valid_rate"] == pytest.approx(400 / (400 + len(invalid)))
    assert m["support_violation_rate"] == pytest.approx((1 if lo is not None else 0) / (400 + len(invalid)))


def test_goodness_of_fit_passes_true_samples_and_rejects_moved_ones():
    """At the paper's 1,000 samples on all 42 test points: a true sampler passes at about the test's
    level (each prompt rejects with probability 0.05); one moved by half a standard deviation fails."""
    true = [sample_metrics(p, draw(p, 1000, seed=i)) for i, p in enumerate(EVAL_POINTS)]
    assert np.mean([m["gof_pass"] for m in true]) >= 0.85
    assert {m["gof_test"] for m, p in zip(true, EVAL_POINTS) if get_family(p.family).integer} == {"chi_square"}
    assert {m["gof_test"] for m, p in zip(true, EVAL_POINTS) if not get_family(p.family).integer} == {"ks"}
    gaussian = make_prompt("gaussian", {"mu": 3.5, "sigma": 3.0})
    moved = sample_metrics(gaussian, draw(gaussian, 1000, seed=3, shift=1.5))
    assert moved["gof_pass"] == 0.0 and moved["gof_pvalue"] < GOF_LEVEL


def test_ks_is_scipys_and_a_prompt_without_valid_samples_does_not_pass():
    dist = get_family("gaussian").frozen({"mu": 0.0, "sigma": 1.0})
    x = dist.rvs(50, random_state=np.random.default_rng(0))
    out = goodness_of_fit(x, dist, integer=False)
    assert (out["gof_stat"], out["gof_pvalue"]) == pytest.approx(tuple(stats.kstest(x, dist.cdf)[:2]))
    none = goodness_of_fit(np.array([]), dist, integer=False)
    assert none["gof_pass"] == 0.0 and np.isnan(none["gof_pvalue"])
    m = sample_metrics(make_prompt("poisson", {"lambda": 4.0}), ["x"] * 20)
    assert m["gof_pass"] == 0.0 and m["gof_test"] == "chi_square"


def test_completions_summary_has_the_papers_numbers_family_balanced(tmp_path):
    """`evaluators.score --completions FILE --json`: every row has the paper's numbers, the summary
    averages them within family then over families, and `families` is the per-family table."""
    prompts = [make_prompt("poisson", {"lambda": 1.0}), make_prompt("poisson", {"lambda": 12.0}),
               make_prompt("gaussian", {"mu": 3.5, "sigma": 3.0})]
    lines = [{"family": p.family, "params": dict(p.param_dict), "num_decimals": 5, "samples": draw(p, 500, seed=i)}
             for i, p in enumerate(prompts)]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    result = score_completions_file(path)
    rows, summary, families = result["rows"], result["summary"], result["families"]
    for row, p, line in zip(rows, prompts, lines):
        dist = get_family(p.family).frozen(p.param_dict)
        assert row["w1"] == pytest.approx(papers_w1([float(v) for v in line["samples"]], dist))
        assert {"gof_test", "gof_stat", "gof_pvalue", "gof_pass", "mean_error", "variance_error"} <= set(row)
    poisson_w1 = (rows[0]["w1"] + rows[1]["w1"]) / 2
    assert families["poisson"]["w1"] == pytest.approx(poisson_w1)
    assert summary["w1"] == pytest.approx((poisson_w1 + rows[2]["w1"]) / 2)
    assert summary["gof_pass"] == pytest.approx(
        ((rows[0]["gof_pass"] + rows[1]["gof_pass"]) / 2 + rows[2]["gof_pass"]) / 2)
    assert set(SAMPLE_SUMMARY) <= set(summary) and set(SAMPLE_SUMMARY) <= set(families["gaussian"])
    json.dumps(result, allow_nan=False)
