"""Cost per trial of the sampled calibration objective against the old exact TV, from one run.

    python benchmarks/objective_cost.py [--model smollm2-135m-instruct] [--adapter DIR | --no-adapter]
        [--samples 100,200,500] [--toy-steps 12]

The default sweep's evaluation (sweeps/local.yaml: 11 paper-selected prompts of 7 families,
num_decimals 1, max_bins 32), on a local HF engine in this process (no Ray): exact fidelity once, then
sampled fidelity at each n. Without --adapter it first trains a LoRA adapter for a few steps
(models/toy.py) so that the model answers with numbers, as a sweep trial's adapter does; --no-adapter
scores the base model (long answers: the worst case for sampling). Prints, per n, the wall time, its
ratio to exact TV, and the family-balanced calibration error with its standard error. No pass/fail:
timings depend on the host and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import timed  # noqa: E402
from cft.metrics import family_balanced  # noqa: E402
from evaluators.fidelity import exact_fidelity, split_prompts  # noqa: E402
from evaluators.sampled import sampled_fidelity  # noqa: E402

LOCAL_EVAL = SimpleNamespace(splits=("test_unseen_params", "test_ood_family"), selection="selected",
                             families=("binomial", "geometric", "negative_binomial", "uniform", "gaussian",
                                       "bernoulli", "poisson"))
DECIMALS, BINS, MAX_TOKENS = 1, 32, 32


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="alias, local directory or hub id")
    ap.add_argument("--adapter", help="LoRA adapter directory (default: train one for --toy-steps)")
    ap.add_argument("--no-adapter", action="store_true", help="score the base model")
    ap.add_argument("--samples", default="100,200,500", help="comma-separated samples per prompt")
    ap.add_argument("--toy-steps", type=int, default=12)
    return ap.parse_args(argv)


def toy_adapter(model_dir: str, prompts, workdir: str, steps: int) -> str:
    from models.toy import ToyTraining, train_toy_model

    settings = ToyTraining(steps=steps, batch_size=8, lr=2e-3, lora=True, rank=16, num_decimals=DECIMALS,
                           max_bins=BINS)
    return train_toy_model(model_dir, os.path.join(workdir, "adapter"), prompts, settings)


def main(argv=None) -> int:
    args = parse_args(argv)
    from evaluators.client import Scorer
    from evaluators.engines.hf_engine import HFEngine
    from models.resolve import resolve_model

    prompts = split_prompts(LOCAL_EVAL)
    model_dir = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as workdir:
        adapter = None
        if not args.no_adapter:
            adapter, train_s = args.adapter, 0.0
            if adapter is None:
                adapter, train_s = timed(lambda: toy_adapter(model_dir, prompts, workdir, args.toy_steps))
            print(f"adapter: {adapter} (trained in {train_s:.1f} s)" if train_s else f"adapter: {adapter}")
        scorer, load_s = timed(lambda: Scorer(HFEngine(model_dir, max_loras=1)))
        exact_fidelity(scorer, prompts[:1], adapter, DECIMALS, 4)   # warm-up: tokenizer, adapter load
        exact_rows, exact_s = timed(lambda: exact_fidelity(scorer, prompts, adapter, DECIMALS, BINS))
        exact = family_balanced(exact_rows, ("tv", "calibration_error"))
        print(f"model {args.model}, HF engine on CPU, {len(prompts)} prompts; engine load {load_s:.1f} s (not counted)")
        print(f"exact TV            {exact_s:7.1f} s            tv {exact['tv']:.4f}   "
              f"exact calibration_error (integer families) {exact['calibration_error']:.4f}")
        for n in (int(x) for x in args.samples.split(",")):
            rows, sampled_s = timed(lambda: sampled_fidelity(scorer, prompts, n, adapter, 0, MAX_TOKENS,
                                                             DECIMALS, BINS))
            s = family_balanced(rows, ("calibration_error", "valid_rate"))
            integer = family_balanced([r for r in rows if r["family"] in {e["family"] for e in exact_rows
                                                                          if "calibration_error" in e}],
                                      ("calibration_error",))
            print(f"sampled n={n:<5d}     {sampled_s:7.1f} s  {sampled_s / exact_s:6.1f}x   calibration_error "
                  f"{s['calibration_error']:.4f} +- {s['calibration_error_se']:.4f}   valid {s['valid_rate']:.3f}   "
                  f"integer families {integer['calibration_error']:.4f} +- {integer['calibration_error_se']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
