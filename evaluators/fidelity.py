"""Exact fidelity: the model's probability of every support string (canonical tokens + EOS), scored
teacher-forced with shared prompt prefixes, and the exact metrics of the task core (TV, KL, W1, mass
off the support, and where max_bins lets the output space list every value of its window, the
calibration error the sampled objective estimates: cft.metrics.exact_calibration_error).
No sampling noise: two runs of the same model agree to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cft.metrics import exact_metrics, family_balanced
from cft.output_space import OutputSpace, build_output_space
from cft.splits import TaskPrompt, build_split
from cft.prompts import turn_terminator
from cft.trie import build_trie
from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import ScoreRequest

METRICS = ("tv", "kl", "w1", "w1_rel", "off_support_mass", "calibration_error")


@dataclass
class ValueDistribution:
    prompt: TaskPrompt
    space: OutputSpace
    probs: np.ndarray   # probs[i]: the model's probability of space.values[i] followed by its turn's end


def value_distributions(scorer: Scorer, prompts: list[TaskPrompt], adapter: str | None = None,
                        num_decimals: int = 5, max_bins: int = 1001) -> list[ValueDistribution]:
    scorer = as_scorer(scorer)
    spaces = [build_output_space(p, num_decimals, max_bins) for p in prompts]
    end_id = turn_terminator(scorer.tokenizer, scorer.chat)   # the token training ends each value with
    requests = []
    for prompt, space in zip(prompts, spaces):
        trie = build_trie(space, scorer.tokenizer, end_id)
        continuations = [list(trie.sequence(i)) for i in range(len(space))]
        requests.append(ScoreRequest(scorer.prompt_ids(prompt.text), continuations, adapter))
    return [ValueDistribution(p, s, np.exp(np.asarray(lp, dtype=float)))
            for p, s, lp in zip(prompts, spaces, scorer.score(requests))]


def exact_fidelity(scorer: Scorer, prompts: list[TaskPrompt], adapter: str | None = None,
                   num_decimals: int = 5, max_bins: int = 1001) -> list[dict]:
    """One row per prompt: split, family, key, n_values and the exact metrics."""
    return [{"split": d.prompt.split, "family": d.prompt.family, "key": d.prompt.key, "n_values": len(d.space),
             **exact_metrics(d.prompt, d.space, d.probs)}
            for d in value_distributions(scorer, prompts, adapter, num_decimals, max_bins)]


def split_prompts(settings) -> list[TaskPrompt]:
    return [p for split in settings.splits for p in build_split(split, settings.selection, settings.families)]


def split_summary(prefix: str, rows: list[dict], metrics, splits) -> dict[str, float]:
    """Family-balanced metrics per split (`prefix/split/metric`) and over all splits (`prefix/metric`),
    each with `_se` where the rows carry one (cft.metrics.family_balanced)."""
    summary = {f"{prefix}/{k}": v for k, v in family_balanced(rows, metrics).items()}
    for split in splits:
        chosen = [r for r in rows if r["split"] == split]
        summary |= {f"{prefix}/{split}/{k}": v for k, v in family_balanced(chosen, metrics).items()}
    return summary


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    rows = exact_fidelity(scorer, split_prompts(settings), adapter, settings.num_decimals, settings.max_bins)
    return rows, split_summary("fidelity", rows, METRICS, settings.splits)
