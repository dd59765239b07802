"""One Optuna multi-objective study per (model, method) cell, behind one Ray Tune searcher.

Tune runs a single experiment; this searcher hands out trials cell by cell until every cell has used
its budget. Given each cell's load (the planner's node type, GPUs and expected hours of one trial), it
starts the cell whose trials take the most expected GPU-hours first, so the sweep ends on small
trials rather than on a long one running alone, and it hands out a cell's trial only while that node
type has GPUs for it: trials waiting for a full node type would otherwise take Tune's concurrency
slots from another. Without loads it goes round robin (the cell with the fewest trials so far next).
Each cell's study lives in RDB storage (SQLite locally), so `optuna-dashboard sqlite:///<run>/optuna.db` shows the fronts live, and a resumed
sweep continues each study where it stopped.

The trial records are the source of truth; the studies follow them. On resume, a study that lacks
trials the records name (optuna.db lost or replaced) is rebuilt from the records, a trial whose record
finished is told its result, and an unfinished trial runs again first, under its own key and seed
(so Ray Train resumes it from its last checkpoint): as the same Optuna trial while that trial is still
open, else as a new Optuna trial with the same parameters.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass

import optuna
from ray.tune.search import Searcher

from orchestrator.records import TrialRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Cell:
    model: str      # model label
    method: str

    @property
    def name(self) -> str:
        return f"{self.model}:{self.method}"

    @property
    def slug(self) -> str:
        return f"{self.model}-{self.method}"


def trial_key(cell: Cell, number: int) -> str:
    return f"{cell.slug}-{number:03d}"


def key_number(key: str) -> int | None:
    """The Optuna number a trial key was made from (a rerun keeps its first key)."""
    match = re.search(r"-(\d+)$", key)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class CellLoad:
    """What one trial of a cell holds while it trains, as the planner (orchestrator.plan) sees it."""
    pool: str | None = None   # the node type its training lands on; None: not known, not limited
    gpus: float = 0.0         # GPUs one trial trains on
    hours: float = 0.0        # its expected wall hours (0: not costed)
    scorer_pool: str | None = None   # the node type its scorer replicas land on
    scorer_gpus: float = 0.0         # GPUs one of those replicas holds


@dataclass(frozen=True)
class Rerun:
    """An unfinished trial to run again under its own key, seed and parameters."""
    key: str
    number: int        # the Optuna trial it ran as last
    lr: float
    mix: float
    seed: int
    reopen: bool       # that Optuna trial is still open (RUNNING), so the rerun reuses it


def make_sampler(kind: str, seed: int, budget: int, lr, mix) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        side = max(1, math.ceil(math.sqrt(budget)))
        return _GridSampler({"lr": _axis(lr, side), "mix": _axis(mix, side)}, seed=seed)
    startup = max(2, min(10, budget // 3))
    if kind == "gp":   # Gaussian-process EHVI: handles running trials, so concurrent asks spread out
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, with two changes for a sweep that asks, tells and resumes:
    - a point counts as visited when a trial has its parameters (Optuna goes by a `grid_id` attribute,
      which trials rebuilt from records or rerun after an interruption lack, so a resumed grid
      repeated points and skipped others);
    - no `study.stop()` once every point is told: it raises outside `study.optimize` (a cell ends at
      its trial budget anyway)."""

    def before_trial(self, study, trial) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return   # an enqueued rerun keeps its own parameters
        State = optuna.trial.TrialState
        taken = {tuple(t.params.get(name) for name in self._search_space)
                 for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
                 if t.number != trial.number and (t.state.is_finished() or t.state == State.RUNNING)}
        left = [i for i, point in enumerate(self._all_grids) if tuple(point) not in taken]
        grid_id = int(self._rng.rng.choice(left or range(len(self._all_grids))))
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)

    def after_trial(self, study, trial, state, values) -> None:
        pass


