"""The searcher's order and per-node-type budgets (orchestrator.scheduling.admission): the cell
whose trials take the most expected GPU-hours starts first, and a cell whose node type has no GPUs
left for one more trial waits while other node types' cells go on. Real Optuna studies (SQLite), no Ray."""

import itertools

from ray.tune.search import Searcher

from orchestrator.cells import Cell
from orchestrator.scheduling.admission import CellLoad, GpuAdmission, ScorerReserve
from orchestrator.search import CellSearcher, CellStudies
from orchestrator.spec import Range

LR, MIX = Range(low=1e-5, high=1e-3, log=True), Range(low=0.0, high=0.5)
SHORT, LONG, BIG = Cell("small", "soft"), Cell("small", "hard"), Cell("large", "hard")
IDS = itertools.count()


def _searcher(tmp_path, remaining, loads=None, pool_gpus=None):
    studies = CellStudies("s", list(remaining), ["min", "min"], f"sqlite:///{tmp_path}/o.db", "random", 0, 4, LR, MIX)
    return CellSearcher(studies, remaining, ["a", "b"], admission=GpuAdmission(loads, pool_gpus))


def _cells(searcher, n):
    out = []
    for _ in range(n):
        config = searcher.suggest(f"t{next(IDS)}")
        out.append(None if config in (None, Searcher.FINISHED) else (config["model"], config["method"]))
    return out


def test_without_loads_the_cells_go_round_robin(tmp_path):
    searcher = _searcher(tmp_path, {SHORT: 2, LONG: 2})
    assert _cells(searcher, 4) == [("small", "hard"), ("small", "soft"), ("small", "hard"), ("small", "soft")]


def test_the_cell_with_the_most_expected_hours_left_goes_first(tmp_path):
    loads = {SHORT: CellLoad("a10g", 1, 0.5), LONG: CellLoad("a10g", 1, 5.0)}
    searcher = _searcher(tmp_path, {SHORT: 3, LONG: 3}, loads)
    # LONG has 15 h left, then 10, then 5 (ties with nothing: SHORT has 1.5): its trials start first
    assert _cells(searcher, 6) == [("small", "hard")] * 3 + [("small", "soft")] * 3


def test_on_one_node_type_the_most_gpu_hours_left_go_first(tmp_path):
    """4-GPU trials of 0.85 h (3.4 GPU-hours) before 2-GPU trials of 1 h (2): started by hours, the
    2-GPU ones went first, and the 4-GPU ones waited at the end for 4 free GPUs with the rest idle."""
    mid = Cell("mid", "hard")
    loads = {BIG: CellLoad("a100", 4, 0.85), mid: CellLoad("a100", 2, 1.0)}
    searcher = _searcher(tmp_path, {BIG: 3, mid: 3}, loads, {"a100": 8})
    assert _cells(searcher, 3) == [("large", "hard"), ("large", "hard"), None]


def test_one_long_trial_left_goes_before_many_shorter_ones(tmp_path):
    """The last 4-GPU trial (4.4 GPU-hours) before three 2-GPU trials (2.4 each, 7.3 in all): ordered by
    the cell's GPU-hours left, the three went first and the 4-GPU one ran last, alone beside 3 idle GPUs
    (the scale simulation's A100 node)."""
    mid = Cell("mid", "hard")
    loads = {BIG: CellLoad("a100", 4, 1.1), mid: CellLoad("a100", 2, 1.22)}
    searcher = _searcher(tmp_path, {BIG: 1, mid: 3}, loads, {"a100": 8})
    assert _cells(searcher, 4) == [("large", "hard"), ("mid", "hard"), ("mid", "hard"), None]


def test_a_full_node_type_holds_its_cells_back_while_another_type_goes_on(tmp_path):
    loads = {BIG: CellLoad("a100", 4, 9.0), SHORT: CellLoad("a10g", 1, 0.1)}
    searcher = _searcher(tmp_path, {BIG: 3, SHORT: 3}, loads, {"a100": 8, "a10g": 2})
    assert _cells(searcher, 2) == [("large", "hard")] * 2          # 8 of the A100s' 8 GPUs
    assert _cells(searcher, 3) == [("small", "soft")] * 2 + [None]   # the A10Gs' 2, then nothing fits
    assert searcher.admission.gpus_in_use("a100") == 8 and searcher.admission.gpus_in_use("a10g") == 2
    first_big = next(t for t, (cell, _) in searcher.live.items() if cell == BIG)
    searcher.on_trial_complete(first_big, {"a": 1.0, "b": 2.0})
    assert _cells(searcher, 1) == [("large", "hard")]               # its GPUs went to the next one


