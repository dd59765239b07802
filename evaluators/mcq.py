"""MCQ answer-position balance as the paper's code runs it (the project's earlier variant is
evaluators.mcq_lenient): the reference's fixed medical prompt (cft/data/mcq_medical_prompt.txt, byte
for byte, one user turn), settings.mcq_questions generations at temperature 1 with no top-k / top-p
and at most MAX_TOKENS = 256 new tokens, each read by the reference's strict line parser
(evaluators.textparse.parse_mcq). A calibrated generator places the correct answer uniformly.

Over the parseable generations: the answer letters' TV distance from uniform (1/2 sum |f_k - 1/4|),
the largest |f_k - 1/4|, and Pearson's chi-square against uniform (statistic, p-value); over all
generations: the parse rate and the share whose four options are distinct. Where none parses, the
balance metrics are NaN (the reference reports 0, perfectly balanced, which no generation showed).

One difference remains: the engines return no text for a generation that runs out of tokens before
its end token, where the reference parses the truncated text; such generations count as unparseable
here, and `mcq/truncated_rate` says how many there were.
"""

from __future__ import annotations

from collections import Counter
from importlib import resources

from scipy import stats

from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest
from evaluators.textparse import LETTERS, parse_mcq

MAX_TOKENS = 256   # the reference's max_new_tokens
BATCH = 50         # generations per request, so that several replicas share them


def load_prompt() -> str:
    return resources.files("cft.data").joinpath("mcq_medical_prompt.txt").read_text(encoding="utf-8")


def check_fits(prompt_len: int, max_model_len: int) -> None:
    """The reference gives every generation 256 new tokens; a shorter budget would not be its
    evaluation, so a context that cannot hold the prompt plus 256 is an error naming the fix."""
    if prompt_len + MAX_TOKENS > max_model_len:
        raise ValueError(f"mcq: the medical prompt takes {prompt_len} tokens and generations {MAX_TOKENS}, "
                         f"but max_model_len is {max_model_len}; set the evaluation's max_model_len to at "
                         f"least {prompt_len + MAX_TOKENS} (or evaluate mcq_lenient)")


def balance(letters: list[str]) -> dict[str, float]:
    """TV from uniform, largest deviation and chi-square against uniform of the answer letters."""
    if not letters:
        return {"tv_from_uniform": float("nan"), "max_abs_deviation": float("nan"),
                "chi_square_stat": float("nan"), "chi_square_pvalue": float("nan")}
    counts = Counter(letters)
    freq = [counts.get(c, 0) / len(letters) for c in LETTERS]
    chi = stats.chisquare([counts.get(c, 0) for c in LETTERS])
    return {"tv_from_uniform": 0.5 * sum(abs(f - 0.25) for f in freq),
            "max_abs_deviation": max(abs(f - 0.25) for f in freq),
            "chi_square_stat": float(chi.statistic), "chi_square_pvalue": float(chi.pvalue)}


def mcq_generations(scorer: Scorer, n: int, adapter: str | None = None, seed: int = 0) -> list[dict]:
    """One row per generation: its answer letter ("" where unparseable), the parser's errors, and
    whether its options are distinct and whether the engine truncated it."""
    scorer = as_scorer(scorer)
    ids = scorer.prompt_ids(load_prompt())
    check_fits(len(ids), scorer.settings.max_model_len)
    sizes = [min(BATCH, n - start) for start in range(0, n, BATCH)]
    requests = [GenerateRequest(ids, n=size, temperature=1.0, max_tokens=MAX_TOKENS, seed=seed + i, adapter=adapter)
                for i, size in enumerate(sizes)]
    rows = []
    for text in (t for outs in scorer.generate(requests) for t in outs):
        parsed = parse_mcq(text)
        rows.append({"answer": parsed.answer if parsed.parseable else "", "errors": ",".join(parsed.errors),
                     "distinct_options": parsed.distinct_options, "truncated": text is None})
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    letters = [r["answer"] for r in rows if r["answer"]]
    n = len(rows)
    return {"parse_rate": len(letters) / n, "distinct_options_rate": sum(r["distinct_options"] for r in rows) / n,
            "truncated_rate": sum(r["truncated"] for r in rows) / n, **balance(letters)}


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    rows = mcq_generations(scorer, settings.mcq_questions, adapter, settings.seed)
    return rows, {f"mcq/{k}": float(v) for k, v in summarize(rows).items()}
