"""The Ray Tune experiment of a sweep: one run over all cells, FIFO (no early stopping, which would
feed truncated scores into the fronts), each trial reporting once."""

from __future__ import annotations

import time

from orchestrator.cluster import TRIAL_DRIVER_CPU, max_concurrent_trials
from orchestrator.search import Cell, CellSearcher, CellStudies
from orchestrator.spec import SweepSpec
from orchestrator.store import RunStore
from orchestrator.trial import TrialContext, run_trial


def plan(spec: SweepSpec, store: RunStore) -> tuple[CellStudies, dict[Cell, int]]:
    """Open each cell's study, settle trials an interruption left open, and count what is left."""
    cells = [Cell(m.label, method) for m, method in spec.cells]
    objectives = [o.name for o in spec.objectives]
    studies = CellStudies(spec.name, cells, [o.mode for o in spec.objectives],
                          spec.optuna_storage or store.optuna_url(), spec.search.sampler, spec.seed,
                          spec.trials_per_cell, spec.search.lr, spec.search.mix)
    records = store.trial_records()
    remaining = {}
    for cell in cells:
        mine = {r.optuna_number: r for r in records if r.cell == cell.name}
        studies.reconcile(cell, mine, objectives)
        for r in mine.values():
            if r.status == "running":  # its driver died; the same parameters were requeued
                store.write_trial(r.model_copy(update={"status": "interrupted"}))
        finished = sum(r.finished for r in mine.values())
        remaining[cell] = max(0, spec.trials_per_cell - finished)
    return studies, remaining


def run_tune(spec: SweepSpec, store: RunStore, model_paths, app_names, baselines) -> None:
    from ray import tune

    studies, remaining = plan(spec, store)
    total = sum(remaining.values())
    if total == 0:
        print("Every planned trial has finished already.", flush=True)
        return
    print(f"Trials to run: {total} ({', '.join(f'{c.name}: {n}' for c, n in remaining.items())})", flush=True)
    searcher = CellSearcher(studies, remaining, [o.name for o in spec.objectives])
    context = TrialContext(spec=spec, run_dir=str(store.root), model_paths=model_paths,
                           app_names=app_names, baselines=baselines)
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), {"CPU": TRIAL_DRIVER_CPU})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=total,
                                    max_concurrent_trials=max_concurrent_trials(spec)),
        run_config=tune.RunConfig(name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=str(store.root / "tune"),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    tuner.fit()
