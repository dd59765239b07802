"""Open-ended random generation as the paper's code runs it (the project's earlier variant is
evaluators.openrandom_lenient): on its 102 prompts ("Name a random city. ..."), N samples per prompt
at temperature 1 with no top-k / top-p and at most MAX_TOKENS = 16 new tokens; each answer normalised
as the reference does (evaluators.textparse.normalize_answer: thinking removed, first non-empty line,
whitespace collapsed, one pair of surrounding quotes removed, case kept).

Per prompt: unique_fraction = distinct non-empty answers / all N samples; valid_rate = non-empty
answers / N; first_token_support = how many tokens, over the whole vocabulary sorted by probability,
the first answer token needs to reach top_p of its mass (the top max_logprobs tokens from the engine
where they reach it, else every token of the vocabulary scored). Summary keys `openrandom/...`,
plain means over the prompts.

One difference remains: the engines return no text for a completion that runs out of tokens before
its end token, where the reference keeps the truncated text; such samples count as empty here, and
`openrandom/truncated_rate` says how many there were.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest, ScoreRequest, TopProbsRequest
from evaluators.textparse import normalize_answer

MAX_TOKENS = 16   # the reference's max_new_tokens


def load_prompts() -> list[str]:
    return json.loads(resources.files("cft.data").joinpath("open_random_gen_prompts.json").read_text())


def support_size(top: list[float], top_p: float) -> tuple[int, bool]:
    """Tokens needed to reach top_p; (k, True) when the k tokens returned do not reach it (a lower bound)."""
    reached = np.nonzero(np.cumsum(top) >= top_p - 1e-12)[0]
    return (int(reached[0]) + 1, False) if len(reached) else (len(top), True)


def first_token_supports(scorer: Scorer, ids: list[list[int]], top_p: float, adapter: str | None = None,
                         top_k: int = 256) -> list[tuple[int, str]]:
    """(support size, where it was counted) per prompt: from the engine's top_k probabilities where they
    reach top_p (then they hold every token the count needs), else from the whole vocabulary, every
    token scored as a one-token continuation."""
    scorer = as_scorer(scorer)
    tops = scorer.top_probs([TopProbsRequest(x, k=min(top_k, len(scorer.tokenizer)), adapter=adapter) for x in ids])
    sizes = [support_size(top, top_p) for top in tops]
    short = [i for i, (_, capped) in enumerate(sizes) if capped]
    vocabulary = [[t] for t in range(len(scorer.tokenizer))]
    full = scorer.score([ScoreRequest(ids[i], vocabulary, adapter) for i in short]) if short else []
    for i, logprobs in zip(short, full):
        probs = np.sort(np.exp(np.asarray(logprobs, dtype=float)))[::-1]
        sizes[i] = support_size(probs.tolist(), top_p)
    return [(size, "vocabulary" if i in short else "top_k") for i, (size, _) in enumerate(sizes)]


def open_random(scorer: Scorer, n: int, adapter: str | None = None, prompts: list[str] | None = None,
                seed: int = 0, top_p: float = 0.9, top_k: int = 256) -> list[dict]:
    scorer = as_scorer(scorer)
    prompts = prompts if prompts is not None else load_prompts()
    ids = [scorer.prompt_ids(p) for p in prompts]
    samples = scorer.generate([GenerateRequest(x, n=n, temperature=1.0, max_tokens=MAX_TOKENS,
                                               seed=seed + i, adapter=adapter) for i, x in enumerate(ids)])
    supports = first_token_supports(scorer, ids, top_p, adapter, top_k)
    rows = []
    for prompt, outs, (size, counted_over) in zip(prompts, samples, supports):
        answers = [normalize_answer(o) for o in outs]
        nonempty = [a for a in answers if a]
        rows.append({"prompt": prompt, "n": len(outs), "unique_fraction": len(set(nonempty)) / len(outs),
                     "valid_rate": len(nonempty) / len(outs),
                     "truncated_rate": sum(o is None for o in outs) / len(outs),
                     "first_token_support": float(size), "support_counted_over": counted_over})
    return rows


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    prompts = load_prompts()[:settings.openrandom_prompts] if settings.openrandom_prompts else None
    top_k = as_scorer(scorer).settings.max_logprobs
    rows = open_random(scorer, settings.openrandom_samples, adapter, prompts, settings.seed, settings.top_p, top_k)
    return rows, {f"openrandom/{m}": float(np.mean([r[m] for r in rows]))
                  for m in ("unique_fraction", "first_token_support", "valid_rate", "truncated_rate")}
