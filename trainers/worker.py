"""The per-worker training loop that Ray Train runs: DeepSpeed engine, mixed stream, checkpoints."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from models.resolve import resolve_model
from trainers.config import TrainConfig
from trainers.data import TrainingStream, collate
from trainers.deepspeed_config import build_deepspeed_config
from trainers.faults import Fault
from trainers.losses import reduction_for, sparse_kl_loss, supervised_logits
from trainers.model import load_model, load_tokenizer, param_groups

DS_TAG = "deepspeed"
STATE_FILE = "trainer_state.json"
MODEL_DIR = "model"


@dataclass
class TrainState:
    """Counters that survive a restart (saved in every checkpoint); all are global across workers."""
    step: int = 0
    tokens: int = 0
    calib_items: int = 0
    replay_items: int = 0
    wall_s: float = 0.0
    first_loss: float | None = None
    resumed_from_step: int = -1
    restarts: int = 0


def train_loop(loop_config: dict) -> None:
    t0 = time.perf_counter()
    cfg: TrainConfig = loop_config["config"]
    if not cfg.use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(cfg.seed)
    phases, lap = {}, time.perf_counter()   # where a slow start goes (a JIT op build shows in "deepspeed")
    path = resolve_model(cfg.model)
    tokenizer = load_tokenizer(path)
    model = load_model(cfg, path)
    max_len = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    stream = TrainingStream(cfg, tokenizer, world, max_len=max_len)
    phases["model"], lap = time.perf_counter() - lap, time.perf_counter()
    engine = make_engine(cfg, model, world, stream.plan.total_steps)
    phases["deepspeed"], lap = time.perf_counter() - lap, time.perf_counter()
    state = restore(engine, ray.train.get_checkpoint(), cfg)
    phases["restore"] = time.perf_counter() - lap
    fault: Fault | None = loop_config.get("fault")
    print(f"[cft] rank {rank} ready in {time.perf_counter() - t0:.1f} s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in phases.items())}): {stream.plan.total_steps} steps of "
          f"{stream.plan.global_batch} examples, starting at step {state.step}", flush=True)

    window = torch.zeros(5, dtype=torch.float64)  # loss sum, micro-batches, tokens, calib, replay
    started = time.perf_counter()
    last_finite = None
    while state.step < stream.plan.total_steps:
        step_started = time.perf_counter()
        counts = train_step(engine, stream, state.step, rank, tokenizer.pad_token_id, fault)
        step_loss = global_step_loss(counts)
        if not math.isfinite(step_loss):   # every rank sees the same value, so all stop together
            if rank == 0:
                report_divergence(loop_config.get("divergence_file"), state.step + 1, step_loss, last_finite)
            return
        last_finite = step_loss
        window += counts
        state.step += 1
        if fault:
            fault.maybe_fire(state.step, rank)
        if state.step % cfg.checkpoint_every == 0 or state.step == stream.plan.total_steps:
            state.wall_s += time.perf_counter() - started
            metrics = update_metrics(state, window, stream)
            window.zero_()
            final = state.step == stream.plan.total_steps
            if final:
                metrics.update(probe_metrics(engine, stream, tokenizer.pad_token_id))
            save_and_report(engine, state, metrics, tokenizer, cfg, rank, final)
            started = time.perf_counter()
        else:
            report_step(state.step, stream.plan.total_steps, step_loss, counts, time.perf_counter() - step_started,
                        engine)


def make_engine(cfg: TrainConfig, model, world: int, total_steps: int):
    import deepspeed
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    warmup = int(round(cfg.warmup_ratio * total_steps))
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=build_deepspeed_config(cfg, world),
        lr_scheduler=lambda opt: get_cosine_schedule_with_warmup(opt, warmup, total_steps))
    return engine


def train_step(engine, stream: TrainingStream, step: int, rank: int, pad_id: int,
               fault: Fault | None = None) -> torch.Tensor:
    """One optimizer step (grad_accum micro-batches); returns this worker's counters."""
    engine.train()
    counts = torch.zeros(5, dtype=torch.float64)
    for micro in range(stream.cfg.grad_accum):
        examples = stream.batch(step, micro, rank)
        batch = {k: v.to(engine.device) for k, v in collate(examples, pad_id).items()}
        logits, targets = supervised_logits(engine, batch)
        loss, _ = sparse_kl_loss(logits, targets["target_ids"], targets["target_probs"], targets["target_mask"],
                                 reduction_for(stream.cfg.method))
        if fault and fault.poisons(step + 1, rank):
            loss = loss * float("nan")
        engine.backward(loss)
        engine.step()
        replay = sum(e.kind == "replay" for e in examples)
        counts += torch.tensor([loss.item(), 1, batch["attention_mask"].sum().item(),
                                len(examples) - replay, replay], dtype=torch.float64)
    return counts


def summed_over_workers(counts: torch.Tensor) -> torch.Tensor:
    """A copy of this worker's counters summed over all workers (one all-reduce; a single process
    without a process group keeps its own)."""
    import torch.distributed as dist

    total = counts.clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
    return total