def test_a_trial_larger_than_its_budget_still_runs_alone(tmp_path):
    searcher = _searcher(tmp_path, {BIG: 2}, {BIG: CellLoad("a100", 8, 1.0)}, {"a100": 4})
    assert _cells(searcher, 2) == [("large", "hard"), None]


def test_the_scorers_reserve_goes_to_trials_once_the_cells_needing_it_are_done(tmp_path):
    """BIG trains elsewhere and is scored on the A10Gs, which keep 2 GPUs for that while BIG runs."""
    loads = {BIG: CellLoad("a100", 8, 1.0), SHORT: CellLoad("a10g", 1, 0.1)}
    searcher = _searcher(tmp_path, {BIG: 1, SHORT: 5}, loads, {"a100": 8, "a10g": 2})
    searcher.admission.reserves = {"a10g": ScorerReserve(2.0, frozenset({BIG}))}
    assert _cells(searcher, 4) == [("large", "hard"), ("small", "soft"), ("small", "soft"), None]
    big = next(t for t, (cell, _) in searcher.live.items() if cell == BIG)
    searcher.on_trial_complete(big, {"a": 1.0, "b": 2.0})
    assert searcher.admission.budget("a10g") == 4.0
    assert _cells(searcher, 3) == [("small", "soft"), ("small", "soft"), None]   # 4 live: full again


def test_a_trial_waiting_for_a_score_elsewhere_gives_its_gpus_to_the_next(tmp_path):
    loads = {BIG: CellLoad("a100", 8, 1.0, scorer_node_type="a10g", scorer_gpus=2),
             SHORT: CellLoad("a10g", 1, 0.1, scorer_node_type="a10g", scorer_gpus=1)}
    searcher = _searcher(tmp_path, {BIG: 2, SHORT: 2}, loads, {"a100": 8, "a10g": 1})
    assert _cells(searcher, 3) == [("large", "hard"), ("small", "soft"), None]
    for trial_id in list(searcher.live):
        searcher.on_trial_result(trial_id, {"phase": "trained", "trial_key": "k"})
    # the A100s are free while BIG is scored on the A10Gs; SHORT's A10G is where its own scorer starts
    assert searcher.admission.gpus_in_use("a100") == 0 and searcher.admission.gpus_in_use("a10g") == 1
    assert _cells(searcher, 2) == [("large", "hard"), None]


def test_a_trial_scored_where_it_trained_keeps_only_its_scorers_gpus(tmp_path):
    """A 4-GPU trial scored by a 1-GPU replica of its own node type: 3 GPUs go to the next trial while it
    is scored, and trials of one model waiting together count one replica."""
    loads = {BIG: CellLoad("a100", 4, 1.0, scorer_node_type="a100", scorer_gpus=1),
             SHORT: CellLoad("a100", 2, 0.4, scorer_node_type="a100", scorer_gpus=1)}
    searcher = _searcher(tmp_path, {BIG: 3, SHORT: 2}, loads, {"a100": 8})
    assert _cells(searcher, 3) == [("large", "hard")] * 2 + [None]
    for trial_id in list(searcher.live):
        searcher.on_trial_result(trial_id, {"phase": "trained", "trial_key": "k"})
    assert searcher.admission.gpus_in_use("a100") == 1          # both BIG trials wait on one replica
    assert _cells(searcher, 3) == [("large", "hard"), ("small", "soft"), None]   # 1 + 4 + 2 of 8
    assert searcher.admission.gpus_in_use("a100") == 7


