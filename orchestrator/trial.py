"""One Tune trial: train an adapter (Ray Train + DeepSpeed), score it (Serve), report once.

The trial writes its record under <run>/trials/<key>.json before reporting, and a trial whose record
already says "done" (the driver died between the two) reports the saved result instead of training
again, so a resumed sweep never runs a finished trial twice.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

from orchestrator.spec import SweepSpec
from orchestrator.store import RunStore


@dataclass(frozen=True)
class TrialContext:
    spec: SweepSpec
    run_dir: str
    model_paths: dict[str, str]   # model label -> resolved path
    app_names: dict[str, str]     # model label -> scorer app name
    baselines: dict[str, dict]    # model label -> baseline summary


def train_config(spec: SweepSpec, label: str, model_path: str, method: str, lr: float, mix: float, seed: int):
    from trainers.config import TrainConfig

    t = spec.training_for(label)
    chat = spec.model(label).chat
    return TrainConfig(
        model=model_path, method=method, lr=lr, mix=mix, epochs=t.epochs, max_steps=t.max_steps,
        batch_size=t.batch_size, grad_accum=t.grad_accum, warmup_ratio=t.warmup_ratio,
        weight_decay=t.weight_decay, lora=t.lora, lora_r=t.lora_r, lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout, zero_stage=t.zero_stage, num_workers=t.workers_per_trial,
        use_gpu=t.gpus_per_worker > 0, cpus_per_worker=t.cpus_per_worker, families=t.families,
        prompts_per_family=t.prompts_per_family, num_decimals=t.num_decimals, max_bins=t.max_bins,
        hard_samples_per_prompt=t.hard_samples_per_prompt, replay_pool=t.replay_pool,
        replay_jsonl=t.replay_jsonl, checkpoint_every=t.checkpoint_every, seed=seed, chat=chat)


def eval_settings(spec: SweepSpec):
    from evaluators.settings import EvalSettings

    e = spec.evaluation
    return EvalSettings(
        evals=tuple(e.evals), splits=tuple(e.splits), selection=e.selection, num_decimals=e.num_decimals,
        max_bins=e.max_bins, samples_per_prompt=e.samples_per_prompt,
        arithmetic_problems=e.arithmetic_problems, seed=spec.seed,
        families=tuple(e.families) if e.families else None)


def objective_values(spec: SweepSpec, summary: dict, baseline: dict) -> dict[str, float]:
    """Each objective's value; capability losses are measured against the base model."""
    out = {}
    for o in spec.objectives:
        value = summary.get(o.metric)
        if o.name.startswith("capability_loss") and value is not None:
            value = baseline[o.metric] - value
        out[o.name] = value
    return out


def run_trial(config: dict, context: TrialContext) -> None:
    from ray import serve, tune

    store = RunStore(context.run_dir)
    key = config["key"]
    previous = store.read_trial(key)
    if previous and previous["status"] == "done":
        tune.report(tune_metrics(previous))
        return
    spec, label = context.spec, config["model"]
    model = spec.model(label)
    record = {"key": key, "cell": f"{label}:{config['method']}", "model": label, "model_ref": model.ref,
              "method": config["method"], "lr": config["lr"], "mix": config["mix"],
              "optuna_number": config["optuna_number"], "status": "running", "started_at": time.time()}
    store.write_trial(record)
    try:
        t0 = time.time()
        cfg = train_config(spec, label, context.model_paths[label], config["method"], config["lr"],
                           config["mix"], seed=spec.seed + config["optuna_number"])
        trained = run_training_for(cfg, store, key)
        t1 = time.time()
        handle = serve.get_app_handle(context.app_names[label])
        scores = _evaluate(handle, spec, trained.output_dir)
        t2 = time.time()
        record.update(status="done", adapter_dir=trained.output_dir, train_metrics=trained.metrics,
                      metrics=scores["summary"], train_wall_s=t1 - t0, eval_wall_s=t2 - t1,
                      objectives=objective_values(spec, scores["summary"], context.baselines[label]),
                      finished_at=time.time())
    except Exception as err:  # keep the record: a failed trial is reported, not lost
        record.update(status="error", error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(), finished_at=time.time())
        store.write_trial(record)
        raise
    store.write_trial(record)
    tune.report(tune_metrics(record))


def run_training_for(cfg, store: RunStore, key: str):
    from trainers.run import run_training

    return run_training(cfg, output_dir=str(store.adapter_dir(key)), storage_path=str(store.root / "train"),
                        name=key)


def _evaluate(handle, spec: SweepSpec, adapter_dir: str) -> dict:
    from evaluators.evaluate import evaluate

    return evaluate(handle, eval_settings(spec), adapter=adapter_dir)


def tune_metrics(record: dict) -> dict:
    """What Tune sees (its progress table and ResultGrid): objectives plus flattened metrics."""
    out = {k: v for k, v in record.get("objectives", {}).items() if v is not None}
    for k, v in record.get("metrics", {}).items():
        if isinstance(v, (int, float)):
            out[k.replace("/", "_")] = v
    out["trial_key"] = record["key"]
    return out
