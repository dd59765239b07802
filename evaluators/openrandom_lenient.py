"""Open-ended random generation, the project's earlier lenient variant (the reference-exact one is
evaluators.openrandom): on the paper's 102 prompts, the fraction of unique answers among N samples at
temperature 1, answers stripped and lower-cased, at most settings.sample_max_tokens tokens; and the
first-token top-p support size counted over the top max_logprobs tokens only (`support_capped` when
those do not reach top_p). Summary keys `openrandom_lenient/...`.
"""

from __future__ import annotations

import numpy as np

from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest, TopProbsRequest
from evaluators.openrandom import load_prompts, support_size


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
    return rows, {f"openrandom_lenient/{m}": float(np.mean([r[m] for r in rows]))
                  for m in ("unique_fraction", "first_token_support", "valid_rate")}
