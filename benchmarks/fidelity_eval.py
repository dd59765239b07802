"""Exact fidelity vs the paper's sampling protocol, on the 42 paper-selected prompts and one model.

    python benchmarks/fidelity_eval.py [--model DIR] [--adapter DIR] [--engine vllm|hf] [--samples 1000]
        [--num-decimals 5] [--max-bins 1001]

Without --model it builds the tiny offline model and fine-tunes it for a few seconds on the 42 prompts
(models/toy.py), so that it puts mass on the support. Prints, from one run, the wall time
of each method and their ratio, and the family-balanced W1 and TV of each with the gap between them.
No pass/fail: timings depend on the host.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import timed  # noqa: E402
from cft.metrics import family_balanced  # noqa: E402
from cft.splits import build_split  # noqa: E402
from evaluators.client import Scorer  # noqa: E402
from evaluators.fidelity import exact_fidelity  # noqa: E402
from evaluators.sampled import sampled_fidelity  # noqa: E402
from evaluators.settings import ScorerSettings  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--adapter")
    ap.add_argument("--engine", default="vllm", choices=("vllm", "hf"))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--num-decimals", type=int, default=5)
    ap.add_argument("--max-bins", type=int, default=1001)
    ap.add_argument("--toy-steps", type=int, default=100)
    ap.add_argument("--num-cpus", type=int, default=4)
    return ap.parse_args(argv)


def toy_model(args, prompts, workdir: str) -> str:
    from models.toy import ToyTraining, train_toy_model
    from models.tiny import build_tiny_model

    base = build_tiny_model(os.path.join(workdir, "tiny"))
    settings = ToyTraining(steps=args.toy_steps, num_decimals=args.num_decimals, max_bins=args.max_bins)
    return train_toy_model(str(base), os.path.join(workdir, "toy"), prompts, settings)


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def report(prompts, exact_rows, exact_s, sampled_rows, sampled_s, n):
    exact = family_balanced(exact_rows, ("tv", "w1", "off_support_mass"))
    sampled = family_balanced(sampled_rows, ("tv", "w1", "valid_rate"))
    print(f"prompts: {len(prompts)}  samples/prompt: {n}")
    print(f"wall time   exact {exact_s:8.2f} s   sampled {sampled_s:8.2f} s   sampled/exact {ratio(sampled_s, exact_s):.2f}x")
    print(f"W1          exact {exact['w1']:.5g}   sampled {sampled['w1']:.5g}   "
          f"|gap|/exact {ratio(abs(sampled['w1'] - exact['w1']), exact['w1']):.3f}")
    print(f"TV          exact {exact['tv']:.5g}   sampled {sampled['tv']:.5g}   "
          f"|gap|/exact {ratio(abs(sampled['tv'] - exact['tv']), exact['tv']):.3f}")
    print(f"support     exact on-support mass {1 - exact['off_support_mass']:.4f}   "
          f"sampled valid rate {sampled['valid_rate']:.4f}")
    print("(sampled W1 is against the continuous distribution and counts valid samples only; sampled TV is "
          "biased up by sampling noise over up to max_bins values)")


def main(argv=None) -> int:
    args = parse_args(argv)
    prompts = build_split("test_unseen_params", "selected") + build_split("test_ood_family", "selected")
    import ray
    from ray import serve

    from evaluators.service import start_scorer

    with tempfile.TemporaryDirectory() as workdir:
        model = args.model or toy_model(args, prompts, workdir)
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        try:
            settings = ScorerSettings(model=model, engine=args.engine, cpus_per_replica=1.0, max_model_len=512,
                                      app_name="fidelity-bench")
            scorer = Scorer(start_scorer(settings))
            exact_fidelity(scorer, prompts[:1], args.adapter, 1, 8)   # warm-up (tokenizer, first batch)
            exact_rows, exact_s = timed(lambda: exact_fidelity(
                scorer, prompts, args.adapter, args.num_decimals, args.max_bins))
            sampled_rows, sampled_s = timed(lambda: sampled_fidelity(
                scorer, prompts, args.samples, args.adapter, 0, 32, args.num_decimals, args.max_bins))
            report(prompts, exact_rows, exact_s, sampled_rows, sampled_s, args.samples)
        finally:
            serve.shutdown()
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
