"""One Optuna multi-objective study per (model, method) cell, behind one Ray Tune searcher.

Tune runs a single experiment; this searcher hands out trials cell by cell until every cell has used
its trial budget (trials_per_cell). Which cell may start a trial now, and in which order, is the
scheduling side's (orchestrator.scheduling.admission): it keeps each node type within its GPU budget.
Each cell's study lives in RDB storage (SQLite locally), so `optuna-dashboard sqlite:///<run>/optuna.db`
shows the fronts live, and a resumed sweep continues each study where it stopped.

The trial records are the source of truth; the studies follow them. On resume, a study that lacks
trials the records name (optuna.db lost or replaced) is rebuilt from the records, a trial whose record
finished is told its result, and an unfinished trial runs again first, under its own key and seed
(so Ray Train resumes it from its last checkpoint): as the same Optuna trial while that trial is still
open, else as a new Optuna trial with the same parameters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass

import optuna
from ray.tune.search import Searcher

from orchestrator.cells import Cell, key_number, trial_key
from orchestrator.messages import TrainedReport, TrialConfig
from orchestrator.records import TrialRecord
from orchestrator.samplers import make_sampler
from orchestrator.scheduling.admission import GpuAdmission

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Rerun:
    """An unfinished trial to run again under its own key, seed and parameters."""
    key: str
    number: int        # the Optuna trial it ran as last
    lr: float
    mix: float
    seed: int
    reopen: bool       # that Optuna trial is still open (RUNNING), so the rerun reuses it


def _set_metric_names(study: optuna.Study, names: list[str]) -> None:
    if study.metric_names != names:
        with warnings.catch_warnings():   # experimental since optuna 3.2, unchanged since
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


class CellStudies:
    """The Optuna side: a study per cell, asked for parameters and told results by trial number."""

    def __init__(self, sweep: str, cells: list[Cell], directions: list[str], storage_url: str,
                 sampler: str, seed: int, trials_per_cell: int, lr, mix):
        self.lr, self.mix = lr, mix
        self.sweep, self.storage_url = sweep, storage_url
        self.directions = ["minimize" if d == "min" else "maximize" for d in directions]
        self.sampler_kind, self.seed, self.trials_per_cell = sampler, seed, trials_per_cell
        self.cells = list(cells)
        self.metric_names: list[str] | None = None
        self.studies = {c: self._open(c) for c in cells}

    def _open(self, cell: Cell) -> optuna.Study:
        study = optuna.create_study(study_name=f"{self.sweep}/{cell.name}", storage=self.storage_url,
                                    load_if_exists=True, directions=self.directions)
        if self.metric_names:
            _set_metric_names(study, self.metric_names)
        # A resumed study needs a sampler seeded afresh: the same seed would replay the first
        # run's random start-up draws and repeat parameters already tried.
        i = self.cells.index(cell)
        study.sampler = make_sampler(self.sampler_kind, self.seed + 1000 * i + len(study.trials), self.trials_per_cell,
                                     self.lr, self.mix)
        return study

    def name_metrics(self, names: list[str]) -> None:
        """Name each study's values after the spec's objectives (optuna-dashboard and
        trials_dataframe show "calibration_error", not "Objective 0")."""
        self.metric_names = list(names)
        for study in self.studies.values():
            _set_metric_names(study, self.metric_names)

    def label(self, cell: Cell, number: int, **attrs) -> None:
        """Set user attributes on an open trial (optuna-dashboard shows them beside its values): the
        trial key ties a study trial to its record. A finished trial keeps the attributes it has."""
        study = self.studies[cell]
        storage = study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        if storage.get_trial(trial_id).state.is_finished():
            return
        for name, value in attrs.items():
            if value is not None:
                storage.set_trial_user_attr(trial_id, name, value)

    @property
    def distributions(self) -> dict:
        return {
            "lr": optuna.distributions.FloatDistribution(self.lr.low, self.lr.high, log=self.lr.log),
            "mix": optuna.distributions.FloatDistribution(self.mix.low, self.mix.high, log=self.mix.log),
        }

    def ask(self, cell: Cell) -> tuple[int, float, float]:
        trial = self.studies[cell].ask(self.distributions)
        return trial.number, trial.params["lr"], trial.params["mix"]

    def ask_again(self, cell: Cell, rerun: Rerun) -> int:
        """A new Optuna trial with a rerun's parameters; returns its number."""
        study = self.studies[cell]
        study.enqueue_trial({"lr": rerun.lr, "mix": rerun.mix}, user_attrs={"requeued_from": rerun.number,
                                                                           "key": rerun.key})
        return study.ask(self.distributions).number

    def tell(self, cell: Cell, number: int, values: list[float] | None) -> None:
        study = self.studies[cell]
        if study.trials[number].state != optuna.trial.TrialState.RUNNING:
            return  # told already (e.g. before a resume)
        if values is None or any(v is None or not math.isfinite(v) for v in values):
            study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(number, values)

    def rebuild_if_behind(self, cell: Cell, records: list[TrialRecord], objectives: list[str]) -> bool:
        """A study that lacks a trial its records name (optuna.db deleted, replaced or half lost) is
        recreated from the records: trial n is the record whose optuna_number is n, told its result
        (done: its objectives; error: FAIL; unfinished: left open), and a number no record names is a
        FAIL placeholder, so numbers and keys stay as the records have them. Returns whether it did."""
        study = self.studies[cell]
        trials = study.get_trials(deepcopy=False)
        numbers = [r.optuna_number for r in records] + [key_number(r.key) or 0 for r in records]
        behind = bool(records) and max(numbers) >= len(trials)
        for r in records:
            if not behind and r.optuna_number < len(trials):
                t = trials[r.optuna_number]
                behind = t.params and (t.params.get("lr"), t.params.get("mix")) != (r.lr, r.mix)
        if not behind:
            return False
        optuna.delete_study(study_name=study.study_name, storage=self.storage_url)
        self.studies[cell] = study = self._open(cell)
        by_number = {r.optuna_number: r for r in records}
        for n in range(max(numbers) + 1):
            study.add_trial(self._frozen(by_number.get(n), objectives))
        self.studies[cell] = self._open(cell)   # reseed the sampler for the rebuilt history
        return True

    def _frozen(self, record: TrialRecord | None, objectives: list[str]) -> optuna.trial.FrozenTrial:
        State = optuna.trial.TrialState
        if record is None:
            return optuna.trial.create_trial(state=State.FAIL)
        params = {"lr": record.lr, "mix": record.mix}
        attrs = {"key": record.key, "status": record.status, "rebuilt_from_record": True}
        if record.adapter_dir:
            attrs["adapter_dir"] = record.adapter_dir
        values = [record.objectives.get(o) for o in objectives]
        if record.status == "done" and all(v is not None and math.isfinite(v) for v in values):
            return optuna.trial.create_trial(params=params, distributions=self.distributions, values=values,
                                             user_attrs=attrs)
        state = State.FAIL if record.finished else State.RUNNING
        return optuna.trial.create_trial(params=params, distributions=self.distributions, state=state,
                                         user_attrs=attrs)

    def reconcile(self, cell: Cell, records: list[TrialRecord], objectives: list[str],
                  default_seed: int = 0) -> list[Rerun]:
        """After an interruption: tell open trials whose record finished; return the unfinished trials
        to run again (the earliest first), and fail open trials that have no record (their driver died
        before the trial started)."""
        study = self.studies[cell]
        trials = study.get_trials(deepcopy=False)
        by_number = {r.optuna_number: r for r in records}
        RUNNING = optuna.trial.TrialState.RUNNING
        for t in trials:
            rec = by_number.get(t.number)
            if t.state != RUNNING:
                continue
            if rec is None:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            elif rec.finished:
                self.tell(cell, t.number, [rec.objectives.get(o) for o in objectives]
                          if rec.status == "done" else None)
        finished_numbers = {r.optuna_number for r in records if r.finished}
        superseded = {t.user_attrs.get("requeued_from") for t in trials if t.number in finished_numbers}
        reruns = []
        for r in sorted(records, key=lambda r: (key_number(r.key) or 0, r.key)):
            if r.finished or r.optuna_number in superseded:   # ran again already (older versions)
                continue
            seed = r.seed if r.seed is not None else default_seed + (key_number(r.key) or r.optuna_number)
            reopen = r.optuna_number < len(trials) and trials[r.optuna_number].state == RUNNING
            reruns.append(Rerun(r.key, r.optuna_number, r.lr, r.mix, seed, reopen))
        return reruns

    def close_unused(self, cell: Cell, reruns: list[Rerun]) -> None:
        """Fail the open trials of reruns that will not run (the cell's budget is spent)."""
        for r in reruns:
            if r.reopen:
                self.studies[cell].tell(r.number, state=optuna.trial.TrialState.FAIL)


