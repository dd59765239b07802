"""CLI for one run: `python -m trainers.train --model M --method soft|hard --lr X --mix R --out DIR`.

Every TrainConfig field is a flag (`--lora-r 8`, `--families binomial,poisson`, ...); the short forms
`--workers`, `--zero`, `--full` and `--gpu` stay. Starts an embedded local Ray (or joins --address),
trains, and prints the final metrics as JSON.

Exit status: 0 on success; 2 for bad arguments, an incomplete model directory, a hub model missing
offline or an unreachable --address (all before Ray starts); 1 when training fails, e.g. "diverged at
step N" when the loss becomes NaN or inf.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pydantic import ValidationError

from cft.cli import add_config_flags, config_values, format_errors
from trainers.config import TrainConfig

SHORT_FLAGS = {"workers_per_trial": ["--workers"], "zero_stage": ["--zero"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainers.train", description=__doc__.splitlines()[0])
    add_config_flags(p, TrainConfig, aliases=SHORT_FLAGS)
    p.add_argument("--full", dest="lora", action="store_false", default=argparse.SUPPRESS,
                   help="full fine-tuning (same as --no-lora)")
    p.add_argument("--gpu", dest="gpus_per_worker", action="store_const", const=1, default=argparse.SUPPRESS,
                   help="one GPU per worker, bf16 (same as --gpus-per-worker 1)")
    p.add_argument("--out", required=True, help="directory for the adapter or full weights")
    p.add_argument("--address", default=None, help="Ray address; default: start an embedded local Ray")
    p.add_argument("--storage", default=None, help="Ray Train storage path (default: <out>/../ray_runs)")
    p.add_argument("--name", default=None, help="run name (default: the --out directory's name)")
    args = p.parse_args(argv)
    if not getattr(args, "model", ""):
        p.error("the following arguments are required: --model")
    return args


def init_ray(address: str | None) -> None:
    if address:
        import ray

        ray.init(address=address)
    else:
        from trainers.ray_local import init_local_ray

        init_local_ray()


def check_before_ray(cfg: TrainConfig, address: str | None) -> str | None:
    """What would fail only inside Ray, checked first: the model loads, the address answers."""
    from models.resolve import ModelNotFound, check_model_ref
    from trainers.ray_local import check_ray_address

    try:
        check_model_ref(cfg.model)
    except ModelNotFound as err:
        return f"model: {err}"
    try:
        check_ray_address(address)
    except (ValueError, ConnectionError) as err:
        return f"--address: {err}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = TrainConfig.model_validate(config_values(TrainConfig, args))
    except ValidationError as err:
        print(f"error: invalid training settings\n{format_errors(err, '  ')}", file=sys.stderr)
        return 2
    problem = check_before_ray(cfg, args.address)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    if not cfg.use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    out = os.path.abspath(args.out)
    storage = args.storage or os.path.join(os.path.dirname(out), "ray_runs")
    init_ray(args.address)
    from trainers.run import TrainingDiverged, run_training

    try:
        result = run_training(cfg, out, storage, args.name or os.path.basename(out))
    except TrainingDiverged as err:
        print(f"error: training {err}", file=sys.stderr)
        return 1
    print(json.dumps({"output_dir": result.output_dir, "is_adapter": result.is_adapter,
                      "metrics": result.metrics}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
