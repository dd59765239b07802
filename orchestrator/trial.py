"""One Tune trial: train an adapter (Ray Train + DeepSpeed), score it (Serve), report its result.
Between the two it reports {"phase": "trained"} (no objectives): the searcher hands the GPUs it
trained on to the next trial while this one waits for its score.

The trial writes its record under <run>/trials/<key>.json before reporting, and a trial whose record
already says "done" (the driver died between the two) reports the saved result instead of training
again, so a resumed sweep never runs a finished trial twice.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

from orchestrator.progress import NamedTrialActor
from orchestrator.records import TrialRecord
from orchestrator.spec import SweepSpec
from orchestrator.store import BaselineUnavailable, RunStore


@dataclass(frozen=True)
class TrialContext:
    spec: SweepSpec
    run_dir: str
    model_paths: dict[str, str]   # model label -> resolved path
    app_names: dict[str, str]     # model label -> scorer app name


def train_config(spec: SweepSpec, label: str, model_path: str, method: str, lr: float, mix: float, seed: int):
    """The trial's TrainConfig: the spec's section with the model's and method's overrides, plus the
    fields the sweep sets per trial."""
    return spec.training_for(label, method).model_copy(update={
        "model": model_path, "method": method, "lr": lr, "mix": mix, "seed": seed,
        "chat": spec.model(label).chat})


def eval_settings(spec: SweepSpec):
    return spec.evaluation.eval_settings().model_copy(update={"seed": spec.seed})


def objective_values(spec: SweepSpec, scores: dict, baseline: dict,
                     baseline_rows: dict | None = None) -> tuple[dict, dict]:
    """Each objective's value and standard error (None where the summary has none). An objective
    measured against the base model is base - tuned. Where both runs scored the same items (GSM8K),
    its error is the paired one (item difficulty cancels, so it is far smaller than the two errors
    combined); otherwise the two errors combine as independent."""
    summary, values, errors = scores["summary"], {}, {}
    for o in spec.objectives:
        value, se = summary.get(o.metric), summary.get(f"{o.metric}_se")
        if o.relative_to_base and value is not None:
            paired = _paired(o.metric, baseline_rows or {}, scores.get("rows", {}))
            if paired is not None:
                value, se = paired
            else:
                value = baseline[o.metric] - value
                base_se = baseline.get(f"{o.metric}_se")
                se = None if se is None or base_se is None else (se ** 2 + base_se ** 2) ** 0.5
        values[o.name], errors[o.name] = value, se
    return values, errors


def _paired(metric: str, base_rows: dict, tuned_rows: dict) -> tuple[float, float] | None:
    from evaluators.gsm8k import ITEM_METRICS, paired_difference

    evaluation = metric.split("/")[0]
    if metric not in ITEM_METRICS or not base_rows.get(evaluation) or not tuned_rows.get(evaluation):
        return None
    return paired_difference(base_rows[evaluation], tuned_rows[evaluation], ITEM_METRICS[metric])


def run_trial(config: dict, context: TrialContext) -> None:
    from ray import serve, tune

    store = RunStore(context.run_dir)
    key = config["key"]
    previous = store.read_trial(key)
    if previous and previous.status == "done":
        tune.report(tune_metrics(previous))
        return
    spec, label = context.spec, config["model"]
    record = TrialRecord(key=key, cell=f"{label}:{config['method']}", model=label,
                         model_ref=spec.model(label).ref, method=config["method"], lr=config["lr"],
                         mix=config["mix"], optuna_number=config["optuna_number"], seed=seed_of(spec, config))
    store.write_trial(record)
    try:
        t0 = time.time()
        cfg = train_config(spec, label, context.model_paths[label], config["method"], config["lr"],
                           config["mix"], seed=seed_of(spec, config))
        trained = run_training_for(cfg, store, key, spec.standins)
        tune.report({"phase": "trained", "trial_key": key})   # its GPUs are free: the searcher's budget
        t1 = time.time()
        handle = serve.get_app_handle(context.app_names[label])
        scores = evaluate_for(handle, spec, trained.output_dir)
        t2 = time.time()
        # kept if the base model's score, which the objectives need, turns out to have failed
        record = record.model_copy(update=dict(adapter_dir=trained.output_dir, train_metrics=trained.metrics,
                                               metrics=scores["summary"], train_wall_s=t1 - t0, eval_wall_s=t2 - t1))
        let_handle_report_idle(spec, label)
        values, errors = objective_values(spec, scores, store.wait_for_baseline(label), store.baseline_rows(label))
        record = record.model_copy(update=dict(status="done", objectives=values, objective_se=errors,
                                               finished_at=time.time()))
    except Exception as err:  # keep the record: a failed trial is reported, not lost
        store.write_trial(record.model_copy(update=dict(
            # trained and scored, but not measurable against its base model yet: runs again on resume
            status="interrupted" if isinstance(err, BaselineUnavailable) else "error",
            error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(),
            train_metrics=getattr(err, "metrics", None) or record.train_metrics,   # e.g. diverged_at_step
            finished_at=time.time())))
        raise
    store.write_trial(record)
    tune.report(tune_metrics(record))


run_trial.__mixins__ = (NamedTrialActor,)   # the dashboard names the trial's actor by its key


def let_handle_report_idle(spec: SweepSpec, label: str) -> None:
    """Serve scales a scorer to zero only once every handle has reported no requests, and keeps the
    last report of a handle whose process ended (this trial's) for 10 s: the trial waits until its
    handle has reported itself idle (evaluators.service idle_report_wait_s)."""
    from evaluators.service import idle_report_wait_s

    e = spec.evaluation_for(label)
    if e.release_idle_after_s is not None:
        time.sleep(idle_report_wait_s(e.replicas, e.release_idle_after_s))


def seed_of(spec: SweepSpec, config: dict) -> int:
    """The trial's training seed: chosen with its key, so a rerun trains (and resumes) the same run."""
    return config.get("seed", spec.seed + config["optuna_number"])


def run_training_for(cfg, store: RunStore, key: str, standins=None):
    if standins:   # the scale simulation only (orchestrator.standins)
        from orchestrator.standins import run_training as stand_in

        return stand_in(cfg, str(store.adapter_dir(key)), str(store.root / "train"), key, standins, str(store.root))
    from trainers.run import run_training

    return run_training(cfg, output_dir=str(store.adapter_dir(key)), storage_path=str(store.root / "train"),
                        name=key)


def evaluate_for(handle, spec: SweepSpec, adapter_dir: str | None, progress: str | None = None) -> dict:
    if spec.standins:   # the scale simulation only (orchestrator.standins)
        from orchestrator.standins import evaluate as stand_in

        return stand_in(handle, adapter_dir)
    from evaluators.evaluate import evaluate

    return evaluate(handle, eval_settings(spec), adapter=adapter_dir, progress=progress)


def tune_metrics(record: TrialRecord) -> dict:
    """What Tune sees (its progress table and ResultGrid): objectives plus flattened metrics."""
    out = {k: v for k, v in record.objectives.items() if v is not None}
    for k, v in record.metrics.items():
        if isinstance(v, (int, float)):
            out[k.replace("/", "_")] = v
    out["trial_key"] = record.key
    out["adapter_dir"] = record.adapter_dir   # the searcher tags the Optuna trial with it
    return out
