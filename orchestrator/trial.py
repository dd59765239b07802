"""One Tune trial: train an adapter, score it, report its result, all through the sweep's
TrialBackend (orchestrator.backend). Between the two it reports a TrainedReport (no objectives): the
searcher hands the GPUs it trained on to the next trial while this one waits for its score.

The trial writes its record under <run>/trials/<key>.json before reporting, and a trial whose record
already says "done" (the driver died between the two) reports the saved result instead of training
again, so a resumed sweep never runs a finished trial twice.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from orchestrator.backend import RayBackend, TrialBackend
from orchestrator.messages import Evaluation, TrainedReport, TrialConfig
from orchestrator.objectives import objective_values
from orchestrator.parts import TrialSettings
from orchestrator.progress import NamedTrialActor
from orchestrator.records import TrialRecord
from orchestrator.store import BaselineUnavailable, RunStore


@dataclass(frozen=True)
class TrialContext:
    settings: TrialSettings
    run_dir: str
    model_paths: dict[str, str]   # model label -> resolved path
    app_names: dict[str, str]     # model label -> scorer app name
    backend: TrialBackend = RayBackend()
    model_revisions: dict[str, str] = field(default_factory=dict)   # model label -> commit sha or content hash
    code_commit: str | None = None   # the project's git commit the sweep runs


def train_config(settings: TrialSettings, trial: TrialConfig, model_path: str):
    """The trial's TrainConfig: its cell's (the spec's section with the model's and method's overrides),
    plus the fields the sweep sets per trial."""
    return settings.training[trial.cell].model_copy(update={
        "model": model_path, "lr": trial.lr, "mix": trial.mix, "seed": trial.seed})


def run_trial(config: dict, context: TrialContext) -> None:
    from ray import tune

    store, trial = RunStore(context.run_dir), TrialConfig.from_tune(config)
    previous = store.read_trial(trial.key)
    if previous and previous.status == "done":
        tune.report(tune_metrics(previous))
        return
    record = TrialRecord(key=trial.key, cell=trial.cell, model=trial.model,
                         model_ref=context.settings.model_refs[trial.model], method=trial.method, lr=trial.lr,
                         mix=trial.mix, optuna_number=trial.optuna_number, seed=trial.seed,
                         model_revision=context.model_revisions.get(trial.model), code_commit=context.code_commit)
    store.write_trial(record)
    try:
        record = train_and_score(context, store, trial, record)
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


def train_and_score(context: TrialContext, store: RunStore, trial: TrialConfig, record: TrialRecord) -> TrialRecord:
    """Train, report the GPUs free, score, and measure against the base model; the finished record."""
    from ray import serve, tune

    settings, backend = context.settings, context.backend
    t0 = time.time()
    cfg = train_config(settings, trial, context.model_paths[trial.model])
    trained = backend.train(cfg, str(store.adapter_dir(trial.key)), str(store.root / "train"), trial.key)
    tune.report(TrainedReport(trial_key=trial.key).to_tune())   # its GPUs are free: the searcher's budget
    t1 = time.time()
    handle = serve.get_app_handle(context.app_names[trial.model])
    scores: Evaluation = backend.evaluate(handle, settings.evaluation, trained.output_dir)
    t2 = time.time()
    store.save_trial_rows(trial.key, scores.rows)   # per-prompt rows, as the base model's (results.trial_rows)
    # kept if the base model's score, which the objectives need, turns out to have failed
    record = record.model_copy(update=dict(adapter_dir=trained.output_dir, train_metrics=trained.metrics,
                                           metrics=scores.summary, train_wall_s=t1 - t0, eval_wall_s=t2 - t1))
    let_handle_report_idle(settings.scorers[trial.model])
    values, errors = objective_values(settings.objectives, scores, store.wait_for_baseline(trial.model),
                                      store.baseline_rows(trial.model))
    return record.model_copy(update=dict(status="done", objectives=values, objective_se=errors,
                                         finished_at=time.time()))


def let_handle_report_idle(scorer) -> None:
    """Serve scales a scorer to zero only once every handle has reported no requests, and keeps the
    last report of a handle whose process ended (this trial's) for 10 s: the trial waits until its
    handle has reported itself idle (evaluators.service idle_report_wait_s)."""
    from evaluators.service import idle_report_wait_s

    if scorer.release_idle_after_s is not None:
        time.sleep(idle_report_wait_s(scorer.replicas, scorer.release_idle_after_s))


def tune_metrics(record: TrialRecord) -> dict:
    """What Tune sees (its progress table and ResultGrid): objectives plus flattened metrics."""
    out = {k: v for k, v in record.objectives.items() if v is not None}
    for k, v in record.metrics.items():
        if isinstance(v, (int, float)):
            out[k.replace("/", "_")] = v
    out["trial_key"] = record.key
    out["adapter_dir"] = record.adapter_dir   # the searcher tags the Optuna trial with it
    return out
