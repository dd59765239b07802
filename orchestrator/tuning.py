"""The Ray Tune experiment of a sweep: one run over all cells, FIFO (no early stopping, which would
feed truncated scores into the fronts), each trial reporting its result once (and, before scoring,
that it is done training: orchestrator.trial).

Before it starts, the run directory's trial records are reconciled with the Optuna studies (the
records win): an unreadable record is set aside and its trial reruns, a missing or corrupt optuna.db
is rebuilt from the records, a trial its dead driver left "running" is marked interrupted and runs
again first, under its own key (orchestrator.search)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Collection

import optuna
from ray.tune import Callback

from orchestrator import progress
from orchestrator.backend import RayBackend, TrialBackend
from orchestrator.cells import Cell, key_number
from orchestrator.cluster import TRIAL_DRIVER_RESOURCES, max_concurrent_trials, plan_in_use
from orchestrator.parts import StudySettings, SweepParts
from orchestrator.records import TrialRecord
from orchestrator.scheduling.admission import GpuAdmission
from orchestrator.scorer_apps import ReplicasUp
from orchestrator.search import CellSearcher, CellStudies, Rerun
from orchestrator.spec import SpecError
from orchestrator.spec_sections import BudgetSpec
from orchestrator.store import RunStore, aside_path
from orchestrator.tracking.budget import Budget
from orchestrator.tracking.callback import SweepTracking, TrackingCallback
from orchestrator.trial import TrialContext, run_trial


def settle_trials(study: StudySettings, store: RunStore) -> tuple[CellStudies, dict[Cell, int], dict[Cell, list[Rerun]]]:
    """Open each cell's study, settle trials an interruption left open, and count what is left: the
    trials each cell still runs, the first of them reruns of its unfinished trials."""
    cells = study.cells
    objectives = [o.name for o in study.objectives]
    studies = open_studies(study, store, cells)
    recover_unreadable_records(study, store, studies, cells)
    records = store.trial_records()
    remaining, reruns = {}, {}
    for cell in cells:
        mine = [r for r in records if r.cell == cell.name]
        if studies.rebuild_if_behind(cell, mine, objectives):
            print(f"warning: the Optuna study of {cell.name} lacked trials its records name; rebuilt it from "
                  f"{len(mine)} trial record(s)", flush=True)
        todo = studies.reconcile(cell, mine, objectives, study.seed)
        for r in mine:
            if r.status == "running":  # its driver died (the run lock rules out a live one)
                store.write_trial(r.model_copy(update={"status": "interrupted"}))
        remaining[cell] = max(0, study.trials_per_cell - sum(r.finished for r in mine))
        reruns[cell] = todo[:remaining[cell]]
        studies.close_unused(cell, todo[remaining[cell]:])
    return studies, remaining, reruns


def open_studies(study: StudySettings, store: RunStore, cells: list[Cell]) -> CellStudies:
    """The cells' studies; an unreadable optuna.db under the run directory is set aside (and the
    studies rebuilt from the records by settle_trials)."""
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.spec import redact_url, storage_url

    if study.optuna_storage:
        try:
            storage_url(study.optuna_storage)
        except ValueError as err:
            raise SpecError(f"optuna_storage: {err}") from None
    def studies():
        url = _SpecStorage(study.optuna_storage) if study.optuna_storage else store.optuna_url()
        return CellStudies(study.name, cells, [o.direction for o in study.objectives], url, study.sampler,
                           study.seed, study.trials_per_cell, study.lr, study.mix)

    try:
        return studies()
    except SQLAlchemyError as err:
        secret = storage_url(study.optuna_storage) if study.optuna_storage else None
        first = str(err).splitlines()[0] if str(err).strip() else ""
        if secret:   # a driver's message may quote the URL it was given
            first = first.replace(secret, redact_url(secret) or "")
        reason = redact_url(f"{type(err).__name__}: {first}")
        if study.optuna_storage:   # a shared database is never moved or rebuilt by the sweep
            raise SpecError(f"optuna_storage: cannot open {redact_url(study.optuna_storage)} ({reason})") from None
        if _transient(err):   # a busy database is no corrupt one: nothing is moved aside
            raise SpecError(f"{store.root / 'optuna.db'} is busy ({reason}); another process holds it: try again "
                            "when it is done") from None
        db = store.root / "optuna.db"
        aside = db.with_name(f"optuna.db.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(f"{db}{suffix}"):
                os.replace(f"{db}{suffix}", f"{aside}{suffix}")
        print(f"warning: {db} is unreadable ({reason}); moved it to {aside.name} and rebuilding the studies "
              "from the trial records", flush=True)
        return studies()


class SpecStorage(optuna.storages.RDBStorage):
    """A spec's optuna_storage, opened with ${VAR} read from the environment, and pickled (Tune keeps its
    searcher, which holds the studies, in tuner.pkl) as the spec wrote it: a password given as ${VAR}
    never reaches Tune's files."""

    def __init__(self, template: str):
        from orchestrator.spec import storage_url

        self.template = template
        super().__init__(storage_url(template))

    def __getstate__(self):
        return super().__getstate__() | {"url": self.template}

    def __setstate__(self, state):
        from orchestrator.spec import storage_url

        super().__setstate__(state | {"url": storage_url(state["template"])})


