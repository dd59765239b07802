"""What a sweep persists under its run directory, written atomically so readers never see half a file.

    <storage>/<name>/spec.json             the validated spec
    <storage>/<name>/baselines.json        one entry per base model: its scores before tuning
    <storage>/<name>/trials/<key>.json     one record per trial: config, status, metrics, artifacts
    <storage>/<name>/optuna.db             the Optuna studies (one per cell), for optuna-dashboard
    <storage>/<name>/adapters/<key>/       trained adapters
    <storage>/<name>/pareto/               Pareto tables and plots, written at the end
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from orchestrator.records import TrialRecord


def write_json(path: str | Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(_jsonable(data), f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str | Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


def _jsonable(x):
    """NaN/inf become null (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir).expanduser().resolve()

    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    def trial_path(self, key: str) -> Path:
        return self.trials_dir / f"{key}.json"

    def adapter_dir(self, key: str) -> Path:
        return self.root / "adapters" / key

    def optuna_url(self) -> str:
        return f"sqlite:///{self.root / 'optuna.db'}"

    def read_trial(self, key: str) -> TrialRecord | None:
        data = read_json(self.trial_path(key))
        return None if data is None else TrialRecord.model_validate(data)

    def write_trial(self, record: TrialRecord) -> None:
        write_json(self.trial_path(record.key), record.model_dump())

    def trial_records(self) -> list[TrialRecord]:
        if not self.trials_dir.exists():
            return []
        return [TrialRecord.model_validate_json(p.read_text()) for p in sorted(self.trials_dir.glob("*.json"))]

    def saved_spec(self):
        """The SweepSpec this run directory was started with, or None."""
        data = read_json(self.root / "spec.json")
        if data is None:
            return None
        from orchestrator.spec import LEGACY_METRICS, SweepSpec

        for objective in data.get("objectives", []):   # written before objectives named their metric
            if objective.get("metric") is None and objective.get("name") in LEGACY_METRICS:
                objective["metric"] = LEGACY_METRICS[objective["name"]]
        return SweepSpec.model_validate(data)

    def baselines(self) -> dict:
        return read_json(self.root / "baselines.json", {})

    def save_baseline(self, model_label: str, entry: dict) -> None:
        data = self.baselines()
        data[model_label] = entry
        write_json(self.root / "baselines.json", data)
