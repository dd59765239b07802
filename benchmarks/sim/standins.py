"""Stand-in train and score steps for the scale simulation (benchmarks/cluster_sim.py), which runs the
sweep with them through its TrialBackend (benchmarks.sim.backend); their cost model is the simulation
spec's `standins:` section (benchmarks.sim.spec).

They ask Ray for exactly what the real steps ask for, and hold it for the time a cost model gives,
so the real sweep driver, searcher, records, resume logic, Tune, Serve and the autoscaler run on a
fake cluster as they would on a real one:
- training holds a placement group of the trial's Ray Train workers (workers_per_trial x {CPU, GPU,
  accelerator_type}, PACK, as Ray Train asks), first for a start-up (the workers' and DeepSpeed's,
  and the weights read at load_gb_per_s: GPUs held, not working), then for the planner's training
  time (orchestrator.scheduling.cost training_gpu_hours), saving its progress every `checkpoint_every` steps
  under the trial's Train directory. A lost node (the group's bundles move) costs the work since the
  last checkpoint and a new start-up, and counts as a worker-group failure; like Ray Train's
  FailureConfig it retries up to `failure_max` times once the group is placed again, and a trial
  rerun under its key resumes from the saved progress.
- a scorer app is a Serve deployment with the real replicas' options (evaluators.service
  deployment_options: resources, accelerator type, scale-to-zero); a replica "loads its model" for
  engine start-up + weights / load bandwidth and scores one request at a time for the evaluation's time.
Every interval in which a GPU does (stand-in) work is appended to <run>/standins/timeline.jsonl, which
the simulation reads to measure GPU use. Objective values are a smooth made-up function of lr and mix,
so the search has something to optimise.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PROGRESS_FILE = "standin_progress.json"
POLL_S = 1.0


class StandinConfig(BaseModel):
    """The cost model of the simulation, in real (cluster) units, and its time compression."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seconds_per_hour: float = Field(60.0, gt=0, le=3600, description="wall-clock seconds one cluster hour lasts here")
    eval_gpu_hours_per_b_params: float = Field(0.01, ge=0, description="scoring one trial, per billion parameters")
    engine_start_s: float = Field(60.0, ge=0, description="a scorer replica's start-up besides reading weights")
    train_start_s: float = Field(60.0, ge=0, description="a trial's worker group start-up besides reading weights")
    load_gb_per_s: float = Field(1.0, gt=0, description="weights read from the shared file system")

    def start_up_seconds(self, start_s: float, params_b: float) -> float:
        """Simulated seconds of a start-up (`start_s`) and a bf16 model's weights read: GPUs held, not working."""
        return self.sim_seconds(start_s + 2 * params_b / self.load_gb_per_s)

    def sim_seconds(self, real_seconds: float) -> float:
        return real_seconds * self.seconds_per_hour / 3600


@dataclass
class StandinResult:   # what trainers.run.TrainResult carries to the trial
    output_dir: str
    is_adapter: bool
    metrics: dict


def log_event(run_dir: str | Path, **event) -> None:
    """One JSON line, appended with a single write (O_APPEND: lines from many processes do not mix)."""
    path = Path(run_dir) / "standins" / "timeline.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- training

def training_seconds(cfg, costs: StandinConfig) -> tuple[float, int]:
    """The simulated wall seconds of one training run and its optimizer steps."""
    from orchestrator.gpu_catalog import model_shape
    from orchestrator.scheduling.cost import training_gpu_hours
    from trainers.data import calibration_prompts, plan_steps

    shape = model_shape(cfg.model)
    if shape is None or not cfg.accelerator_type:
        raise ValueError(f"stand-in training needs a model of known size and an accelerator_type ({cfg.model})")
    steps = plan_steps(cfg, len(calibration_prompts(cfg)), cfg.workers_per_trial).total_steps
    hours = training_gpu_hours(cfg, shape, cfg.accelerator_type) / cfg.workers_per_trial
    return hours * costs.seconds_per_hour, steps


def start_up_seconds(cfg, costs: StandinConfig) -> float:
    """The simulated seconds a placed worker group takes before its first step: the workers' start and
    DeepSpeed's set-up, and the weights read from the shared file system. Its GPUs are held, not
    working."""
    from orchestrator.gpu_catalog import model_shape

    return costs.start_up_seconds(costs.train_start_s, model_shape(cfg.model).params_b)


def train_bundles(cfg) -> list[dict]:
    """What Ray Train asks for per worker (trainers.run: ScalingConfig with accelerator_type)."""
    bundle = {"CPU": cfg.cpus_per_worker, "GPU": float(cfg.gpus_per_worker)}
    if cfg.accelerator_type:
        bundle[f"accelerator_type:{cfg.accelerator_type}"] = 0.001
    return [bundle] * cfg.workers_per_trial