def _axis(r, n: int) -> list[float]:
    if n == 1:
        return [math.sqrt(r.low * r.high) if r.log else (r.low + r.high) / 2]
    if r.log:
        inner = [math.exp(math.log(r.low) + i * (math.log(r.high) - math.log(r.low)) / (n - 1)) for i in range(1, n - 1)]
    else:
        inner = [r.low + i * (r.high - r.low) / (n - 1) for i in range(1, n - 1)]
    return [r.low, *inner, r.high]  # exact endpoints: exp(log(x)) drifts past the range


def _set_metric_names(study: optuna.Study, names: list[str]) -> None:
    if study.metric_names != names:
        with warnings.catch_warnings():   # experimental since optuna 3.2, unchanged since
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


class CellStudies:
    """The Optuna side: a study per cell, asked for parameters and told results by trial number."""

    def __init__(self, sweep: str, cells: list[Cell], directions: list[str], storage_url: str,
                 sampler: str, seed: int, budget: int, lr, mix):
        self.lr, self.mix = lr, mix
        self.sweep, self.storage_url = sweep, storage_url
        self.directions = ["minimize" if d == "min" else "maximize" for d in directions]
        self.sampler_kind, self.seed, self.budget = sampler, seed, budget
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
        study.sampler = make_sampler(self.sampler_kind, self.seed + 1000 * i + len(study.trials), self.budget,
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
    keys that no existing record uses. `loads` and `pool_gpus` (the GPUs trials may hold at once on each
    node type) order the cells and hold a trial back while its node type is full (see the module
    docstring); `scorer_reserves` (node type -> GPUs kept for scorer replicas, and the cells whose
    scores need them) goes to that type's trials once those cells have no trial left to run or score.
    `scorer_replicas` (model label -> replicas up now, for scorers that scale to zero) keeps a replica's
    GPUs counted while it lingers after its last score: a trial handed those GPUs would wait for them,
    and the autoscaler, seeing it wait, would start a node the budget has no work for. `unscorable`
    (model labels whose base model could not be scored) closes those models' cells."""

    def __init__(self, studies: CellStudies, remaining: dict[Cell, int], objectives: list[str],
                 reruns: dict[Cell, list[Rerun]] | None = None, taken_keys: set[str] = frozenset(),
                 seed: int = 0, should_stop=lambda: False, loads: dict[Cell, CellLoad] | None = None,
                 pool_gpus: dict[str, float] | None = None,
                 scorer_reserves: dict[str, tuple[float, set[Cell]]] | None = None,
                 scorer_replicas: Callable[[], dict[str, int]] = dict,
                 unscorable: Callable[[], Collection[str]] = set):
        super().__init__(metric=None, mode=None)
        self.studies, self.objectives = studies, objectives
        self.remaining = dict(remaining)
        self.reruns = {c: list((reruns or {}).get(c, [])) for c in remaining}
        self.taken_keys = set(taken_keys)
        self.seed = seed
        self.started = {c: 0 for c in remaining}
        self.live: dict[str, tuple[Cell, int]] = {}
        self.scoring: set[str] = set()   # live trials done training, their GPUs given back
        self.should_stop = should_stop   # true once the sweep is interrupted: hand out no more trials
        self.loads = {c: (loads or {}).get(c, CellLoad()) for c in remaining}
        self.pool_gpus = dict(pool_gpus or {})
        self.scorer_reserves = dict(scorer_reserves or {})
        self.scorer_replicas = scorer_replicas
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
        ready = [c for c in open_cells if self.has_room(c) and not self.waits_behind(c, open_cells)]
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
        return {"key": key, "model": cell.model, "method": cell.method, "optuna_number": number,
                "lr": lr, "mix": mix, "seed": seed}

    def priority(self, cell: Cell) -> tuple:
        """Sort key, smallest first: reruns (they resume checkpoints), then the most expected GPU-hours
        of one trial (largest-first list scheduling: the last trials to start are small ones, which
        fill the gaps the large ones leave; by hours alone, 2-GPU trials went before the 4-GPU ones
        that then waited for 4 free GPUs at the end; by the cell's GPU-hours left, three 2-GPU trials
        went before the last 4-GPU one, which then ran alone beside 3 idle GPUs), then the fewest
        trials started."""
        load = self.loads[cell]
        return (not self.reruns[cell], -load.hours * max(load.gpus, 1.0), self.started[cell], cell.name)

    def waits_behind(self, cell: Cell, open_cells: list[Cell]) -> bool:
        """Whether a cell ahead of this one on its node type waits only for scorer replicas there, busy
        scoring (minutes) or idle (within their release delay): their GPUs are kept for it, not handed
        to a smaller trial that would hold them for hours while the larger one waits for a whole set of
        free GPUs. (Without waiting for the busy ones, the scale simulation's last 4-GPU trial started
        after every 2-GPU trial, which took each gap a score left, and ran alone for 2.4 hours.)"""
        pool = self.loads[cell].pool
        return pool is not None and any(
            self.loads[c].pool == pool and self.priority(c) < self.priority(cell)
            and not self.has_room(c) and self.has_room(c, count_scorers=False) for c in open_cells)

    def pool_in_use(self, pool: str, count_scorers: bool = True) -> float:
        """GPUs the node type's trials and scorers hold: a training trial its own; a model trained and
        scored on this type, its scorer replicas: one while trials wait for their scores (the GPUs a
        trial freed are where its replica starts; a new trial takes the rest), and as many as are up
        (scorer_replicas), which covers a replica lingering after its last score."""
        training = sum(self.loads[c].gpus for t, (c, _) in self.live.items()
                       if self.loads[c].pool == pool and t not in self.scoring)
        if not count_scorers:
            return training
        waiting = {c.model for t, (c, _) in self.live.items() if t in self.scoring}
        up = self.scorer_replicas()
        scorers = {c.model: max(int(c.model in waiting), up.get(c.model, 0)) * load.scorer_gpus
                   for c, load in self.loads.items() if load.pool == pool == load.scorer_pool}
        return training + sum(scorers.values())

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A trial done training (orchestrator.trial reports it) gave its GPUs back: they go to the next
        trial while it waits for its score, but for its scorer replica's where that lands on the same
        node type (pool_in_use)."""
        if result.get("phase") == "trained" and trial_id in self.live:
            self.scoring.add(trial_id)

    def has_room(self, cell: Cell, count_scorers: bool = True) -> bool:
        """Whether the cell's node type has GPUs for one more of its trials. A node type with nothing
        live always takes one, so a trial larger than its budget still runs."""
        load = self.loads[cell]
        budget = self.budget(load.pool) if load.pool else None
        if budget is None:
            return True
        used = self.pool_in_use(load.pool, count_scorers)
        return used == 0 or used + load.gpus <= budget + 1e-9

    def budget(self, pool: str) -> float | None:
        """GPUs the node type's trials may hold now: its budget, and its scorers' reserve once no cell
        that needs it has a trial to run or being run."""
        if pool not in self.pool_gpus:
            return None
        reserve, needing = self.scorer_reserves.get(pool, (0.0, set()))
        live = {c for c, _ in self.live.values()}
        in_need = any(self.remaining.get(c, 0) > 0 or c in live for c in needing)
        return self.pool_gpus[pool] + (0.0 if in_need else reserve)

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
        self.scoring.discard(trial_id)
        if self.interrupted and not result:
            self.studies.label(cell, number, status="interrupted")
            return   # stopped by the interruption: the trial stays open and reruns on resume
        values = None if error or not result else [result.get(o) for o in self.objectives]
        self.studies.label(cell, number, status="error" if values is None else "done",
                           adapter_dir=(result or {}).get("adapter_dir"))
        self.studies.tell(cell, number, values)