_SpecStorage = SpecStorage


def _transient(err) -> bool:
    """Whether an SQLAlchemy error says the database is busy or unreachable, not corrupt."""
    from sqlalchemy.exc import OperationalError

    text = str(err).lower()
    return isinstance(err, OperationalError) and any(
        s in text for s in ("database is locked", "database table is locked", "busy", "timeout", "timed out",
                            "could not connect", "connection refused", "unable to open database file"))


def recover_unreadable_records(study: StudySettings, store: RunStore, studies: CellStudies, cells: list[Cell]) -> None:
    """A truncated or corrupt record is kept beside as `<key>.json.unreadable` and, where its study still
    has the trial's parameters, replaced by an "interrupted" record so the trial runs again."""
    for key, reason in store.unreadable_trials().items():
        path = store.trial_path(key)
        aside = aside_path(path)   # a second bad record never overwrites the first one's kept copy
        os.replace(path, aside)
        cell, number = _cell_of(key, cells), key_number(key)
        trials = studies.studies[cell].get_trials(deepcopy=False) if cell else []
        params = trials[number].params if number is not None and number < len(trials) else {}
        if "lr" in params and "mix" in params:
            store.write_trial(TrialRecord(
                key=key, cell=cell.name, model=cell.model, model_ref=study.model_refs[cell.model], method=cell.method,
                lr=params["lr"], mix=params["mix"], optuna_number=number, seed=study.seed + number,
                status="interrupted", error=f"its record was unreadable ({reason}); the old file is {aside.name}"))
            warnings.warn(f"trial record {path} is unreadable ({reason}); kept as {aside.name}, the trial runs again")
        else:
            warnings.warn(f"trial record {path} is unreadable ({reason}) and its parameters are unknown; kept as "
                          f"{aside.name}, a new trial takes its place")


def _cell_of(key: str, cells: list[Cell]) -> Cell | None:
    for cell in cells:
        rest = key[len(cell.slug) + 1:]
        if key.startswith(cell.slug + "-") and rest.isdigit():
            return cell
    return None


def taken_keys(store: RunStore) -> set[str]:
    """Keys an earlier trial used: its record, a set-aside record, its adapter or its Train run. A new
    trial under one of them would overwrite that trial's files or resume its checkpoints."""
    keys = set()
    if store.trials_dir.exists():
        keys |= {p.name.split(".json")[0] for p in store.trials_dir.iterdir() if ".json" in p.name}
    for sub in ("adapters", "train"):
        if (store.root / sub).is_dir():
            keys |= {p.name for p in (store.root / sub).iterdir()}
    return keys


def run_tune(parts: SweepParts, store: RunStore, model_paths, app_names, interruption=None,
             unscorable: Callable[[], Collection[str]] = set, backend: TrialBackend = RayBackend(),
             tracking: SweepTracking | None = None, budget: BudgetSpec | None = None) -> str | None:
    """`unscorable` names the models whose base model could not be scored: no more of their trials
    start (orchestrator.baselines). `tracking` costs every trial and logs it to the spec's trackers;
    `budget` (the spec's) stops starting trials once the next one would cross it. Returns why the
    budget stopped the sweep, or None."""
    from orchestrator.interrupt import Interruption
    from orchestrator.tracking.cost import SweepCosts

    interruption = interruption or Interruption()
    plan = plan_in_use(parts.demand)
    tracking = tracking or SweepTracking([], store, parts, SweepCosts(parts, plan))
    tracking.costs.plan = plan   # known now that Ray is joined (orchestrator.cluster.connect)
    studies, remaining, reruns = settle_trials(parts.study, store)
    total = sum(remaining.values())
    if total == 0:
        print("Every planned trial has finished already.", flush=True)
        return None
    again = [r.key for rs in reruns.values() for r in rs]
    print(f"Trials to run: {total} ({', '.join(f'{c.name}: {n}' for c, n in remaining.items())})"
          + (f"; running again first: {', '.join(again)}" if again else ""), flush=True)
    admission = GpuAdmission.from_plan(plan_in_use(parts.demand), remaining,
                                       ReplicasUp.scaling_to_zero(parts.scorers))
    guard = Budget(budget, tracking.costs, store) if budget else None
    searcher = BudgetedSearcher(studies, remaining, parts.objective_names, reruns, taken_keys(store),
                                parts.study.seed, should_stop=lambda: interruption.requested, admission=admission,
                                unscorable=unscorable, budget=guard)
    context = TrialContext(settings=parts.trials, run_dir=str(store.root), model_paths=model_paths,
                           app_names=app_names, backend=backend, **provenance(model_paths))
    fit(tuner(parts, store, searcher, context, total, interruption, tracking), interruption)
    return guard.stopped if guard else None


