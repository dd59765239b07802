"""Optuna samplers for a cell's study, by the spec's `search.sampler` name.

`gp` (the default) starts from a Latin hypercube: its start-up trials split each axis into as many
equal strata as there are start-up trials and take one point in each, so with a budget of a few trials
a cell still sees low and high learning rates and low and high mixes. Independent random draws can
land side by side (the default sweep's soft cell once drew lr 2.4e-3 and 2.6e-3 as its two).
"""

from __future__ import annotations

import math

import numpy as np
import optuna


def make_sampler(kind: str, seed: int, n_trials: int, lr, mix) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        side = max(1, math.ceil(math.sqrt(n_trials)))
        return _GridSampler({"lr": _axis(lr, side), "mix": _axis(mix, side)}, seed=seed)
    startup = max(2, min(10, n_trials // 3))
    if kind == "gp":   # Gaussian-process EHVI: handles running trials, so concurrent asks spread out
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup,
                                         independent_sampler=LatinStartup(startup, seed))
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
    inner = [_at(r.low, r.high, r.log, i / (n - 1)) for i in range(1, n - 1)]
    return [r.low, *inner, r.high]  # exact endpoints: exp(log(x)) drifts past the range


def _at(low: float, high: float, log: bool, u: float) -> float:
    """The point a fraction u along [low, high], in the range's own scale (log or linear)."""
    if log:
        return min(high, math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return low + u * (high - low)


class LatinStartup(optuna.samplers.BaseSampler):
    """GPSampler's independent sampler: trial k of the study (k < n) takes point k of a seeded Latin
    hypercube over (lr, mix) in the search space's own scale (log for a log range); any later trial,
    or any other parameter, a seeded random draw. Trial numbers follow the study, so concurrent asks
    take distinct points; a resumed study's sampler is reseeded (CellStudies), so its design is new."""

    AXES = ("lr", "mix")

    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.design = np.stack([(rng.permutation(n) + rng.random(n)) / n for _ in self.AXES], axis=1)
        self.fallback = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        dist = param_distribution
        if (trial.number >= len(self.design) or param_name not in self.AXES
                or not isinstance(dist, optuna.distributions.FloatDistribution) or dist.step is not None):
            return self.fallback.sample_independent(study, trial, param_name, dist)
        return _at(dist.low, dist.high, dist.log, float(self.design[trial.number, self.AXES.index(param_name)]))