def run_training(cfg, output_dir: str, storage_path: str, name: str, costs: StandinConfig, run_dir: str,
                 failure_max: int = 2) -> StandinResult:
    """Hold the trial's worker group for its training time; see the module docstring."""
    from ray.util.placement_group import placement_group, remove_placement_group

    total_s, steps = training_seconds(cfg, costs)
    checkpoint_s = total_s * min(1.0, cfg.checkpoint_every / max(steps, 1))
    progress = Path(storage_path) / name / PROGRESS_FILE
    done_s = json.loads(progress.read_text())["done_s"] if progress.exists() else 0.0
    resumed_from = done_s
    gpus = cfg.workers_per_trial * cfg.gpus_per_worker
    log_event(run_dir, kind="train_run", key=name, start=time.time(), resumed_from_s=done_s)
    pg = placement_group(train_bundles(cfg), strategy="PACK")
    failures, started = 0, False
    try:
        while done_s < total_s:
            _wait_placed(pg)
            kind, seconds = ("train", min(checkpoint_s, total_s - done_s)) if started else \
                ("train_start", start_up_seconds(cfg, costs))
            start, nodes = time.time(), _bundle_nodes(pg)
            healthy = _hold(pg, seconds)
            log_event(run_dir, kind=kind, key=name, start=start, end=time.time(), gpus=gpus, nodes=nodes,
                      lost=not healthy)
            started = healthy   # a group placed again starts its workers again
            if not healthy:
                failures += 1
                if failures > failure_max:
                    raise RuntimeError(f"stand-in training of {name}: its worker group lost a node "
                                       f"{failures} times (failure_max {failure_max})")
            elif kind == "train":
                done_s = min(total_s, done_s + checkpoint_s)
                progress.parent.mkdir(parents=True, exist_ok=True)
                progress.write_text(json.dumps({"done_s": done_s}))
    finally:
        remove_placement_group(pg)
    return StandinResult(output_dir=_write_adapter(cfg, output_dir), is_adapter=True, metrics={
        "step": steps, "total_steps": steps, "restarts": failures, "resumed_from_s": resumed_from,
        "standin_train_s": total_s})


def _wait_placed(pg) -> None:
    """Until the group is placed (again, after a lost node). The GCS answers as soon as it is, where
    polling lost up to POLL_S a trial, a simulated minute at 60 s an hour."""
    from ray.util.placement_group import placement_group_table

    while not (pg.wait(timeout_seconds=60) and placement_group_table(pg)["state"] == "CREATED"):
        time.sleep(0.1)


def _bundle_nodes(pg) -> list[str]:
    from ray.util.placement_group import placement_group_table

    return sorted(set(placement_group_table(pg)["bundles_to_node_id"].values()))


def _hold(pg, seconds: float) -> bool:
    """Sleep `seconds` while the group stays where it was placed; False as soon as a node is lost."""
    from ray.util.placement_group import placement_group_table

    placed, end = _bundle_nodes(pg), time.time() + seconds
    while time.time() < end:
        time.sleep(min(POLL_S, max(0.0, end - time.time())))
        table = placement_group_table(pg)
        if table["state"] != "CREATED" or sorted(set(table["bundles_to_node_id"].values())) != placed:
            return False
    return True


def _write_adapter(cfg, output_dir: str) -> str:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(cfg.model_dump_json(indent=1))
    return str(out.absolute())


# ---------------------------------------------------------------------------------------- scoring

class StandinScorer:
    """A scorer replica: 'loads' its model, then answers score requests one at a time."""

    def __init__(self, model: str, gpus: float, costs: StandinConfig, run_dir: str):
        from orchestrator.gpu_catalog import model_shape

        self.model, self.gpus, self.costs, self.run_dir = model, gpus, costs, run_dir
        self.id, self.up = uuid.uuid4().hex[:8], time.time()
        self.params_b = model_shape(model).params_b
        time.sleep(costs.start_up_seconds(costs.engine_start_s, self.params_b))
        import ray

        log_event(run_dir, kind="scorer_up", replica=self.id, model=model, gpus=gpus, start=self.up,
                  ready=time.time(), node=ray.get_runtime_context().get_node_id())
        self.lock = asyncio.Lock()   # one engine call at a time, as evaluators.service

    async def score(self, adapter: str | None) -> dict:
        seconds = self.costs.eval_gpu_hours_per_b_params * self.params_b / max(self.gpus, 1.0) * \
            self.costs.seconds_per_hour
        async with self.lock:
            start = time.time()
            await asyncio.sleep(seconds)
            log_event(self.run_dir, kind="score", replica=self.id, model=self.model, start=start, end=time.time(),
                      gpus=self.gpus)
        return made_up_summary(adapter)

    def __del__(self):   # Serve calls it when it stops a replica (scale-down, app deleted)
        log_event(self.run_dir, kind="scorer_down", replica=self.id, gpus=self.gpus, end=time.time())


def start_scorer(settings, costs: StandinConfig, run_dir: str):
    """The stand-in scorer app, deployed with the real app's options (evaluators.service)."""
    from ray import serve

    from evaluators.service import deployment_options

    app = serve.deployment(StandinScorer, name="Scorer").options(**deployment_options(settings)).bind(
        settings.model, settings.replica_gpus, costs, run_dir)
    return serve.run(app, name=settings.app_name, route_prefix=settings.route_prefix)


def evaluate(handle, adapter: str | None) -> dict:
    """What evaluators.evaluate.evaluate returns, as far as the sweep reads it; sent again if its
    replica is lost, as the real client does."""
    from evaluators.client import result_resent_if_lost

    return {"summary": result_resent_if_lost(lambda: handle.score.remote(adapter)), "rows": {}}


def made_up_summary(adapter: str | None) -> dict:
    """Objective metrics with a trade-off: calibration improves with lr near 3e-4 and falls with mix;
    capability (GSM8K log-prob) is lost at high lr and kept by mix. The base model: no adapter."""
    if adapter is None:
        return {"sampled/calibration_error": 1.0, "sampled/calibration_error_se": 0.02,
                "gsm8k/gold_logprob": -1.0, "gsm8k/gold_logprob_se": 0.01}
    cfg = json.loads((Path(adapter) / "train_config.json").read_text())
    distance = (math.log10(cfg["lr"]) - math.log10(3e-4)) ** 2
    return {"sampled/calibration_error": 0.2 + 0.3 * distance + 0.4 * cfg["mix"], "sampled/calibration_error_se": 0.02,
            "gsm8k/gold_logprob": -1.0 - 200 * cfg["lr"] * (1 - cfg["mix"]), "gsm8k/gold_logprob_se": 0.01}
