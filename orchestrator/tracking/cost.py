"""What a trial held, and so cost: GPU- and CPU-seconds from the resources it held times the time it
held them (measured wall times, never estimates), dollars where its node type's instance has an
on-demand price (orchestrator.gpu_catalog.ON_DEMAND_USD_PER_HOUR), and beside them the planner's
GPU-hour estimate for the same trial (orchestrator.scheduling.cost, `--plan`).

While training a trial holds its Ray Train workers (workers_per_trial x cpus_per_worker CPUs and
gpus_per_worker GPUs) and its Tune driver (TRIAL_DRIVER_CPU); while being scored, its driver and its
model's scorer app (replicas x their CPUs and GPUs; with several trials scored at once, each counts
the app for its own scoring time)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.gpu_catalog import price_per_unit_hour
from orchestrator.scheduling.capacity import TRIAL_DRIVER_CPU

COST_FIELDS = ("train_gpu_s", "train_cpu_s", "eval_gpu_s", "eval_cpu_s", "gpu_hours", "cpu_hours",
               "planned_gpu_hours", "dollars")


@dataclass(frozen=True)
class Held:
    gpus: float = 0.0
    cpus: float = 0.0


def training_held(cfg) -> Held:
    """What one trial's training holds (cfg: its cell's trainers.config.TrainConfig)."""
    return Held(gpus=cfg.workers_per_trial * cfg.gpus_per_worker,
                cpus=cfg.workers_per_trial * cfg.cpus_per_worker + TRIAL_DRIVER_CPU)


def scoring_held(scorer) -> Held:
    """What one trial holds while its model's scorer app scores it (scorer: an EvaluationConfig)."""
    gpus = scorer.gpus_per_replica * max(1, getattr(scorer, "tensor_parallel_size", 1) or 1)
    return Held(gpus=scorer.replicas * gpus, cpus=scorer.replicas * scorer.cpus_per_replica + TRIAL_DRIVER_CPU)


@dataclass(frozen=True)
class CellPrices:
    """A cell's planned GPU-hours per trial and the price of its training's and scoring's node types."""
    planned_gpu_hours: float | None = None
    train_price: tuple[float | None, str] = (None, "")    # dollars per GPU-hour or per vCPU-hour
    eval_price: tuple[float | None, str] = (None, "")


def cell_prices(plan, cell: str) -> CellPrices:
    """From the sweep's Plan (None on the embedded cluster: nothing planned, no instance priced)."""
    if plan is None:
        return CellPrices()
    try:
        row = plan.cell(cell)
    except StopIteration:
        return CellPrices()
    nodes = {n.name: n for n in plan.node_types}

    def price(node_type):
        node = nodes.get(node_type or "")
        return price_per_unit_hour(node.instance_type, node.gpus, node.cpus) if node else (None, "")

    return CellPrices(row.gpu_hours_per_trial, price(row.training.node_type), price(row.scoring.node_type))


def trial_cost(record, training_cfg, scorer_cfg, prices: CellPrices = CellPrices()) -> dict:
    """The COST_FIELDS of a trial record from its wall times (a failed trial's training counts from its
    start to its end when it recorded no training time)."""
    train_s = record.train_wall_s
    if train_s is None and record.finished_at is not None:
        train_s = max(0.0, record.finished_at - record.started_at)
    train_s, eval_s = train_s or 0.0, record.eval_wall_s or 0.0
    train, score = training_held(training_cfg), scoring_held(scorer_cfg)
    out = {"train_gpu_s": train.gpus * train_s, "train_cpu_s": train.cpus * train_s,
           "eval_gpu_s": score.gpus * eval_s, "eval_cpu_s": score.cpus * eval_s}
    out["gpu_hours"] = (out["train_gpu_s"] + out["eval_gpu_s"]) / 3600
    out["cpu_hours"] = (out["train_cpu_s"] + out["eval_cpu_s"]) / 3600
    out["planned_gpu_hours"] = prices.planned_gpu_hours
    dollars = [_dollars(prices.train_price, out["train_gpu_s"], out["train_cpu_s"]),
               _dollars(prices.eval_price, out["eval_gpu_s"], out["eval_cpu_s"])]
    out["dollars"] = None if all(d is None for d in dollars) else sum(d or 0.0 for d in dollars)
    return out


def _dollars(price: tuple[float | None, str], gpu_s: float, cpu_s: float) -> float | None:
    per_hour, unit = price
    if per_hour is None:
        return None
    return per_hour * (gpu_s if unit == "gpu" else cpu_s) / 3600


class SweepCosts:
    """Costs the trials of one sweep (its SweepParts and Plan, read once)."""

    def __init__(self, parts, plan=None):
        self.parts, self.plan = parts, plan
        self._prices: dict[str, CellPrices] = {}

    def prices(self, cell: str) -> CellPrices:
        if cell not in self._prices:
            self._prices[cell] = cell_prices(self.plan, cell)
        return self._prices[cell]

    def of(self, record) -> dict:
        trials = self.parts.trials
        if record.cell not in trials.training:
            return {}
        return trial_cost(record, trials.training[record.cell], trials.scorers[record.model], self.prices(record.cell))


COST_SUMMARY_COLUMNS = ["cell", "trials", "gpu_hours", "planned_gpu_hours", "cpu_hours", "dollars"]


def cost_table(frame):
    """Per cell and in total ("total"), from a trials DataFrame (orchestrator.frames.trials): the ended
    trials, what they held, what the planner estimated for them and their dollars (NaN: none known)."""
    import pandas as pd

    ended = frame[frame["status"].isin(["done", "error"])]
    rows = []
    for cell, group in [*ended.groupby("cell", sort=True), ("total", ended)]:
        row = {"cell": cell, "trials": len(group)}
        for c in COST_SUMMARY_COLUMNS[2:]:
            values = pd.to_numeric(group[c], errors="coerce") if c in group else pd.Series(dtype=float)
            row[c] = float(values.sum()) if values.notna().any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=COST_SUMMARY_COLUMNS)
