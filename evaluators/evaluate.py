"""evaluate(): run the chosen evaluations of one model (base or base + adapter) on a scorer app."""

from __future__ import annotations

from typing import Any

from evaluators.client import as_scorer
from evaluators.engines.adapters import resolve_adapter
from evaluators.registry import evaluation_runner
from evaluators.settings import EvalSettings


def evaluate(handle: Any, settings: EvalSettings, adapter: str | None = None) -> dict:
    """{"summary": {metric: float}, "rows": {eval_name: list[dict]}}.

    handle: the DeploymentHandle from start_scorer (or a client.Scorer / a local engine). Summary keys
    are flat, e.g. `fidelity/tv`, `fidelity/test_unseen_params/w1`, `sampled/w1`,
    `arithmetic/strict_acc`, `openrandom/unique_fraction`, `mcq/tv_from_uniform`; a metric's standard
    error, where it has one, sits beside it as `<metric>_se`.
    """
    if adapter is not None:
        resolve_adapter(adapter)   # fail fast, naming the path, before any request goes out
    scorer = as_scorer(handle, settings.chunk_size)
    summary: dict[str, float] = {}
    rows: dict[str, list[dict]] = {}
    for name in settings.evals:
        rows[name], part = evaluation_runner(name)(scorer, settings, adapter)
        summary |= part
    return {"summary": summary, "rows": rows}