class CellSearcher(Searcher):
    """A Tune searcher over several cells, each with its own study and trial budget. Each cell first
    runs its reruns (unfinished trials of an earlier run), then asks its study for new trials, under
    keys that no existing record uses. `admission` (orchestrator.scheduling) says which cells may
    start a trial now and orders them; `unscorable` (model labels whose base model could not be
    scored) closes those models' cells."""

    def __init__(self, studies: CellStudies, remaining: dict[Cell, int], objectives: list[str],
                 reruns: dict[Cell, list[Rerun]] | None = None, taken_keys: set[str] = frozenset(),
                 seed: int = 0, should_stop=lambda: False, admission: GpuAdmission | None = None,
                 unscorable: Callable[[], Collection[str]] = set):
        super().__init__(metric=None, mode=None)
        self.studies, self.objectives = studies, objectives
        self.remaining = dict(remaining)
        self.reruns = {c: list((reruns or {}).get(c, [])) for c in remaining}
        self.taken_keys = set(taken_keys)
        self.seed = seed
        self.started = {c: 0 for c in remaining}
        self.live: dict[str, tuple[Cell, int]] = {}
        self.should_stop = should_stop   # true once the sweep is interrupted: hand out no more trials
        self.admission = admission or GpuAdmission()
        self.admission.remaining = self.remaining
        self.unscorable = unscorable   # models whose base model could not be scored: no more trials
        studies.name_metrics(objectives)

    @property
    def interrupted(self) -> bool:
        return bool(self.should_stop())

    def suggest(self, trial_id: str):
        unscorable = self.unscorable()
        open_cells = [c for c, n in self.remaining.items() if n > 0 and c.model not in unscorable]
        if not open_cells or self.interrupted:
            return Searcher.FINISHED
        ready = self.admission.ready(open_cells, self.priority)
        if not ready:
            return None   # every open cell's node type is full: Tune asks again once a trial ends
        cell = min(ready, key=self.priority)
        if self.reruns[cell]:
            rerun = self.reruns[cell].pop(0)
            number = rerun.number if rerun.reopen else self.studies.ask_again(cell, rerun)
            key, lr, mix, seed = rerun.key, rerun.lr, rerun.mix, rerun.seed
        else:
            number, lr, mix = self._ask_new(cell)
            key, seed = trial_key(cell, number), self.seed + number
        self.taken_keys.add(key)
        self.studies.label(cell, number, key=key, status="running")
        self.remaining[cell] -= 1
        self.started[cell] += 1
        self.live[trial_id] = (cell, number)
        self.admission.start(trial_id, cell)
        return TrialConfig(key=key, model=cell.model, method=cell.method, optuna_number=number,
                           lr=lr, mix=mix, seed=seed).to_tune()

    def priority(self, cell: Cell) -> tuple:
        """Sort key, smallest first: reruns (they resume checkpoints), then the most expected GPU-hours
        of one trial (largest-first list scheduling: the last trials to start are small ones, which
        fill the gaps the large ones leave; by hours alone, 2-GPU trials went before the 4-GPU ones
        that then waited for 4 free GPUs at the end; by the cell's GPU-hours left, three 2-GPU trials
        went before the last 4-GPU one, which then ran alone beside 3 idle GPUs), then the fewest
        trials started."""
        load = self.admission.load(cell)
        return (not self.reruns[cell], -load.hours * max(load.gpus, 1.0), self.started[cell], cell.name)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A trial done training (orchestrator.trial reports it) gave its GPUs back."""
        if TrainedReport.is_one(result):
            self.admission.trained(trial_id)

    def _ask_new(self, cell: Cell) -> tuple[int, float, float]:
        """A new trial whose key no record has (a study reset behind the records' back would otherwise
        hand out a number, and so a key, that an earlier trial used)."""
        for _ in range(10_000):
            number, lr, mix = self.studies.ask(cell)
            if trial_key(cell, number) not in self.taken_keys:
                return number, lr, mix
            self.studies.tell(cell, number, None)
        raise RuntimeError(f"no free trial key in cell {cell.name}")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        cell, number = self.live.pop(trial_id)
        self.admission.end(trial_id)
        if self.interrupted and not result:
            self.studies.label(cell, number, status="interrupted")
            return   # stopped by the interruption: the trial stays open and reruns on resume
        values = None if error or not result else [result.get(o) for o in self.objectives]
        self.studies.label(cell, number, status="error" if values is None else "done",
                           adapter_dir=(result or {}).get("adapter_dir"))
        self.studies.tell(cell, number, values)
