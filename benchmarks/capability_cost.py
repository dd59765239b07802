"""Cost and resolution of the GSM8K capability measures on one model, from one run.

    python benchmarks/capability_cost.py [--model smollm2-135m-instruct] [--items 50,100,200]
        [--shots 0,3] [--generate-items 10] [--max-tokens 256]

On a local HF engine in this process (no Ray): the gold-solution log-probability (teacher-forced, one
forward pass per item) on the largest item count, per number of shots; the smaller counts are its
first items (the subsets are nested), so each is reported with the measured time per item times its
count and its own standard error. Then greedy generation accuracy on --generate-items items (its
per-item time extrapolates to larger subsets). No pass/fail: timings depend on the host and its load.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import timed  # noqa: E402
from evaluators.gsm8k import gsm8k_capability, mean_and_se  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--adapter")
    ap.add_argument("--items", default="50,100,200")
    ap.add_argument("--shots", default="0,3")
    ap.add_argument("--generate-items", type=int, default=10, help="0: skip generation")
    ap.add_argument("--max-tokens", type=int, default=256)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from evaluators.client import Scorer
    from evaluators.engines.hf_engine import HFEngine
    from models.resolve import resolve_model

    scorer, load_s = timed(lambda: Scorer(HFEngine(resolve_model(args.model), max_loras=1)))
    gsm8k_capability(scorer, 2, args.adapter)   # warm-up
    print(f"model {args.model}, HF engine on CPU; engine load {load_s:.1f} s (not counted)")
    for shots in (int(s) for s in args.shots.split(",")):
        counts = sorted(int(x) for x in args.items.split(","))
        rows, secs = timed(lambda: gsm8k_capability(scorer, counts[-1], args.adapter, shots))
        per_item = secs / counts[-1]
        for n in counts:
            mean, se = mean_and_se(r["gold_logprob"] for r in rows[:n])
            print(f"gold_logprob  shots={shots} items={n:<4d} {per_item * n:7.1f} s  ({per_item:.3f} s/item, "
                  f"measured on {counts[-1]})   {mean:.4f} +- {se:.4f}")
        if args.generate_items:
            n = args.generate_items
            rows, secs = timed(lambda: gsm8k_capability(scorer, n, args.adapter, shots, True, args.max_tokens))
            strict, strict_se = mean_and_se(r["strict"] for r in rows)
            flexible, flexible_se = mean_and_se(r["flexible"] for r in rows)
            truncated = sum(r["truncated"] for r in rows)
            print(f"greedy        shots={shots} items={n:<4d} {secs:7.1f} s  {secs / n:.2f} s/item (incl. logprob)   "
                  f"strict {strict:.3f} +- {strict_se:.3f}  flexible {flexible:.3f} +- {flexible_se:.3f}  "
                  f"truncated {truncated}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
