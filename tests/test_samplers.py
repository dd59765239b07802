"""The GP sampler's start-up trials form a Latin hypercube over (lr, mix): one point per stratum of
each axis, in the axis's own scale, so a cell of a few trials sees both ends of both ranges."""

import math

import optuna
import pytest

from orchestrator.samplers import LatinStartup, make_sampler
from orchestrator.spec import Range

LR, MIX = Range(low=1e-3, high=5e-3, log=True), Range(low=0.0, high=0.8)


def _ask(study: optuna.Study) -> optuna.trial.Trial:
    trial = study.ask()
    trial.suggest_float("lr", LR.low, LR.high, log=True)
    trial.suggest_float("mix", MIX.low, MIX.high)
    return trial


def _stratum(value: float, r: Range, n: int) -> int:
    u = (math.log(value / r.low) / math.log(r.high / r.low)) if r.log else (value - r.low) / (r.high - r.low)
    return min(n - 1, int(u * n))


@pytest.mark.parametrize("n,seed", [(2, 0), (2, 1000), (3, 7), (10, 3)])
def test_start_up_trials_take_one_stratum_each_on_both_axes(n, seed):
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=make_sampler("gp", seed, 3 * n, LR, MIX))
    trials = [_ask(study) for _ in range(n)]   # asked together, as concurrent trials are
    for name, r in (("lr", LR), ("mix", MIX)):
        values = [t.params[name] for t in trials]
        assert all(r.low <= v <= r.high for v in values)
        assert sorted(_stratum(v, r, n) for v in values) == list(range(n)), (name, values)


def test_later_trials_and_other_parameters_fall_back_to_random_draws():
    sampler = LatinStartup(2, seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(2):
        study.tell(_ask(study), 1.0)
    late = study.ask()
    assert LR.low <= late.suggest_float("lr", LR.low, LR.high, log=True) <= LR.high
    assert late.suggest_int("layers", 1, 4) in range(1, 5)   # not an axis of the design


def test_the_same_seed_gives_the_same_design_and_another_seed_another():
    assert (LatinStartup(3, 5).design == LatinStartup(3, 5).design).all()
    assert not (LatinStartup(3, 5).design == LatinStartup(3, 6).design).all()
