"""Experiment trackers (the spec's `tracking:`: MLflow, W&B), the cost of each trial and the sweep's
budget. docs/tracking.md describes what each tracker holds.

    trackers = open_trackers(spec, run_dir)       # [] when the spec names none
    TrackingCallback(trackers, ...)               # a Tune callback: orchestrator.tuning adds it
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from orchestrator.spec import SpecError
from orchestrator.tracking.base import Tracker, TrialInfo

EXTRA = "tracking"
PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}


class TrackerMissing(SpecError):
    """The spec asks for a tracker whose package is not installed."""


def check_installed(spec) -> None:
    """Raise TrackerMissing naming the package extra when the spec asks for a tracker not installed."""
    missing = [name for name in PACKAGES if getattr(spec.tracking, name) is not None
               and importlib.util.find_spec(PACKAGES[name]) is None]
    if missing:
        raise TrackerMissing(f"tracking.{missing[0]}: the {' and '.join(missing)} package is not installed; "
                             f"install the `{EXTRA}` extra: pip install -e '.[{EXTRA}]'")


def open_trackers(spec, run_dir: str | Path) -> list[Tracker]:
    """The trackers the spec names, connected (the W&B one keeps its files under <run>/wandb unless
    $WANDB_DIR says where)."""
    import os

    check_installed(spec)
    run_dir = Path(run_dir).resolve()
    out: list[Tracker] = []
    if spec.tracking.mlflow is not None:
        from orchestrator.tracking.mlflow_tracker import MlflowTracker, default_uri

        cfg = spec.tracking.mlflow
        local = not cfg.tracking_uri or not cfg.tracking_uri.startswith(("http:", "https:", "databricks"))
        # MLflow's own default for a local store is ./mlruns under whatever directory the sweep ran from
        artifacts = cfg.artifact_location or ((run_dir / "mlartifacts").as_uri() if local else None)
        _connect(out, "mlflow", MlflowTracker, cfg.tracking_uri or default_uri(run_dir),
                 cfg.experiment or spec.name, artifacts)
    if spec.tracking.wandb is not None:
        from orchestrator.tracking.wandb_tracker import WandbTracker

        cfg = spec.tracking.wandb
        directory = None if os.environ.get("WANDB_DIR") else str(run_dir)
        _connect(out, "wandb", WandbTracker, cfg.project, cfg.entity, cfg.mode, cfg.group, directory)
    return out


def _connect(out: list, name: str, kind, *args) -> None:
    """A tracker that cannot connect (a server down, a bad URI) is named in a warning; the sweep runs."""
    import warnings

    try:
        out.append(kind(*args))
    except Exception as err:
        warnings.warn(f"tracking.{name}: cannot connect ({type(err).__name__}: {err}); the sweep runs without it",
                      stacklevel=3)


__all__ = ["Tracker", "TrialInfo", "TrackerMissing", "check_installed", "open_trackers"]
