"""Tokens/s of the Ray Train + DeepSpeed path against a plain single-process fp32 PyTorch loop.

Same model, data, batch and steps; the plain loop uses the same stream, loss, AdamW and cosine
schedule, in fp32 with the LM head over every position (the trainer before its CPU speed-ups). A
second plain loop, its steps interleaved with the first's, runs with the trainer's speed-ups (frozen weights in bf16 where the CPU has bf16
matrix units, the LM head at supervised positions only), so the ratios separate what the speed-ups
buy from what Ray Train + DeepSpeed cost. Prints the rates and their ratios (no pass/fail: timings
on a shared machine are noisy).
The Ray rate counts the training loop only (`wall_s` excludes worker start-up); end-to-end time of
the fit, start-up included, is printed too.

    DS_ACCELERATOR=cpu python benchmarks/train_throughput.py [--model DIR] [--steps 30] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


class PlainLoop:
    """A single-process training loop on the trainer's stream, loss, AdamW and cosine schedule.
    `fast`: the trainer's speed-ups (cfg.precision decides bf16); else fp32 over every position."""

    def __init__(self, cfg, steps: int, fast: bool):
        from transformers import get_cosine_schedule_with_warmup

        from trainers.data import TrainingStream
        from trainers.model import load_model, load_tokenizer, param_groups

        self.cfg, self.fast, self.tokens, self.seconds = cfg, fast, 0, 0.0
        self.tokenizer = load_tokenizer(cfg.model)
        torch.manual_seed(cfg.seed)
        self.model = load_model(cfg, cfg.model, dtype=None if fast else torch.float32).train()
        self.stream = TrainingStream(cfg, self.tokenizer, world_size=1)
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.sched = get_cosine_schedule_with_warmup(self.opt, int(round(cfg.warmup_ratio * steps)), steps)

    def step(self, step: int) -> None:
        from trainers.data import collate
        from trainers.losses import TARGET_KEYS, sparse_kl_loss, supervised_logits

        start = time.perf_counter()
        for micro in range(self.cfg.grad_accum):
            batch = collate(self.stream.batch(step, micro, 0), self.tokenizer.pad_token_id)
            if self.fast:
                logits, targets = supervised_logits(self.model, batch)
            else:
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                targets = {k: batch[k] for k in TARGET_KEYS}
            loss, _ = sparse_kl_loss(logits, targets["target_ids"], targets["target_probs"], targets["target_mask"])
            (loss / self.cfg.grad_accum).backward()
            self.tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad()
        self.seconds += time.perf_counter() - start


def plain_loops(cfg, steps: int) -> tuple[PlainLoop, PlainLoop]:
    """Both plain loops, their steps interleaved (fp32, fast, fp32, ...) so the host's load hits both alike."""
    slow, fast = PlainLoop(cfg, steps, fast=False), PlainLoop(cfg, steps, fast=True)
    for step in range(steps):
        slow.step(step)
        fast.step(step)
    return slow, fast


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model dir (default: build the tiny offline model)")
    p.add_argument("--method", default="soft")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--zero", type=int, default=0)
    p.add_argument("--full", action="store_true")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="the trainer's (TrainConfig)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of each loop (default: the workers' CPUs)")
    args = p.parse_args()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    tmp = tempfile.mkdtemp(prefix="cft-bench-")
    model = args.model
    if model is None:
        from models.tiny import build_tiny_model
        model = str(build_tiny_model(os.path.join(tmp, "tiny")))

    from trainers.config import TrainConfig
    from trainers.run import run_training

    # the Ray run's global batch is batch_size x workers; the plain loop gets the same global batch
    cfg = TrainConfig(model=model, method=args.method, lr=1e-3, families=["binomial", "gaussian"],
                      prompts_per_family=4, epochs=1000, max_steps=args.steps, batch_size=args.batch_size,
                      workers_per_trial=args.workers, zero_stage=args.zero, lora=not args.full,
                      checkpoint_every=args.steps, precision=args.precision, torch_threads=args.threads)
    plain_cfg = cfg.model_copy(update={"batch_size": args.batch_size * args.workers, "workers_per_trial": 1})
    # Ray gives each worker OMP_NUM_THREADS = its CPUs (1 here); give the plain loop as many threads in all,
    # else on a busy 2-core machine torch's default threads oversubscribe and the comparison is unfair
    threads = args.threads or args.workers * max(1, int(cfg.cpus_per_worker))
    torch.set_num_threads(threads)
    slow, fast = plain_loops(plain_cfg, args.steps)
    plain_tokens, plain_s, fast_tokens, fast_s = slow.tokens, slow.seconds, fast.tokens, fast.seconds

    import ray

    from trainers.ray_local import init_local_ray
    init_local_ray()
    start = time.perf_counter()
    result = run_training(cfg, os.path.join(tmp, "out"), os.path.join(tmp, "ray"), "bench")
    fit_s = time.perf_counter() - start
    ray.shutdown()

    m = result.metrics
    plain_rate, fast_rate, ray_rate = plain_tokens / plain_s, fast_tokens / fast_s, m["tokens"] / m["wall_s"]
    print(f"model={model} method={args.method} lora={cfg.lora} steps={args.steps} precision={args.precision} "
          f"(frozen weights in bf16: {cfg.frozen_bf16}) global_batch={args.batch_size * args.workers} "
          f"workers={args.workers} zero={args.zero}")
    print(f"plain fp32 loop ({threads} thread(s)): {plain_tokens} tokens in {plain_s:.2f} s = {plain_rate:,.0f} tokens/s")
    print(f"plain loop, trainer's speed-ups: {fast_tokens} tokens in {fast_s:.2f} s = {fast_rate:,.0f} tokens/s")
    print(f"Ray Train+DeepSpeed: {m['tokens']} tokens in {m['wall_s']:.2f} s = {ray_rate:,.0f} tokens/s "
          f"(fit incl. start-up: {fit_s:.1f} s)")
    print(f"ratio (plain with speed-ups / plain fp32): {fast_rate / plain_rate:.2f}")
    print(f"ratio (Ray+DeepSpeed / plain fp32): {ray_rate / plain_rate:.2f}")


if __name__ == "__main__":
    main()
