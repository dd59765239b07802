"""Score one model (optionally with a LoRA adapter) on a local embedded Ray + Serve, or score
completions produced elsewhere (another engine, a hosted API) without loading any model.

    python -m evaluators.score --model M [--adapter DIR] [--evals fidelity,sampled,gsm8k,...]
        [--split test_unseen_params,test_ood_family] [--selection selected|full] [--engine vllm|hf] [--json]
    python -m evaluators.score --completions FILE.jsonl [--samples N] [--json]

FILE holds one prompt per line: {"family": "gaussian", "params": {"mu": 1.0, "sigma": 2.0},
"num_decimals": 2, "samples": ["0.53", ...]}; the result has one row per line, in order, and a
family-balanced summary (evaluators/completions.py).

Exit status: 0 on success, 2 for bad arguments (unknown eval, family or split, a missing adapter, an
incomplete model directory, a hub model missing offline), all before Ray starts; 3 when the engine
fails to start (the replica's own error is printed); 1 for anything else that fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import contextmanager

from pydantic import ValidationError

from cft.cli import add_config_flags, config_values, format_errors
from evaluators.settings import EvalSettings, EvaluationConfig, ScorerSettings
from models.resolve import ModelNotFound, check_model_ref, resolve_model

SHORT_FLAGS = {"splits": ["--split"], "samples_per_prompt": ["--samples"]}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m evaluators.score", description=__doc__.split("\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="base model: local path, alias or HF id")
    source.add_argument("--completions", metavar="FILE", help="score this JSONL of completions; loads no model")
    ap.add_argument("--adapter", help="LoRA adapter directory (local or shared storage)")
    ap.add_argument("--chat", default="{}", help="ChatOptions as JSON, e.g. '{\"enable_thinking\": false}'")
    ap.add_argument("--num-cpus", type=int, default=4, help="logical CPUs for the embedded Ray")
    ap.add_argument("--json", action="store_true", help="print the full result (summary and rows) as JSON")
    add_config_flags(ap, EvaluationConfig, aliases=SHORT_FLAGS)
    ap.set_defaults(evals=["fidelity"])
    return ap.parse_args(argv)


def build_settings(args) -> tuple[ScorerSettings, EvalSettings]:
    """Raises ValueError / FileNotFoundError naming what is wrong with the arguments."""
    from evaluators.engines.adapters import resolve_adapter

    if args.adapter:
        resolve_adapter(args.adapter)
    try:
        check_model_ref(args.model)
    except ModelNotFound as err:
        raise ValueError(f"--model: {err}") from None
    values = config_values(EvaluationConfig, args)
    replicas = values.get("replicas", 1)
    values.setdefault("cpus_per_replica", max(0.01, min(1.0, (args.num_cpus - 0.5) / max(replicas, 1))))
    try:
        config = EvaluationConfig.model_validate(values)
        chat = json.loads(args.chat)
        # aliases (tiny, smollm2-135m-instruct) resolve as trainers.train resolves them
        scorer = config.scorer(model=resolve_model(args.model), chat=chat)
    except ValidationError as err:
        raise ValueError(f"invalid evaluation settings\n{format_errors(err, '  ')}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"--chat: not valid JSON: {err}") from None
    return scorer, config.eval_settings()


def print_result(result: dict, as_json: bool) -> None:
    """The full result as JSON, or the summary as one `metric value` line each."""
    if as_json:
        print(json.dumps(result, indent=1, default=str))
        return
    for key, value in sorted(result["summary"].items()):
        # None: a metric the completions summary could not compute (e.g. W1 where a prompt has no valid sample)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        print(f"{key:50s} {'nan' if missing else f'{value:.6g}'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.completions:
        return score_file(args)
    try:
        scorer_settings, eval_settings = build_settings(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with stdout_to_stderr():   # Ray, vLLM and DeepSpeed print on stdout; keep it for the result
        status, result = run(args, scorer_settings, eval_settings)
    if result is not None:
        print_result(result, args.json)
    return status


def score_file(args) -> int:
    from evaluators.completions import CompletionsFormatError, score_completions_file

    try:
        result = score_completions_file(args.completions, getattr(args, "samples_per_prompt", None))
    except (CompletionsFormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_result(result, args.json)
    return 0


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
    # the loopback-only switch trainers/ray_local.py explains (set before Ray computes its node IP)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import serve

    from evaluators.evaluate import evaluate
    from evaluators.service import start_scorer

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        try:
            handle = start_scorer(scorer_settings)
        except Exception as err:
            cause = replica_error(scorer_settings.app_name)
            print(f"error: the {scorer_settings.engine} engine failed to start for {args.model!r}: "
                  f"{cause or err}", file=sys.stderr)
            return 3, None
        return 0, evaluate(handle, eval_settings, args.adapter, progress="scoring")
    except Exception as err:
        print(f"error: evaluation failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1, None
    finally:
        serve.shutdown()
        ray.shutdown()


def replica_error(app_name: str) -> str | None:
    """The exception a failed scorer replica raised, as Serve recorded it (else it stays in Ray's logs
    and the user sees only "Failed to update the deployments")."""
    from ray import serve

    try:
        app = serve.status().applications.get(app_name)
    except Exception:
        return None
    if app is None:
        return None
    messages = [d.message for d in app.deployments.values() if d.message] or [app.message]
    lines = [line.rstrip() for m in messages if m for line in m.strip().splitlines() if line.strip()]
    if not lines:
        return None
    raised = [line for line in lines if not line.startswith((" ", "\t")) and ("Error" in line or "Exception" in line)]
    return raised[-1].strip() if raised else lines[-1].strip()


if __name__ == "__main__":
    sys.exit(main())
