"""What a sweep persists under its run directory, written atomically so readers never see half a file.

    <storage>/<name>/spec.json             the validated spec
    <storage>/<name>/baselines.json        one entry per base model: its scores before tuning
    <storage>/<name>/baselines/            their per-item rows, and why a base model could not be scored
    <storage>/<name>/trials/<key>.json     one record per trial: config, status, metrics, artifacts
    <storage>/<name>/trials/rows/<key>.rows.json  its per-prompt evaluation rows (each evaluation's list)
    <storage>/<name>/optuna.db             the Optuna studies (one per cell), for optuna-dashboard
    <storage>/<name>/adapters/<key>/       trained adapters
    <storage>/<name>/pareto/               Pareto tables and plots, written at the end
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

from pydantic import ValidationError

from orchestrator.records import TrialRecord

UNREADABLE = (ValueError, ValidationError, UnicodeDecodeError)   # json.JSONDecodeError is a ValueError


def write_json(path: str | Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(jsonable(data), f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str | Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


def jsonable(x):
    """NaN/inf become null (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class BaselineUnavailable(RuntimeError):
    """A trial's base model could not be scored in this run: the trial is measured on resume."""


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
        """The trial's record, or None if it has none or an unreadable one."""
        try:
            return TrialRecord.model_validate_json(self.trial_path(key).read_bytes())
        except (FileNotFoundError, *UNREADABLE):
            return None

    def write_trial(self, record: TrialRecord) -> None:
        write_json(self.trial_path(record.key), record.model_dump())

    def trial_rows(self, key: str) -> dict[str, list[dict]]:
        """The trial's per-item evaluation rows, by evaluation (as the base model's); {} if none."""
        try:
            data = json.loads(self._trial_rows_path(key).read_bytes())
        except (FileNotFoundError, *UNREADABLE):
            return {}
        return data if isinstance(data, dict) else {}

    def save_trial_rows(self, key: str, rows: dict[str, list[dict]]) -> None:
        write_json(self._trial_rows_path(key), rows)

    def trial_rows_keys(self) -> list[str]:
        """Keys of the trials whose rows are saved."""
        folder = self.trials_dir / "rows"
        return sorted(p.name.removesuffix(".rows.json") for p in folder.glob("*.rows.json")) if folder.exists() else []

    def _trial_rows_path(self, key: str) -> Path:
        # a folder of its own: trial_records reads every trials/*.json as a record
        return self.trials_dir / "rows" / f"{key}.rows.json"

    def trial_records(self) -> list[TrialRecord]:
        """Every readable record; an unreadable one (truncated, not JSON, not a record) is named in a
        warning and skipped, so one bad file never hides the others."""
        records = []
        for path in self._trial_files():
            try:
                records.append(TrialRecord.model_validate_json(path.read_bytes()))
            except UNREADABLE as err:
                warnings.warn(f"skipping unreadable trial record {path}: {_reason(err)}", stacklevel=2)
        return records

    def unreadable_trials(self) -> dict[str, str]:
        """Trial key -> why its record cannot be read."""
        bad = {}
        for path in self._trial_files():
            try:
                TrialRecord.model_validate_json(path.read_bytes())
            except UNREADABLE as err:
                bad[path.stem] = _reason(err)
        return bad

    def _trial_files(self) -> list[Path]:
        return sorted(self.trials_dir.glob("*.json")) if self.trials_dir.exists() else []

    def has_results(self) -> bool:
        """Whether anything beyond the spec was written: a trial record or a baseline."""
        return bool(self._trial_files()) or (self.root / "baselines.json").exists()

    def saved_spec(self):
        """The SweepSpec this run directory was started with, or None."""
        from orchestrator.spec import LEGACY_METRICS, SpecError, SweepSpec

        path = self.root / "spec.json"
        try:
            data = json.loads(path.read_bytes())
            for objective in data.get("objectives", []):   # written before objectives named their metric
                if objective.get("metric") is None and objective.get("name") in LEGACY_METRICS:
                    objective["metric"] = LEGACY_METRICS[objective["name"]]
            return SweepSpec.model_validate(data)
        except FileNotFoundError:
            return None
        except (*UNREADABLE, AttributeError) as err:   # AttributeError: JSON that is not a mapping
            raise SpecError(f"{path} is unreadable ({_reason(err)}); it records which sweep this directory "
                            "holds: restore it, or use another name or storage") from None

    def baselines(self) -> dict:
        """Each base model's saved scores; an unreadable file counts as none (they are scored again)."""
        path = self.root / "baselines.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except UNREADABLE as err:
            warnings.warn(f"ignoring unreadable {path} ({_reason(err)}); the base models are scored again",
                          stacklevel=2)
            return {}
        return data if isinstance(data, dict) else {}

    def baseline_rows(self, model_label: str) -> dict[str, list[dict]]:
        """The base model's per-item evaluation rows (what paired standard errors need); {} if none."""
        try:
            return json.loads(self._baseline_rows_path(model_label).read_bytes())
        except (FileNotFoundError, *UNREADABLE):
            return {}

    def save_baseline_rows(self, model_label: str, rows: dict[str, list[dict]]) -> None:
        write_json(self._baseline_rows_path(model_label), rows)

    def _baseline_rows_path(self, model_label: str) -> Path:
        return self.root / "baselines" / f"{model_label}.rows.json"

    def save_baseline(self, model_label: str, entry: dict) -> None:
        data = self.baselines()
        data[model_label] = entry
        write_json(self.root / "baselines.json", data)

    def baseline_error(self, model_label: str) -> str | None:
        """Why the base model could not be scored in this run, or None."""
        try:
            return read_json(self._baseline_error_path(model_label), {}).get("error")
        except (*UNREADABLE, AttributeError):   # AttributeError: JSON that is not a mapping
            return "its error file is unreadable"

    def save_baseline_error(self, model_label: str, error: str) -> None:
        write_json(self._baseline_error_path(model_label), {"error": error})

    def clear_baseline_error(self, model_label: str) -> None:
        self._baseline_error_path(model_label).unlink(missing_ok=True)

    def _baseline_error_path(self, model_label: str) -> Path:
        return self.root / "baselines" / f"{model_label}.error.json"

    def wait_for_baseline(self, model_label: str, poll_s: float = 1.0) -> dict:
        """The base model's saved metrics, waiting while it is scored (beside the first trials:
        orchestrator.baselines); raises BaselineUnavailable naming its error if it could not be scored."""
        while True:
            entry = self.baselines().get(model_label)
            if entry is not None:
                return entry["metrics"]
            error = self.baseline_error(model_label)
            if error is not None:
                raise BaselineUnavailable(f"base model {model_label} could not be scored ({error}); resuming the "
                                          "sweep scores it again")
            time.sleep(poll_s)


def _reason(err: Exception) -> str:
    """The first line of why a file could not be read."""
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
