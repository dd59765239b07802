"""Replay fit: greedy accuracy on held-out problems of the synthetic replay task (cft.arithmetic), graded
strictly (`The answer is n.`, replay's format) and flexibly (the last number). The question is the user
turn, as in replay training. An answer cut off by max_tokens before EOS is graded as wrong.

The problems share replay's templates, so training with synthetic replay raises this score directly:
it measures how well replay was learnt, NOT capability. The capability axis is evaluators/gsm8k.py.
"""

from __future__ import annotations

from cft.arithmetic import grade_stated, graded, heldout_problems
from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest


def arithmetic_accuracy(scorer: Scorer, n: int, adapter: str | None = None, seed: int = 0,
                        max_tokens: int = 256) -> list[dict]:
    scorer = as_scorer(scorer)
    problems = heldout_problems(n, seed)
    requests = [GenerateRequest(scorer.prompt_ids(p.question), n=1, temperature=0.0, max_tokens=max_tokens,
                                adapter=adapter) for p in problems]
    return [{"level": p.level, "question": p.question, "answer": p.answer, **graded(output, p.answer, grade_stated)}
            for p, (output,) in zip(problems, scorer.generate(requests))]


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    rows = arithmetic_accuracy(scorer, settings.arithmetic_problems, adapter, settings.seed,
                               settings.arithmetic_max_tokens)
    n = max(len(rows), 1)
    return rows, {"arithmetic/strict_acc": sum(r["strict"] for r in rows) / n,
                  "arithmetic/flexible_acc": sum(r["flexible"] for r in rows) / n}
