"""Library entry point: one training run on Ray Train V2 (works from a driver or inside a Tune trial)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from trainers.config import TrainConfig
from trainers.faults import Fault
from trainers.worker import MODEL_DIR, train_loop


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; `metrics` holds the step and the last finite loss."""

    def __init__(self, metrics: dict):
        self.metrics = {k: metrics.get(k) for k in ("diverged_at_step", "diverged_loss", "last_finite_loss")}
        last = metrics.get("last_finite_loss")
        super().__init__(f"diverged at step {metrics.get('diverged_at_step')}: the loss became "
                         f"{metrics.get('diverged_loss')} (last finite loss: "
                         f"{'none' if last is None else f'{last:.6g}'}); lower the learning rate")

    def __reduce__(self):   # pickled across Ray with its metrics, not its message
        return TrainingDiverged, (self.metrics,)


DIVERGENCE_FILE = "diverged.json"   # written by the workers when the loss became NaN or inf


@dataclass
class TrainResult:
    output_dir: str        # adapter dir (PEFT format) or full-weights dir (HF format), incl. tokenizer
    is_adapter: bool
    metrics: dict          # final training metrics (loss, steps, tokens, replay_fraction, wall_s, ...)


def run_training(config: TrainConfig, output_dir: str, storage_path: str, name: str,
                 failure_max: int = 2, run_config_kwargs: dict | None = None) -> TrainResult:
    """Train on a running Ray cluster (never calls ray.init); the result is copied to output_dir.

    A run rebuilt with the same (storage_path, name) resumes from its last checkpoint.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not config.model:
        raise ValueError("TrainConfig.model: no model to train")
    storage_path = os.path.abspath(os.path.expanduser(storage_path))
    fault = Fault.from_env(os.path.join(storage_path, name, ".fault_injected"))
    divergence_file = os.path.join(storage_path, name, DIVERGENCE_FILE)
    if os.path.exists(divergence_file):   # from an earlier attempt of this run
        os.remove(divergence_file)
    # the dashboard's Train view lists runs only when the process that builds the trainer says so
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")
    # run_config_kwargs may override these defaults
    run_settings = {"name": name, "storage_path": storage_path,
                    "failure_config": FailureConfig(max_failures=failure_max),
                    "checkpoint_config": CheckpointConfig(num_to_keep=2),
                    "callbacks": progress_callbacks(), **(run_config_kwargs or {})}
    resources = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"config": config, "fault": fault,
                           "divergence_file": divergence_file},
        torch_config=TorchConfig(backend="nccl" if config.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=config.workers_per_trial, use_gpu=config.use_gpu,
                                     resources_per_worker=resources, accelerator_type=config.accelerator_type),
        run_config=RunConfig(**run_settings),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    if os.path.exists(divergence_file):
        with open(divergence_file) as f:
            raise TrainingDiverged(json.load(f))
    copy_model(result.checkpoint, output_dir)
    return TrainResult(output_dir=os.path.abspath(output_dir), is_adapter=config.lora, metrics=dict(result.metrics))


def progress_callbacks() -> list:
    """Inside a Tune trial, forward every report of the workers (step, loss, tokens/s) to Tune, so
    its progress table and the trial's results show training as it runs; elsewhere none."""
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    if not _in_tune_session():
        return []
    from ray.tune.integration.ray_train import TuneReportCallback

    return [TuneReportCallback()]


def copy_model(checkpoint, output_dir: str) -> None:
    with checkpoint.as_directory() as d:
        src = os.path.join(d, MODEL_DIR)
        if not os.path.isdir(src):
            raise RuntimeError(f"the final checkpoint {checkpoint.path} holds no saved model")
        shutil.copytree(src, output_dir, dirs_exist_ok=True)
