"""Capability on GSM8K: a fixed subset of the test split (cft/gsm8k.py), which no replay source shares.

Two measures, each with its standard error over items:
- `gsm8k/gold_logprob`: the mean per-token log-probability of the gold worked solution given the
  question, teacher-forced through Scorer.score (exact, no sampling). It has resolution where
  generation accuracy sits at the floor (SmolLM2-135M solves ~1-2% of GSM8K), and costs one forward
  pass per item.
- `gsm8k/strict_acc`, `gsm8k/flexible_acc`: greedy accuracy, strict (`#### n`) and flexible (the last
  number), as the paper's tinyGSM8k check; an answer cut off by max_tokens before EOS counts as wrong.
  Only when `gsm8k_generate` is set: on CPU it costs seconds per item.

Settings: EvalSettings.gsm8k_items, gsm8k_shots, gsm8k_generate, gsm8k_max_tokens.
"""

from __future__ import annotations

import math

import numpy as np

from cft.arithmetic import ArithmeticProblem, grade_strict, graded
from cft.gsm8k import capability_items, capability_prompt
from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest, ScoreRequest


def gold_logprobs(scorer: Scorer, items: list[ArithmeticProblem], prompts: list[list[int]],
                  adapter: str | None = None) -> list[tuple[float, int]]:
    """(mean log-probability per token, tokens) of each item's gold solution after its prompt."""
    golds = [scorer.tokenizer(item.solution, add_special_tokens=False)["input_ids"] for item in items]
    totals = scorer.score([ScoreRequest(p, [g], adapter) for p, g in zip(prompts, golds)])
    return [(total[0] / len(g), len(g)) for total, g in zip(totals, golds)]


def gsm8k_capability(scorer: Scorer, n: int, adapter: str | None = None, shots: int = 0,
                     generate: bool = False, max_tokens: int = 256) -> list[dict]:
    """One row per item: its index in the fixed order, the gold answer, `gold_logprob` and, when
    generating, the output with `strict` and `flexible` (1.0 or 0.0)."""
    scorer = as_scorer(scorer)
    items = capability_items(n)
    prompts = [scorer.prompt_ids(capability_prompt(item.question, shots)) for item in items]
    rows = [{"index": i, "question": item.question, "answer": item.answer, "gold_logprob": lp, "gold_tokens": k}
            for i, (item, (lp, k)) in enumerate(zip(items, gold_logprobs(scorer, items, prompts, adapter)))]
    if generate:
        requests = [GenerateRequest(p, n=1, temperature=0.0, max_tokens=max_tokens, adapter=adapter) for p in prompts]
        for row, (output,) in zip(rows, scorer.generate(requests)):
            row |= graded(output, row["answer"], grade_strict)
    return rows


def mean_and_se(values) -> tuple[float, float]:
    """The mean over items and its standard error (sample sd / sqrt(n)); the SE is NaN below 2 items."""
    x = np.asarray(list(values), dtype=float)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(x.mean()), se


# summary metric -> the per-item row key it averages (rows carry "index", so two runs pair by item)
ITEM_METRICS = {"gsm8k/gold_logprob": "gold_logprob", "gsm8k/strict_acc": "strict", "gsm8k/flexible_acc": "flexible"}


def paired_difference(base_rows: list[dict], tuned_rows: list[dict], key: str) -> tuple[float, float]:
    """(mean of base - tuned, its standard error) over the items both scored, paired by item: the
    capability loss on `key` with an SE far smaller than the two SEs combined, since item difficulty
    cancels."""
    tuned = {r["index"]: r[key] for r in tuned_rows}
    diffs = [r[key] - tuned[r["index"]] for r in base_rows if r["index"] in tuned]
    if not diffs:
        raise ValueError("base and tuned rows share no item")
    return mean_and_se(diffs)


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    rows = gsm8k_capability(scorer, settings.gsm8k_items, adapter, settings.gsm8k_shots, settings.gsm8k_generate,
                            settings.gsm8k_max_tokens)
    summary = {}
    for metric, key in ITEM_METRICS.items():
        if key in rows[0]:
            summary[metric], summary[f"{metric}_se"] = mean_and_se(r[key] for r in rows)
    return rows, summary
