"""Library entry point: one training run on Ray Train V2 (works from a driver or inside a Tune trial)."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass

from trainers.config import TrainConfig
from trainers.faults import Fault
from trainers.worker import MODEL_DIR, train_loop


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
    # run_config_kwargs (e.g. callbacks=[TuneReportCallback()]) may override these defaults
    run_settings = {"name": name, "storage_path": storage_path,
                    "failure_config": FailureConfig(max_failures=failure_max),
                    "checkpoint_config": CheckpointConfig(num_to_keep=2), **(run_config_kwargs or {})}
    resources = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"config": config, "fault": asdict(fault) if fault else None},
        torch_config=TorchConfig(backend="nccl" if config.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=config.workers_per_trial, use_gpu=config.use_gpu,
                                     resources_per_worker=resources, accelerator_type=config.accelerator_type),
        run_config=RunConfig(**run_settings),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    copy_model(result.checkpoint, output_dir)
    return TrainResult(output_dir=os.path.abspath(output_dir), is_adapter=config.lora, metrics=dict(result.metrics))


def copy_model(checkpoint, output_dir: str) -> None:
    with checkpoint.as_directory() as d:
        src = os.path.join(d, MODEL_DIR)
        if not os.path.isdir(src):
            raise RuntimeError(f"the final checkpoint {checkpoint.path} holds no saved model")
        shutil.copytree(src, output_dir, dirs_exist_ok=True)