def provenance(model_paths: dict[str, str]) -> dict:
    """What every trial record names as the model and code it ran (models.resolve), once a sweep."""
    from models.resolve import model_revision, project_commit

    return {"model_revisions": {label: model_revision(path) for label, path in model_paths.items()},
            "code_commit": project_commit()}


class BudgetedSearcher(CellSearcher):
    """The cells' searcher, which hands out no trial once the next one's planned cost would cross the
    spec's budget (orchestrator.tracking.budget): Tune lets the running trials finish and ends."""

    def __init__(self, *args, budget: Budget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = budget

    def suggest(self, trial_id: str):
        from ray.tune.search import Searcher

        if self.budget is not None and not self.interrupted:
            unscorable = self.unscorable()
            open_cells = [c.name for c, n in self.remaining.items() if n > 0 and c.model not in unscorable]
            running = [cell.name for cell, _ in self.live.values()]
            if open_cells and (self.budget.stopped or not self.budget.allows(open_cells, running)):
                return Searcher.FINISHED
            if open_cells and running and self.budget.unmeasured(open_cells):
                return None   # nothing tells yet what a trial costs: one at a time until one has ended
        return super().suggest(trial_id)


def tuner(parts: SweepParts, store: RunStore, searcher: CellSearcher, context: TrialContext, total: int,
          interruption, tracking: SweepTracking | None = None):
    from ray import tune

    from orchestrator.interrupt import make_stopper

    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), TRIAL_DRIVER_RESOURCES)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=total, trial_name_creator=progress.trial_name,
                                    max_concurrent_trials=max_concurrent_trials(parts.demand),
                                    # a finished trial's driver actor runs the next trial: a new one
                                    # would start a process and import the project first (seconds
                                    # in which the GPUs the last trial gave back sit idle)
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}", verbose=1,
                                  progress_reporter=progress.reporter(parts.objective_names),
                                  storage_path=str(store.root / "tune"), stop=make_stopper(interruption),
                                  # the dead driver's error first: the tracking callback costs its record
                                  callbacks=[RecordDeadTrialDrivers(store)]
                                  + ([TrackingCallback(tracking)] if tracking else []),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def fit(tuner, interruption) -> None:
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"   # ours (orchestrator.interrupt) stops the experiment
    with interruption.deferred():
        tuner.fit()


def _record_dead_driver(store: RunStore, key: str, cause: str) -> bool:
    """Mark a trial whose driver died (it could not record its own error) as failed with the cause."""
    record = store.read_trial(key)
    if record is None or record.status != "running":
        return False    # it recorded its own error (or had not started)
    store.write_trial(record.model_copy(update=dict(status="error", error=cause, finished_at=time.time())))
    return True


def describe_death(err) -> str:
    """One line on why a trial driver died: the exception and Ray's exit detail (SIGKILL, OOM, ...)."""
    if err is None:
        return "the trial driver died (Ray recorded no error)"
    text = str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(err, str):   # Tune's text trace: its last line names the exception
        return f"the trial driver died: {lines[-1] if lines else '?'}"
    first = lines[0] if lines else ""
    detail = text.split("Worker exit detail:", 1)[1].split(". Some common causes")[0].strip() \
        if "Worker exit detail:" in text else ""
    if "exit type: SYSTEM_ERROR" in text:
        detail = f"{detail}: killed (SIGKILL, the OOM killer) or crashed".lstrip(": ")
    return f"the trial driver died: {type(err).__name__}: {first}" + (f" ({detail})" if detail else "")


class RecordDeadTrialDrivers(Callback):
    """A trial whose driver process died (SIGKILL, Ray's OOM killer) never writes its error; Tune sees
    the dead actor, and this records the trial as an error naming the cause."""

    def __init__(self, store: RunStore):
        self.store = store

    def on_trial_error(self, iteration, trials, trial, **info):
        key = (trial.config or {}).get("key")
        if key:
            _record_dead_driver(self.store, key, describe_death(_trial_error(trial)))


def _trial_error(trial):
    """The exception Tune saved for a failed trial (beside the trial, before it syncs to storage), or
    its text trace."""
    import cloudpickle

    try:
        if trial.pickled_error_file and os.path.exists(trial.pickled_error_file):
            with open(trial.pickled_error_file, "rb") as f:
                return cloudpickle.load(f)
        if trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file) as f:
                return f.read()
    except Exception as err:   # an exception class that cannot be unpickled here
        return f"{type(err).__name__} while reading the trial's error: {err}"
    return None
