"""A trial's objective values from its evaluation and its base model's."""

from __future__ import annotations

from orchestrator.messages import Evaluation
from orchestrator.spec import Objective


def objective_values(objectives: list[Objective], scores: Evaluation, baseline: dict,
                     baseline_rows: dict | None = None) -> tuple[dict, dict]:
    """Each objective's value and standard error (None where the summary has none). An objective
    measured against the base model is base - tuned. Where both runs scored the same items (GSM8K),
    its error is the paired one (item difficulty cancels, so it is far smaller than the two errors
    combined); otherwise the two errors combine as independent."""
    summary, values, errors = scores.summary, {}, {}
    for o in objectives:
        value, se = summary.get(o.metric), summary.get(f"{o.metric}_se")
        if o.relative_to_base and value is not None:
            paired = _paired(o.metric, baseline_rows or {}, scores.rows)
            if paired is not None:
                value, se = paired
            else:
                value = baseline[o.metric] - value
                base_se = baseline.get(f"{o.metric}_se")
                se = None if se is None or base_se is None else (se ** 2 + base_se ** 2) ** 0.5
        values[o.name], errors[o.name] = value, se
    return values, errors


def _paired(metric: str, base_rows: dict, tuned_rows: dict) -> tuple[float, float] | None:
    from evaluators.gsm8k import ITEM_METRICS, paired_difference

    evaluation = metric.split("/")[0]
    if metric not in ITEM_METRICS or not base_rows.get(evaluation) or not tuned_rows.get(evaluation):
        return None
    return paired_difference(base_rows[evaluation], tuned_rows[evaluation], ITEM_METRICS[metric])