def global_step_loss(counts: torch.Tensor) -> float:
    """The step's mean loss over all workers (one small all-reduce per step): NaN or inf on every rank
    as soon as any rank's loss is not finite."""
    total = summed_over_workers(counts[:2])
    return float(total[0] / max(float(total[1]), 1.0))


def report_step(step: int, total_steps: int, loss: float, counts: torch.Tensor, seconds: float,
                engine=None) -> None:
    """A report without a checkpoint between checkpoints: the step, its loss, throughput (all
    workers' tokens) and the learning rate the scheduler set after it, which a Tune trial shows while it trains
    (trainers.run.progress_callbacks) and the sweep's trackers log (orchestrator.tracking)."""
    import ray.train

    tokens = float(summed_over_workers(counts[2:3])[0])
    metrics = {"step": step, "total_steps": total_steps, "loss": loss, "tokens_per_s": tokens / max(seconds, 1e-9)}
    lrs = engine.get_lr() if engine is not None else None
    if lrs:
        metrics["lr"] = float(lrs[0])
    ray.train.report(metrics)


def report_divergence(path: str | None, step: int, loss: float, last_finite: float | None) -> None:
    """A diverged run ends without a checkpoint (its weights are poisoned). Rank 0 writes the step and
    the last finite loss to `path` (beside the run's checkpoints), which trainers.run turns into
    TrainingDiverged; a raised error would instead be retried, and diverge again, max_failures times."""
    print(f"[cft] diverged at step {step}: loss {loss} (last finite loss {last_finite})", flush=True)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"diverged_at_step": step, "diverged_loss": str(loss), "last_finite_loss": last_finite}, f)


def update_metrics(state: TrainState, window: torch.Tensor, stream: TrainingStream) -> dict:
    """All-reduce this report window's counters, fold them into the state, return the metrics."""
    loss_sum, micro, tokens, calib, replay = summed_over_workers(window).tolist()
    loss = loss_sum / max(micro, 1)
    state.tokens += int(tokens)
    state.calib_items += int(calib)
    state.replay_items += int(replay)
    if state.first_loss is None:
        state.first_loss = loss
    seen = state.calib_items + state.replay_items
    return {
        "step": state.step, "total_steps": stream.plan.total_steps, "loss": loss,
        "first_loss": state.first_loss, "epoch": state.calib_items / max(stream.plan.items_per_epoch, 1),
        "tokens": state.tokens, "examples": seen, "replay_fraction": state.replay_items / max(seen, 1),
        "wall_s": state.wall_s, "tokens_per_s": state.tokens / max(state.wall_s, 1e-9),
        "resumed_from_step": state.resumed_from_step, "restarts": state.restarts,
    }


@torch.no_grad()
def probe_metrics(engine, stream: TrainingStream, pad_id: int) -> dict:
    """Log-probs the trained model gives a fixed example (every rank runs it: ZeRO-3 gathers weights)."""
    engine.eval()
    example = stream.probe()
    batch = {k: v.to(engine.device) for k, v in collate([example], pad_id).items()}
    logits = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[0].float()
    positions = batch["target_mask"][0].nonzero().squeeze(-1)
    logp = torch.log_softmax(logits[positions], -1)
    targets = batch["target_ids"][0, positions, 0]
    return {"probe_logprobs": logp.gather(-1, targets[:, None]).squeeze(-1).tolist()}


def save_and_report(engine, state: TrainState, metrics: dict, tokenizer, cfg: TrainConfig, rank: int,
                    final: bool) -> None:
    """Every rank writes its DeepSpeed shards; Ray merges the workers' directories into one checkpoint."""
    import ray.train

    with tempfile.TemporaryDirectory(prefix="cft-ckpt-") as tmp:
        engine.save_checkpoint(tmp, tag=DS_TAG, exclude_frozen_parameters=cfg.lora)
        if final:
            save_model(engine, tokenizer, os.path.join(tmp, MODEL_DIR), cfg, rank)
        if rank == 0:
            with open(os.path.join(tmp, STATE_FILE), "w") as f:
                json.dump(asdict(state), f)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def save_model(engine, tokenizer, out_dir: str, cfg: TrainConfig, rank: int) -> None:
    """The adapter (PEFT format) or full weights (HF format), plus the tokenizer, written by rank 0."""
    state_dict = None
    if cfg.zero_stage == 3:  # collective: gathers the ZeRO-3 shards onto rank 0
        state_dict = engine._zero3_consolidated_16bit_state_dict()
    if rank != 0:
        return
    engine.module.save_pretrained(out_dir, state_dict=state_dict)
    tokenizer.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "train_config.json"), "w") as f:   # what this model was trained with
        f.write(cfg.model_dump_json(indent=1))


def restore(engine, checkpoint, cfg: TrainConfig) -> TrainState:
    if checkpoint is None:
        return TrainState()
    with checkpoint.as_directory() as d:
        engine.load_checkpoint(d, tag=DS_TAG, load_module_strict=not cfg.lora)
        with open(os.path.join(d, STATE_FILE)) as f:
            state = TrainState(**json.load(f))
    state.resumed_from_step = state.step
    state.restarts += 1
    return state
