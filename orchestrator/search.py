"""One Optuna multi-objective study per (model, method) cell, behind one Ray Tune searcher.

Tune runs a single experiment; this searcher hands out trials cell by cell (the cell with the fewest
trials so far goes next) until every cell has used its budget. Each cell's study lives in RDB storage
(SQLite locally), so `optuna-dashboard sqlite:///<run>/optuna.db` shows the fronts live, and a resumed
sweep continues each study where it stopped.
"""

from __future__ import annotations

import math
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


def make_sampler(kind: str, seed: int, budget: int, lr, mix) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        side = max(1, math.ceil(math.sqrt(budget)))
        return optuna.samplers.GridSampler({"lr": _axis(lr, side), "mix": _axis(mix, side)}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=max(2, min(10, budget // 3)))


def _axis(r, n: int) -> list[float]:
    if n == 1:
        return [math.sqrt(r.low * r.high) if r.log else (r.low + r.high) / 2]
    if r.log:
        inner = [math.exp(math.log(r.low) + i * (math.log(r.high) - math.log(r.low)) / (n - 1)) for i in range(1, n - 1)]
    else:
        inner = [r.low + i * (r.high - r.low) / (n - 1) for i in range(1, n - 1)]
    return [r.low, *inner, r.high]  # exact endpoints: exp(log(x)) drifts past the range


class CellStudies:
    """The Optuna side: a study per cell, asked for parameters and told results by trial number."""

    def __init__(self, sweep: str, cells: list[Cell], directions: list[str], storage_url: str,
                 sampler: str, seed: int, budget: int, lr, mix):
        self.lr, self.mix = lr, mix
        self.studies = {}
        for i, c in enumerate(cells):
            study = optuna.create_study(
                study_name=f"{sweep}/{c.name}", storage=storage_url, load_if_exists=True,
                directions=["minimize" if d == "min" else "maximize" for d in directions])
            # A resumed study needs a sampler seeded afresh: the same seed would replay the first
            # run's random start-up draws and repeat parameters already tried.
            study.sampler = make_sampler(sampler, seed + 1000 * i + len(study.trials), budget, lr, mix)
            self.studies[c] = study

    def ask(self, cell: Cell) -> tuple[int, float, float]:
        trial = self.studies[cell].ask({
            "lr": optuna.distributions.FloatDistribution(self.lr.low, self.lr.high, log=self.lr.log),
            "mix": optuna.distributions.FloatDistribution(self.mix.low, self.mix.high, log=self.mix.log),
        })
        return trial.number, trial.params["lr"], trial.params["mix"]

    def tell(self, cell: Cell, number: int, values: list[float] | None) -> None:
        study = self.studies[cell]
        if study.trials[number].state != optuna.trial.TrialState.RUNNING:
            return  # told already (e.g. before a resume)
        if values is None or any(v is None or not math.isfinite(v) for v in values):
            study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(number, values)

    def reconcile(self, cell: Cell, records: dict[int, TrialRecord], objectives: list[str]) -> None:
        """After an interruption: tell trials whose record finished; requeue the rest's parameters so
        the same planned trial runs again (once)."""
        for t in self.studies[cell].get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            rec = records.get(t.number)
            if rec and rec.finished:
                self.tell(cell, t.number, [rec.objectives.get(o) for o in objectives]
                          if rec.status == "done" else None)
            else:
                self.studies[cell].tell(t.number, state=optuna.trial.TrialState.FAIL)
                self.studies[cell].enqueue_trial(t.params, user_attrs={"requeued_from": t.number})


class CellSearcher(Searcher):
    """A Tune searcher over several cells, each with its own study and trial budget."""

    def __init__(self, studies: CellStudies, remaining: dict[Cell, int], objectives: list[str]):
        super().__init__(metric=None, mode=None)
        self.studies, self.objectives = studies, objectives
        self.remaining = dict(remaining)
        self.started = {c: 0 for c in remaining}
        self.live: dict[str, tuple[Cell, int]] = {}

    def suggest(self, trial_id: str):
        open_cells = [c for c, n in self.remaining.items() if n > 0]
        if not open_cells:
            return Searcher.FINISHED
        cell = min(open_cells, key=lambda c: (self.started[c], c.name))
        number, lr, mix = self.studies.ask(cell)
        self.remaining[cell] -= 1
        self.started[cell] += 1
        self.live[trial_id] = (cell, number)
        return {"key": trial_key(cell, number), "model": cell.model, "method": cell.method,
                "optuna_number": number, "lr": lr, "mix": mix}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        cell, number = self.live.pop(trial_id)
        values = None if error or not result else [result.get(o) for o in self.objectives]
        self.studies.tell(cell, number, values)
