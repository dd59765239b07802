"""Score one model (optionally with a LoRA adapter) on a local embedded Ray + Serve.

    python -m evaluators.score --model M [--adapter DIR] [--evals fidelity,sampled,arithmetic,openrandom,mcq]
        [--split test_unseen_params,test_ood_family] [--selection selected|full] [--engine vllm|hf] [--json]

Exit status: 0 on success, 2 for bad arguments (unknown eval or split, missing adapter or model),
3 when the engine fails to start, 1 for anything else that fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import contextmanager

from evaluators.settings import ENGINES, EVALS, EvalSettings, ScorerSettings


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m evaluators.score", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="base model: local path or HF id")
    ap.add_argument("--adapter", help="LoRA adapter directory (local or shared storage)")
    ap.add_argument("--evals", default="fidelity", help=f"comma-separated, from {','.join(EVALS)}")
    ap.add_argument("--split", default="test_unseen_params,test_ood_family", help="comma-separated splits")
    ap.add_argument("--selection", default="selected", choices=("selected", "full"))
    ap.add_argument("--families", help="comma-separated families (default: all of the split)")
    ap.add_argument("--engine", default="vllm", choices=ENGINES)
    ap.add_argument("--num-decimals", type=int, default=5)
    ap.add_argument("--max-bins", type=int, default=1001)
    ap.add_argument("--samples", type=int, default=1000, help="samples per prompt (sampled fidelity)")
    ap.add_argument("--arithmetic-problems", type=int, default=50)
    ap.add_argument("--openrandom-samples", type=int, default=100)
    ap.add_argument("--mcq-questions", type=int, default=1000)
    ap.add_argument("--max-model-len", type=int, default=512)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--num-cpus", type=int, default=4, help="logical CPUs for the embedded Ray")
    ap.add_argument("--chat", default="{}", help="ChatOptions kwargs as JSON, e.g. '{\"enable_thinking\": false}'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the full result (summary and rows) as JSON")
    return ap.parse_args(argv)


def build_settings(args) -> tuple[ScorerSettings, EvalSettings]:
    """Raises ValueError / FileNotFoundError naming what is wrong with the arguments."""
    from evaluators.engines.adapters import resolve_adapter

    if args.adapter:
        resolve_adapter(args.adapter)
    if os.path.sep in args.model and not os.path.isdir(args.model):
        raise FileNotFoundError(f"no model directory at {args.model!r}")
    evals = tuple(e.strip() for e in args.evals.split(",") if e.strip())
    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    families = tuple(f.strip() for f in args.families.split(",")) if args.families else None
    scorer = ScorerSettings(model=args.model, engine=args.engine, num_replicas=args.replicas,
                            cpus_per_replica=min(1.0, (args.num_cpus - 0.5) / args.replicas),
                            max_model_len=args.max_model_len, chat=json.loads(args.chat))
    ev = EvalSettings(evals=evals, splits=splits, selection=args.selection, num_decimals=args.num_decimals,
                      max_bins=args.max_bins, samples_per_prompt=args.samples,
                      arithmetic_problems=args.arithmetic_problems, seed=args.seed, families=families,
                      openrandom_samples=args.openrandom_samples, mcq_questions=args.mcq_questions)
    return scorer, ev


def print_summary(result: dict, out=sys.stdout) -> None:
    for key, value in sorted(result["summary"].items()):
        shown = "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"
        print(f"{key:50s} {shown}", file=out)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        scorer_settings, eval_settings = build_settings(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with stdout_to_stderr():   # Ray, vLLM and DeepSpeed print on stdout; keep it for the result
        status, result = run(args, scorer_settings, eval_settings)
    if result is not None:
        if args.json:
            json.dump(result, sys.stdout, indent=1, default=str)
            print()
        else:
            print_summary(result)
    return status


@contextmanager
def stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run(args, scorer_settings: ScorerSettings, eval_settings: EvalSettings) -> tuple[int, dict | None]:
    import ray
    from ray import serve

    from evaluators.evaluate import evaluate
    from evaluators.service import start_scorer

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        try:
            handle = start_scorer(scorer_settings)
        except Exception as err:
            print(f"error: the {args.engine} engine failed to start for {args.model!r}: {err}", file=sys.stderr)
            return 3, None
        return 0, evaluate(handle, eval_settings, args.adapter)
    except Exception as err:
        print(f"error: evaluation failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1, None
    finally:
        serve.shutdown()
        ray.shutdown()

if __name__ == "__main__":
    sys.exit(main())