def test_a_replica_lingering_after_its_last_score_keeps_its_gpus(tmp_path):
    """A scorer that scales to zero stays up for its idle delay after the score: until Serve stops it,
    its GPU is not free, and a trial handed it would wait there (and the autoscaler would add a node)."""
    up = {"small": 1}
    loads = {SHORT: CellLoad("a10g", 1, 0.1, scorer_node_type="a10g", scorer_gpus=1)}
    studies = CellStudies("s", [SHORT], ["min", "min"], f"sqlite:///{tmp_path}/o.db", "random", 0, 4, LR, MIX)
    searcher = CellSearcher(studies, {SHORT: 4}, ["a", "b"],
                            admission=GpuAdmission(loads, {"a10g": 2}, scorer_replicas=lambda: up))
    assert _cells(searcher, 2) == [("small", "soft"), None]        # the base model's replica holds 1 of 2
    up["small"] = 0
    assert _cells(searcher, 1) == [("small", "soft")]
    first = next(iter(searcher.live))
    searcher.on_trial_result(first, {"phase": "trained", "trial_key": "k"})
    up["small"] = 1                                                  # its replica starts and scores it
    assert searcher.admission.gpus_in_use("a10g") == 2 and _cells(searcher, 1) == [None]
    searcher.on_trial_complete(first, {"a": 1.0, "b": 2.0})
    assert searcher.admission.gpus_in_use("a10g") == 2 and _cells(searcher, 1) == [None]   # scored; the replica lingers
    up["small"] = 0
    assert _cells(searcher, 1) == [("small", "soft")]


def test_a_larger_trial_waiting_only_for_idle_replicas_keeps_its_gpus(tmp_path):
    """The base model's scorer lingers on 1 of 8 GPUs: the second 4-GPU trial waits the few minutes
    it takes to go rather than the 2-GPU trials taking its GPUs for hours."""
    mid = Cell("mid", "hard")
    up = {"large": 1}
    loads = {BIG: CellLoad("a100", 4, 0.85, scorer_node_type="a100", scorer_gpus=1),
             mid: CellLoad("a100", 2, 1.0, scorer_node_type="a100", scorer_gpus=1)}
    studies = CellStudies("s", [BIG, mid], ["min", "min"], f"sqlite:///{tmp_path}/o.db", "random", 0, 4, LR, MIX)
    searcher = CellSearcher(studies, {BIG: 3, mid: 3}, ["a", "b"],
                            admission=GpuAdmission(loads, {"a100": 8}, scorer_replicas=lambda: up))
    assert _cells(searcher, 2) == [("large", "hard"), None]   # 4 + 1 of 8: the 2-GPU trial would fit
    up["large"] = 0
    assert _cells(searcher, 2) == [("large", "hard"), None]


def test_no_more_trials_of_a_model_whose_base_model_could_not_be_scored(tmp_path):
    """Its trials could not be measured against it: the other model's cells go on, then the search ends."""
    unscorable = set()
    studies = CellStudies("s", [SHORT, BIG], ["min", "min"], f"sqlite:///{tmp_path}/o.db", "random", 0, 4, LR, MIX)
    searcher = CellSearcher(studies, {SHORT: 2, BIG: 2}, ["a", "b"], unscorable=lambda: unscorable)
    assert _cells(searcher, 1) == [("large", "hard")]
    unscorable.add("large")
    assert _cells(searcher, 3) == [("small", "soft"), ("small", "soft"), None]
    assert searcher.suggest("last") == Searcher.FINISHED and searcher.remaining[BIG] == 1


def test_a_larger_trial_waiting_only_for_a_score_in_progress_keeps_its_gpus(tmp_path):
    """A 4-GPU trial is being scored on 1 of the 8 GPUs while another trains on 4: the next 4-GPU trial
    waits the minutes the score takes rather than a 2-GPU trial taking the gap for hours."""
    mid = Cell("mid", "hard")
    loads = {BIG: CellLoad("a100", 4, 1.1, scorer_node_type="a100", scorer_gpus=1),
             mid: CellLoad("a100", 2, 1.2, scorer_node_type="a100", scorer_gpus=1)}
    searcher = _searcher(tmp_path, {BIG: 3, mid: 3}, loads, {"a100": 8})
    assert _cells(searcher, 3) == [("large", "hard"), ("large", "hard"), None]
    first = next(iter(searcher.live))
    searcher.on_trial_result(first, {"phase": "trained", "trial_key": "k"})   # 4 training + 1 scoring of 8
    assert _cells(searcher, 1) == [None]            # 3 free: the 2-GPU trial would fit, but is held back
    searcher.on_trial_complete(first, {"a": 1.0, "b": 2.0})
    assert _cells(searcher, 2) == [("large", "hard"), None]
