"""Open-ended random generation: on the paper's 102 prompts ("Name a random city. ..."), the fraction of
unique answers among N samples at temperature 1, and the first-token top-p support size (how many
next tokens it takes to cover top_p of the first token's probability).
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest, TopProbsRequest


def load_prompts() -> list[str]:
    return json.loads(resources.files("cft.data").joinpath("open_random_gen_prompts.json").read_text())


def support_size(top: list[float], top_p: float) -> tuple[int, bool]:
    """Tokens needed to reach top_p; (k, True) when the k tokens returned do not reach it (a lower bound)."""
    reached = np.nonzero(np.cumsum(top) >= top_p - 1e-12)[0]
    return (int(reached[0]) + 1, False) if len(reached) else (len(top), True)


def open_random(scorer: Scorer, n: int, adapter: str | None = None, prompts: list[str] | None = None,
                seed: int = 0, top_p: float = 0.9, max_tokens: int = 32, top_k: int = 256) -> list[dict]:
    scorer = as_scorer(scorer)
    prompts = prompts if prompts is not None else load_prompts()
    ids = [scorer.prompt_ids(p) for p in prompts]
    k = min(top_k, len(scorer.tokenizer))
    samples = scorer.generate([GenerateRequest(x, n=n, temperature=1.0, max_tokens=max_tokens,
                                               seed=seed + i, adapter=adapter) for i, x in enumerate(ids)])
    tops = scorer.top_probs([TopProbsRequest(x, k=k, adapter=adapter) for x in ids])
    rows = []
    for prompt, outs, top in zip(prompts, samples, tops):
        answers = [o.strip().lower() for o in outs if o is not None and o.strip()]
        size, capped = support_size(top, top_p)
        rows.append({"prompt": prompt, "valid_rate": len(answers) / n,
                     "unique_fraction": len(set(answers)) / n,
                     "first_token_support": float(size), "support_capped": capped})
    return rows


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    prompts = load_prompts()[:settings.openrandom_prompts] if settings.openrandom_prompts else None
    top_k = as_scorer(scorer).settings.max_logprobs
    rows = open_random(scorer, settings.openrandom_samples, adapter, prompts, settings.seed, settings.top_p,
                       settings.sample_max_tokens, top_k)
    return rows, {f"openrandom/{m}": float(np.mean([r[m] for r in rows]))
                  for m in ("unique_fraction", "first_token_support", "valid_rate")}
