"""CLI for one run: `python -m trainers.train --model M --method soft|hard --lr X --mix R --out DIR`.

Starts an embedded local Ray (or joins --address), trains, and prints the final metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from trainers.config import TrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainers.train", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="HF id, alias or local path")
    p.add_argument("--method", required=True, help="soft | hard")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--mix", type=float, default=0.0, help="replay fraction in [0, 1)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--zero", type=int, default=0, help="DeepSpeed ZeRO stage 0-3")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="lora", action="store_true", default=True, help="train a LoRA adapter (default)")
    mode.add_argument("--full", dest="lora", action="store_false", help="full fine-tuning")
    p.add_argument("--out", required=True, help="directory for the adapter or full weights")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--families", nargs="+", default=None)
    p.add_argument("--prompts-per-family", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu", action="store_true", help="one GPU per worker, bf16")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--address", default=None, help="Ray address; default: start an embedded local Ray")
    p.add_argument("--storage", default=None, help="Ray Train storage path (default: <out>/../ray_runs)")
    p.add_argument("--name", default=None, help="run name (default: the --out directory's name)")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        model=a.model, method=a.method, lr=a.lr, mix=a.mix, epochs=a.epochs, max_steps=a.max_steps,
        batch_size=a.batch_size, grad_accum=a.grad_accum, lora=a.lora, zero_stage=a.zero,
        num_workers=a.workers, use_gpu=a.gpu, cpus_per_worker=a.cpus_per_worker, families=a.families,
        prompts_per_family=a.prompts_per_family, checkpoint_every=a.checkpoint_every, seed=a.seed)


def init_ray(address: str | None) -> None:
    if address:
        import ray

        ray.init(address=address)
    else:
        from trainers.ray_local import init_local_ray

        init_local_ray()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    try:
        cfg.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    if not cfg.use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    out = os.path.abspath(args.out)
    storage = args.storage or os.path.join(os.path.dirname(out), "ray_runs")
    init_ray(args.address)
    from trainers.run import run_training

    result = run_training(cfg, out, storage, args.name or os.path.basename(out))
    print(json.dumps({"output_dir": result.output_dir, "is_adapter": result.is_adapter,
                      "metrics": result.metrics}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
