"""evaluate(): run the chosen evaluations of one model (base or base + adapter) on a scorer app."""

from __future__ import annotations

from typing import Any

from evaluators.client import as_scorer
from evaluators.engines.adapters import resolve_adapter
from evaluators.registry import evaluation_runner
from evaluators.settings import EvalSettings


def evaluate(handle: Any, settings: EvalSettings, adapter: str | None = None, progress: str | None = None) -> dict:
    """{"summary": {metric: float}, "rows": {eval_name: list[dict]}}.

    handle: the DeploymentHandle from start_scorer (or a client.Scorer / a local engine). Summary keys
    are flat, e.g. `fidelity/tv`, `fidelity/test_unseen_params/w1`, `sampled/w1`,
    `sampled/test_ood_family/gof_pass` (the paper's per-split numbers: cft.metrics.SAMPLE_SUMMARY),
    `arithmetic/strict_acc`, `openrandom/unique_fraction`, `mcq/tv_from_uniform`; a metric's standard
    error, where it has one, sits beside it as `<metric>_se`. Rows are per prompt (per generation for
    mcq), with strings where a field names something (e.g. `gof_test`). `progress` (a label) shows a tqdm bar of
    request chunks on stderr, for long evaluations outside Tune's table (a base model, the CLI).
    """
    if adapter is not None:
        resolve_adapter(adapter)   # fail fast, naming the path, before any request goes out
    scorer = as_scorer(handle, settings.chunk_size)
    summary: dict[str, float] = {}
    rows: dict[str, list[dict]] = {}
    bar = _progress_bar(scorer, progress)
    try:
        for name in settings.evals:
            if bar is not None:
                bar.set_description(f"{progress}: {name}")
            rows[name], part = evaluation_runner(name)(scorer, settings, adapter)
            summary |= part
    finally:
        if bar is not None:
            bar.close()
            scorer.progress = None
    return {"summary": summary, "rows": rows}


def _progress_bar(scorer, label: str | None):
    if label is None or not getattr(scorer, "remote", False):
        return None
    from tqdm.auto import tqdm

    scorer.progress = tqdm(total=0, unit="chunk", desc=label, dynamic_ncols=True)
    return scorer.progress
