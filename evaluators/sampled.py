"""Sampled fidelity, the paper's protocol: N samples per prompt at temperature 1 (no top-k / top-p),
strict parse, metrics against the true distribution (cft.metrics.sample_metrics), including the sweep's
calibration objective `sampled/calibration_error` with its standard error `sampled/calibration_error_se`
(family-balanced, per split too). The reference quantiles are rounded to settings.num_decimals, the
precision the model is trained to write.

The summary has, per split (`sampled/<split>/<metric>`) and over both, the paper's numbers
(cft.metrics.SAMPLE_SUMMARY): `w1` (raw W1 on valid samples), `valid_rate`, `support_violation_rate`,
`mean_error`, `variance_error` and `gof_pass` (the share of prompts whose KS / chi-square test does not
reject at 0.05), each a mean within family then over families, beside `calibration_error`.

Each row adds `tv`: the empirical TV between the samples, matched as exact support strings, and the
discretised target (samples off the support count fully), the sampled counterpart of exact TV. With
N samples over many values it is biased upward by the sampling noise.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cft.metrics import SAMPLE_SUMMARY, sample_metrics
from cft.output_space import OutputSpace, build_output_space
from cft.splits import TaskPrompt
from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest
from evaluators.fidelity import split_prompts, split_summary

METRICS = (*SAMPLE_SUMMARY, "tv")


def sample_completions(scorer: Scorer, prompts: list[TaskPrompt], n: int, adapter: str | None = None,
                       seed: int = 0, max_tokens: int = 32) -> list[list[str]]:
    """n completions per prompt; one that runs out of tokens before EOS comes back as "" (invalid)."""
    scorer = as_scorer(scorer)
    requests = [GenerateRequest(scorer.prompt_ids(p.text), n=n, temperature=1.0, max_tokens=max_tokens,
                                seed=seed + i, adapter=adapter) for i, p in enumerate(prompts)]
    return [[c if c is not None else "" for c in outs] for outs in scorer.generate(requests)]


def empirical_tv(space: OutputSpace, completions: list[str]) -> float:
    counts = Counter(completions)
    freq = np.array([counts.get(v, 0) for v in space.values], dtype=float) / max(len(completions), 1)
    return 0.5 * (float(np.abs(freq - space.probs).sum()) + (1.0 - float(freq.sum())))


def sampled_fidelity(scorer: Scorer, prompts: list[TaskPrompt], n: int, adapter: str | None = None,
                     seed: int = 0, max_tokens: int = 32, num_decimals: int = 5,
                     max_bins: int = 1001) -> list[dict]:
    completions = sample_completions(scorer, prompts, n, adapter, seed, max_tokens)
    return [{"split": p.split, "family": p.family, "key": p.key, **sample_metrics(p, outs, num_decimals),
             "tv": empirical_tv(build_output_space(p, num_decimals, max_bins), outs)}
            for p, outs in zip(prompts, completions)]


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    rows = sampled_fidelity(scorer, split_prompts(settings), settings.samples_per_prompt, adapter,
                            settings.seed, settings.sample_max_tokens, settings.num_decimals, settings.max_bins)
    return rows, split_summary("sampled", rows, METRICS, settings.splits)
